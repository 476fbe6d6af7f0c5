"""Fuzzing the dYdX scheme with malformed frames (hypothesis, the kit's ``run_fuzz``).

The real stream is built from the recorded indexer messages (``../shared/fixtures/nautilus/dydx/``):
connection 7ad53844's ``connected`` (0) and ETH-USD snapshot (4), then the recorded batch's 41
updates as the ``channel_data`` messages they would have been unbatched (ids 5..45), the batch
itself (46), the ETH-USD trades, the deleveraging trades, a candle and a markets update (47..50).
Ids from 5 on are this test's (the indexer's counter rule); prices, sizes, trades and funding
values are the recording's. Garbage frames (random bytes, truncated, oversized, nested, a real
frame with one field damaged: numbers given as strings are damaged as numbers; ``id`` and
``connection_id`` only into another JSON type) are interleaved. After every frame: no exception,
every event valid for its schema, the ETH-USD book equal to a clean run's (or to the run one
frame ahead) or resynced and empty; non-JSON garbage counted as bad input. A damaged copy whose
``message_id`` is kept repeats an id: a gap, the book resynced (its snapshot is not in the rest
of the stream, so it stays empty), never wrong.
"""
from __future__ import annotations

import functools
import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.dydx import DydxScheme
from atomfast.exchanges.dydx.parse import parse_instruments
from atomfast.testing import ABSURD_STRINGS, T0, fixture_path, fuzz_settings, run_fuzz

FIX = "nautilus/dydx"

GARBAGE = {"numeric_strings": True, "absurd_strings": [*ABSURD_STRINGS, "1" * 30 + ".5"],
           "id_keys": frozenset({"id", "connection_id"})}


def load(name: str) -> dict:
    return json.loads(fixture_path(f"{FIX}/{name}").read_text())


def compact(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


@functools.lru_cache(maxsize=1)
def stream() -> tuple:
    instruments = parse_instruments(json.dumps(load("v4_markets_subscribed.json")["contents"]).encode())
    batch = load("v4_orderbook_batched_data.json")
    msgs = [load("connected.json"), load("v4_orderbook_snapshot.json")]
    for i, c in enumerate(batch["contents"]):
        msgs.append({"type": "channel_data", "connection_id": batch["connection_id"], "message_id": 5 + i,
                     "id": "ETH-USD", "channel": "v4_orderbook", "version": "1.0.0", "contents": c})
    msgs.append(dict(batch, message_id=46))
    for n, name in enumerate(("v4_trades.json", "trade_deleveraged.json", "v4_candles_channel_data.json",
                              "v4_markets_cross.json")):
        msgs.append(dict(load(name), message_id=47 + n))
    frames = [(T0 + i * 1_000_000, compact(msg)) for i, msg in enumerate(msgs)]
    return DydxScheme, instruments, frames, 2


@given(st.data())
@fuzz_settings(40)
def test_fuzz_book_stream(data):
    run_fuzz(stream(), data, garbage_options=GARBAGE, exact_resyncs=False)
