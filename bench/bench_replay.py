"""Replay throughput: recorded captures through decode -> book -> checksum -> encode -> null sink.

atomfast (``Replay`` with a ``NullSink``: every event Avro-encoded, nothing kept) side by side
with cryptofeed's ``raw_data_collection.playback`` on the same files, doing the same work:
``checksum_validation=True`` and a callback that serialises every event to bytes (for a book,
its delta). Both read the capture files inside the timed round.

    pytest bench/bench_replay.py --benchmark-only
"""
from __future__ import annotations

import asyncio
import functools
import json

import pytest

from atomfast.capture import open_capture
from atomfast.replay import Replay
from atomfast.sinks.null import NullSink

from .conftest import capture

CASES = {
    # name: (exchange, capture files, cryptofeed feed name or None where it cannot replay the capture)
    "kraken-book": ("kraken", ["cryptofeed/KRAKEN.ws.50.0"], "KRAKEN"),
    "kraken-trades+ticker": ("kraken", ["cryptofeed/KRAKEN.ws.48.0", "cryptofeed/KRAKEN.ws.49.0"], "KRAKEN"),
    "kraken-futures": ("kraken-futures", ["cryptofeed/KRAKEN_FUTURES.ws.1.0"], "KRAKEN_FUTURES"),
    "binance": ("binance", ["cryptofeed/BINANCE.ws.1.0"], "BINANCE"),
    "binance-futures": ("binance-futures", ["cryptofeed/BINANCE_FUTURES.ws.1.0"], "BINANCE_FUTURES"),
    "binance-delivery": ("binance-delivery", ["cryptofeed/BINANCE_DELIVERY.ws.1.0"], "BINANCE_DELIVERY"),
    "bitfinex": ("bitfinex", ["cryptofeed/BITFINEX.ws.11.0"], "BITFINEX"),
    "bitstamp": ("bitstamp", ["cryptofeed/BITSTAMP.ws.1.0"], "BITSTAMP"),
    "bitmex": ("bitmex", ["cryptofeed/BITMEX.ws.1.0"], "BITMEX"),
    # cryptofeed 2.4's Coinbase class speaks Advanced Trade and cannot read this (Exchange feed)
    # capture; its Deribit class refuses the capture's `.raw` channels without API keys.
    "coinbase": ("coinbase", ["cryptofeed/COINBASE.ws.28.0"], None),
    "deribit": ("deribit", ["cryptofeed/DERIBIT.ws.1.0"], None),
    "binance-usdm-session": ("binance-futures", ["hftbacktest/usdm/btcusdt_20240808.gz"], None),
    # second wave (captures that are real recordings; the venues with only documented messages
    # have no row)
    "fmfw": ("fmfw", ["cryptofeed/FMFW.ws.1.0"], "FMFW"),
    "poloniex": ("poloniex", ["cryptofeed/POLONIEX.ws.1.0"], "POLONIEX"),
    "phemex": ("phemex", ["cryptofeed/PHEMEX.ws.1.0"], "PHEMEX"),
    "bitflyer": ("bitflyer", ["cryptofeed/BITFLYER.ws.1.0"], "BITFLYER"),
    "gemini": ("gemini", ["cryptofeed/GEMINI.ws.1.0"], "GEMINI"),
    # cryptofeed's KuCoin fetches its websocket token over the network even in playback
    "kucoin": ("kucoin", ["cryptofeed/KUCOIN.ws.1.0"], None),
    # third wave
    "okx": ("okx", ["cryptofeed/OKX.ws.1.0"], "OKX"),
    "htx": ("htx", ["cryptofeed/HUOBI.ws.44.0"], "HUOBI"),
    # Bybit's own archive of a v5 linear orderbook.500 stream (50 real messages, most of the
    # bytes) and a few documented messages; cryptofeed's Bybit reads its own topic names only
    "bybit-linear": ("bybit-linear", ["repo:tests/data/bybit/BYBIT_LINEAR.ws.1.0"], None),
}


def _atomfast_round(exchange, paths):
    replay = Replay(open_capture(*paths), exchange, NullSink())
    metrics = replay.run()
    assert metrics.checksum_failed == 0
    return metrics.frames


def _recv_frames(paths) -> int:
    return sum(1 for f in open_capture(*paths).frames() if f.kind == "recv")


@pytest.mark.parametrize("case", sorted(CASES))
def test_atomfast(benchmark, case):
    exchange, rel, _ = CASES[case]
    paths = [capture(r) for r in rel]
    frames = _recv_frames(paths)
    benchmark.group = f"replay {case}"
    benchmark.extra_info.update(units=frames, unit="frame", impl="atomfast")
    got = benchmark.pedantic(_atomfast_round, args=(exchange, paths), rounds=7, iterations=1, warmup_rounds=1)
    assert got == frames


def _cryptofeed_round(feed_name, paths):
    from cryptofeed.exchanges import EXCHANGE_MAP
    from cryptofeed.raw_data_collection import playback

    out = []

    async def serialise(obj, receipt_ts):
        # the same work as atomfast's encoder: every event to bytes (a book: its delta)
        if getattr(obj, "delta", None) is not None:
            out.append(json.dumps(obj.delta, default=str).encode())
        else:
            out.append(json.dumps(obj.to_dict(numeric_type=str), default=str).encode())

    original = EXCHANGE_MAP[feed_name]
    EXCHANGE_MAP[feed_name] = functools.partial(original, checksum_validation=True)
    try:
        files = [str(p) for p in paths]
        prefix = paths[0].name.split(".ws.")[0]
        rest = [paths[0].with_name(prefix + ".0")] + sorted(paths[0].parent.glob(prefix + ".http.*"))
        files = [str(p) for p in rest if p.exists()] + files
        stats = playback(feed_name, files, callbacks={
            "l2_book": serialise, "trades": serialise, "ticker": serialise, "candles": serialise,
            "funding": serialise, "open_interest": serialise})
    finally:
        EXCHANGE_MAP[feed_name] = original
    return stats, len(out)


@pytest.mark.parametrize("case", sorted(CASES))
def test_cryptofeed(benchmark, case):
    pytest.importorskip("cryptofeed")
    _exchange, rel, feed_name = CASES[case]
    if feed_name is None:
        pytest.skip(f"cryptofeed cannot replay the {case} capture (see CASES)")
    paths = [capture(r) for r in rel]
    benchmark.group = f"replay {case}"
    benchmark.extra_info.update(units=_recv_frames(paths), unit="frame", impl="cryptofeed")
    asyncio.set_event_loop(asyncio.new_event_loop())
    benchmark.pedantic(_cryptofeed_round, args=(feed_name, paths), rounds=3, iterations=1, warmup_rounds=1)
