"""Every recorded capture a scheme can read, replayed whole, with its exact summary.

One row per capture under ../shared/fixtures (README.md there says what each holds): the
capture, the exchange (scheme family) it is replayed as, and what ``atomfast.replay`` must
report for it: frames, events per topic, checksums verified and failed, gaps, resyncs, bad
input. A new venue adds its captures here, one row each (``test_every_readable_capture_has_a_row``
fails until it does); the venue's own tests then assert its recorded values (a trade's price,
size, side and id; a checksum the exchange sent), not these counts again.

The numbers agree with the independent reference models of the venues' tests (for example
KRAKEN.ws.50.0: 2437 checksums verified, 6855 lob and 460 spread events, as
tests/venues/test_kraken_spot.py computes them with its own CRC32 and book model).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pytest

from atomfast.exchanges import schemes
from atomfast.metrics import Metrics
from atomfast.replay import replay_capture
from atomfast.sinks.null import NullSink
from atomfast.testing import MemorySink, capture_instruments, SimProcess, cli_summary, fixture_path, run_cli


class Row(NamedTuple):
    capture: str  # relative to ../shared/fixtures, or ``repo:PATH`` relative to the repository
    exchange: str  # the scheme family it is replayed as (``atomfast replay --exchange``)
    frames: int  # websocket frames received (an inline REST answer is not one)
    events: dict[str, int]  # events per topic
    checksum_ok: int = 0
    checksum_failed: int = 0
    gaps: int = 0
    resyncs: int = 0
    errors: int = 0
    #: the live run's channels: the row's topics, "defaults" (the scheme's own: a venue whose
    #: message numbering counts every subscription the recording made, as dYdX's message_id), or
    #: a list of channels (where the channels collected change what is published)
    live_channels: str = "topics"

    @property
    def path(self) -> Path:
        """The capture file (``repo:`` rows: captures written for the tests, see fixture_path)."""
        return fixture_path(self.capture)

    def summary(self) -> dict:
        return {"frames": self.frames, "events": self.events, "checksum_ok": self.checksum_ok,
                "checksum_failed": self.checksum_failed, "gaps": self.gaps, "resyncs": self.resyncs,
                "errors": self.errors}


CAPTURES = [
    # Binance (cryptofeed 2021: depth@100ms + REST snapshots, bookTicker, aggTrade, kline_1m)
    Row("cryptofeed/BINANCE.ws.1.0", "binance", 265,
        {"candle": 2, "lob": 5056, "spread": 49, "status": 5, "ticker": 84, "trades": 2}),
    Row("cryptofeed/BINANCE_FUTURES.ws.1.0", "binance-futures", 1535,
        {"candle": 67, "lob": 11807, "spread": 229, "status": 5, "ticker": 613, "trades": 91}),
    Row("cryptofeed/BINANCE_DELIVERY.ws.1.0", "binance-delivery", 4371,
        {"candle": 33, "lob": 24144, "spread": 579, "status": 11, "ticker": 2240, "trades": 51}),
    # Binance (hftbacktest 2024-08-08: one inline REST snapshot after the first depth updates)
    Row("hftbacktest/spot/btcusdt_20240808.gz", "binance", 41248,
        {"lob": 114834, "spread": 2854, "status": 1, "ticker": 28040, "trades": 9757}),
    Row("hftbacktest/usdm/btcusdt_20240808.gz", "binance-futures", 93953,
        {"lob": 427515, "spread": 5672, "status": 1, "ticker": 66089, "trades": 21313}),
    Row("hftbacktest/cm/btcusd_perp_20240808.gz", "binance-delivery", 48269,
        {"lob": 257571, "spread": 6485, "status": 1, "ticker": 19136, "trades": 2286}),
    Row("cryptofeed/BITFINEX.ws.11.0", "bitfinex", 1693,
        {"lob": 2926, "spread": 471, "status": 29, "ticker": 21, "trades": 210}),
    Row("cryptofeed/BITMEX.ws.1.0", "bitmex", 2120,
        {"lob": 14333, "spread": 460, "status": 41, "ticker": 436, "trades": 27}),
    Row("cryptofeed/BITSTAMP.ws.1.0", "bitstamp", 747,
        {"lob": 11140, "spread": 182, "status": 31, "trades": 10, "trades_l3": 10}),
    Row("cryptofeed/COINBASE.ws.28.0", "coinbase", 9946,
        {"lob": 18081, "spread": 1778, "status": 41, "ticker": 107, "trades": 97, "trades_l3": 97}),
    Row("cryptofeed/DERIBIT.ws.1.0", "deribit", 136,
        {"lob": 149, "open_interest": 10, "spread": 42, "status": 41, "ticker": 89}),
    Row("cryptofeed/KRAKEN.ws.48.0", "kraken", 49, {"status": 11, "trades": 10}),
    Row("cryptofeed/KRAKEN.ws.49.0", "kraken", 60, {"status": 11, "ticker": 18}),
    Row("cryptofeed/KRAKEN.ws.50.0", "kraken", 2481, {"lob": 6855, "spread": 460, "status": 13}, checksum_ok=2437),
    Row("cryptofeed/KRAKEN_FUTURES.ws.1.0", "kraken-futures", 7175,
        {"lob": 8585, "spread": 361, "status": 41, "ticker": 107, "trades": 1003}),
    # second wave
    Row("cryptofeed/POLONIEX.ws.1.0", "poloniex", 302, {"lob": 948, "spread": 125, "status": 34, "trades": 6}),
    Row("repo:tests/data/poloniex/POLONIEX_FUTURES.ws.1.0", "poloniex-futures", 4,
        {"funding_rate": 1, "lob": 9, "spread": 2, "status": 3}),
    Row("repo:tests/data/binance_options/BINANCE_OPTIONS.ws.1.0", "binance-options", 9,
        {"candle": 1, "lob": 7, "open_interest": 1, "spread": 4, "status": 3, "ticker": 1, "trades": 1}),
    Row("repo:tests/data/bybit/BYBIT_LINEAR.ws.1.0", "bybit-linear", 58,
        {"candle": 1, "funding_rate": 2, "liquidations": 1, "lob": 3966, "open_interest": 2, "spread": 48,
         "status": 2, "ticker": 2, "trades": 1}),
    Row("repo:tests/data/dydx/DYDX.ws.1.0", "dydx", 2, {"lob": 200, "spread": 1, "status": 2},
        live_channels="defaults"),
    Row("cryptofeed/PHEMEX.ws.1.0", "phemex", 1392, {"lob": 2543, "spread": 293, "status": 11, "trades": 25},
        checksum_ok=3),
    Row("repo:tests/data/phemex/PHEMEX_FUTURES.ws.1.0", "phemex-futures", 9,
        {"candle": 3, "funding_rate": 1, "lob": 4, "open_interest": 1, "spread": 1, "status": 2, "trades": 1}),
    Row("cryptofeed/KUCOIN.ws.1.0", "kucoin", 4721,
        {"candle": 6, "lob": 10325, "spread": 560, "status": 10, "ticker": 830, "trades": 18, "trades_l3": 18}),
    # third wave
    Row("cryptofeed/OKX.ws.1.0", "okx", 410, {"lob": 7311, "spread": 204, "status": 22, "ticker": 28, "trades": 74},
        checksum_ok=290),
    Row("repo:tests/data/okx/OKX.ws.1.0", "okx", 16,
        {"candle": 1, "funding_rate": 1, "liquidations": 1, "lob": 32, "open_interest": 1, "spread": 1, "status": 9,
         "ticker": 1, "trades": 1}),
    Row("repo:tests/data/kucoin/KUCOIN_FUTURES.ws.1.0", "kucoin-futures", 14,
        {"candle": 1, "funding_rate": 1, "lob": 10, "spread": 1, "status": 2, "ticker": 1, "trades": 1,
         "trades_l3": 1}),
    Row("cryptofeed/HUOBI.ws.44.0", "htx", 362, {"lob": 5512, "spread": 251, "status": 31, "trades": 73}),
    Row("repo:tests/data/htx/HTX_FUTURES.ws.1.0", "htx-futures", 6,
        {"candle": 1, "funding_rate": 1, "liquidations": 1, "lob": 6, "spread": 1, "status": 2, "ticker": 1,
         "trades": 1}),
    Row("repo:tests/data/gateio/GATEIO.ws.1.0", "gateio", 8,
        {"candle": 2, "lob": 8, "spread": 2, "status": 2, "ticker": 1, "trades": 1}),
    Row("repo:tests/data/gateio/GATEIO_FUTURES.ws.1.0", "gateio-futures", 9,
        {"candle": 2, "funding_rate": 1, "liquidations": 1, "lob": 5, "open_interest": 1, "spread": 1, "status": 2,
         "ticker": 1, "trades": 1}),
    Row("repo:tests/data/bitget/BITGET.ws.1.0", "bitget", 9,
        {"candle": 1, "lob": 8, "spread": 4, "status": 3, "ticker": 1, "trades": 1}, checksum_ok=3),
    Row("repo:tests/data/bitget/BITGET_FUTURES.ws.1.0", "bitget-futures", 9,
        {"candle": 1, "funding_rate": 1, "lob": 8, "open_interest": 1, "spread": 4, "status": 3, "ticker": 1,
         "trades": 2}, checksum_ok=3),
    # the documentation's book snapshot and delta examples do not chain: one gap, one resync
    Row("repo:tests/data/cryptocom/CRYPTOCOM.ws.1.0", "cryptocom", 13,
        {"candle": 1, "funding_rate": 1, "lob": 24, "open_interest": 1, "spread": 2, "status": 5, "ticker": 2,
         "trades": 2}, gaps=1, resyncs=1),
    Row("repo:tests/data/hyperliquid/HYPERLIQUID.ws.1.0", "hyperliquid", 8,
        {"candle": 1, "funding_rate": 1, "lob": 70, "open_interest": 1, "spread": 3, "status": 4, "trades": 1,
         "trades_l3": 1}),
    # replayed with every channel: the level-2 book is collected, so spread comes from it (none here)
    Row("repo:tests/data/kraken_l3/KRAKEN_L3.ws.1.0", "kraken", 8, {"lob_l3": 44, "status": 3}, checksum_ok=7,
        live_channels="lob,lob_l3"),
    Row("cryptofeed/BITFLYER.ws.1.0", "bitflyer", 1103,
        {"lob": 7305, "spread": 294, "status": 11, "ticker": 249, "trades": 162, "trades_l3": 162}),
    Row("cryptofeed/GEMINI.ws.1.0", "gemini", 678, {"lob": 4540, "spread": 232, "status": 11, "trades": 16}),
    Row("repo:tests/data/gemini/GEMINI.ws.1.0", "gemini", 5, {"lob": 4, "spread": 2, "status": 3, "trades": 1}),
    Row("cryptofeed/FMFW.ws.1.0", "fmfw", 589, {"lob": 12755, "spread": 156, "status": 47, "ticker": 41}),
    Row("repo:tests/data/hitbtc/HITBTC_V3.ws.1.0", "hitbtc", 16,
        {"candle": 2, "funding_rate": 1, "lob": 13, "open_interest": 1, "spread": 3, "status": 16, "ticker": 2,
         "trades": 3}),
]

#: recordings of a protocol the venue has retired, that no scheme reads: the reason
RETIRED: dict[str, str] = {
    "cryptofeed/BYBIT.ws.25.0": "Bybit's pre-v5 API (realtime_public, orderBookL2_25), retired; the bybit schemes "
                                "are v5",
    "cryptofeed/HITBTC.ws.1.0": "HitBTC API v2 (api/2/ws/public, snapshotOrderbook/updateOrderbook), replaced by v3, "
                                "which the hitbtc scheme implements (v2 is still served; not implemented)",
}

#: hftbacktest's folders: which Binance market each one recorded (its README)
HFTBACKTEST = {"spot": "binance", "usdm": "binance-futures", "cm": "binance-delivery"}
#: cryptofeed's names of venues that have been renamed since
RENAMED = {"huobi": "htx"}


def summary_of(metrics: Metrics) -> dict:
    s = metrics.summary()
    return {k: s[k] for k in ("frames", "events", "checksum_ok", "checksum_failed", "gaps", "resyncs", "errors")}


@pytest.mark.parametrize("row", CAPTURES, ids=lambda r: r.capture)
def test_capture_summary(row):
    metrics = Metrics()
    replay = replay_capture([row.path], row.exchange, NullSink(framing=None), metrics)
    assert summary_of(metrics) == row.summary()
    assert dict(metrics.errors.counts) == {}  # (errors == 0 with no kind at all)
    assert replay.unanswered == [] or row.capture.startswith("hftbacktest/")  # their snapshot comes inline


class _DigestSink(NullSink):
    """What a sink is handed, as a digest per topic of every (key, value): values encoded with
    framing ``none``. ``records_needed`` says which path the pipeline takes for the high-volume
    topics (``atomfast.book.SHAPES``): the records (tuples) encoded by the Rust encoder, or the
    Avro bytes the book and the typed writers write themselves (AvroRows, read by
    ``write_rows``)."""

    def __init__(self, records_needed: bool) -> None:
        import hashlib

        super().__init__(framing="none")
        self.records_needed = records_needed
        self._new = hashlib.sha256
        self.digests: dict = {}
        self.counts: dict = {}

    def write(self, topic, records, keys, values) -> None:
        h = self.digests.get(topic) or self.digests.setdefault(topic, self._new())
        for k, v in zip(keys, values):
            h.update(len(k).to_bytes(4, "little") + k + len(v).to_bytes(4, "little") + v)
        self.counts[topic] = self.counts.get(topic, 0) + len(values)

    def write_rows(self, topic, rows) -> None:
        keys, values = rows.take()
        self.write(topic, (), keys, values)

    def result(self) -> dict:
        return {t: (self.counts[t], h.hexdigest()) for t, h in sorted(self.digests.items())}


@pytest.mark.parametrize("row", CAPTURES, ids=lambda r: r.capture)
def test_event_bytes_written_natively_equal_the_encoders(row):
    """Where the sink needs no records (Kafka, files, null), the events of the high-volume
    topics are written as Avro bytes without tuples (``AvroRows``: by the book, by the typed
    writers ``quote``/``trade``, or encoded from a scheme's own tuple): every event's key and
    value, topic by topic and in order, equal what the Rust encoder makes of the records the
    other path builds, withdrawals of corrupt books included."""
    tuples, native = _DigestSink(records_needed=True), _DigestSink(records_needed=False)
    replay_capture([row.path], row.exchange, tuples, Metrics())
    replay_capture([row.path], row.exchange, native, Metrics())
    assert {t: n for t, n in native.counts.items() if n} == {t: n for t, n in row.events.items() if n}
    assert native.result() == tuples.result()


#: the rows a live ``run`` replays through ``simulate`` (hftbacktest's files hold no
#: subscription and bring their REST snapshot inline: replay only)
LIVE = [row for row in CAPTURES if not row.capture.startswith("hftbacktest/")]


@pytest.mark.parametrize("row", LIVE, ids=lambda r: r.capture)
def test_simulate_and_run_publish_what_replay_does(row):
    """``atomfast simulate CAPTURE`` + ``atomfast run --exchange X --endpoint ws://...`` (the
    scheme's subscriptions, the simulator's REST answers, a real websocket): the network path
    publishes exactly what the offline replay does, for the markets and topics of the capture."""
    sink = MemorySink()
    replay = replay_capture([row.path], row.exchange, sink, Metrics())
    symbols = {r.symbol for topic, r in sink.records if topic != "status"}
    listed = {i.symbol for i in capture_instruments(row.capture, replay.scheme_cls).values()}
    if listed:  # the markets a user can name (a channel may publish others: options of an expiry)
        symbols &= listed
    # none of them listed (a documented listing naming one other market): the scheme's defaults
    markets = ["--symbols", ",".join(sorted(symbols))] if symbols else []
    topics = sorted(t for t in row.events if t not in ("status", "spread"))
    channels = {"topics": ["--channels", ",".join(topics)], "defaults": []}.get(
        row.live_channels, ["--channels", row.live_channels])
    # paced so that the REST answers (snapshots) come while frames do: a short capture over ~0.5 s
    # (REST on a listener of its own: a listing may be a POST, which the websocket port refuses)
    with SimProcess(row.path, "--rate", min(2000, max(20, row.frames * 2)), "--rest-port", 0) as sim:  # paced: REST answers come while frames do
        r = run_cli("run", "--exchange", row.exchange, "--endpoint", sim.url, "--rest-endpoint", sim.rest_url,
                    "--sink", "null", *markets, *channels,
                    "--max-frames", row.frames, "--backoff", "0.01", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == row.frames
    assert {t: n for t, n in s["events"].items() if t != "status"} == {
        t: n for t, n in row.events.items() if t != "status"}
    assert (s["checksum_ok"], s["checksum_failed"], s["gaps"], s["resyncs"], s["errors"]) == (
        row.checksum_ok, row.checksum_failed, row.gaps, row.resyncs, row.errors)


@pytest.mark.parametrize("row", CAPTURES, ids=lambda r: r.capture)
def test_replay_command_prints_the_summary(row, capsys):
    """``atomfast replay CAPTURE --exchange X``: the summary line it prints is the row's."""
    from atomfast.cli import main

    assert main(["replay", str(fixture_path(row.capture)), "--exchange", row.exchange, "--sink", "null"]) in (0, None)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: printed[k] for k in row.summary()} == row.summary()


def _exchange_of(capture: Path, fixtures: Path) -> str:
    """The atomfast exchange a capture file belongs to, from its name (cryptofeed's
    ``EXCHANGE.ws.N.0``) or its folder (hftbacktest)."""
    relative = capture.relative_to(fixtures)
    if relative.parts[0] == "hftbacktest":
        return HFTBACKTEST[relative.parts[1]]
    name = capture.name.split(".ws.")[0].lower().replace("_", "-")
    return RENAMED.get(name, name)


def test_every_readable_capture_has_a_row(fixtures_dir):
    known = set(schemes())
    readable = sorted(
        str(p.relative_to(fixtures_dir))
        for p in [*fixtures_dir.glob("cryptofeed/*.ws.*"), *fixtures_dir.glob("hftbacktest/*/*.gz")]
        if _exchange_of(p, fixtures_dir) in known)
    assert sorted(row.capture for row in CAPTURES if not row.capture.startswith("repo:")) == sorted(
        set(readable) - set(RETIRED))
    assert set(RETIRED) <= set(readable)
    for row in CAPTURES:
        if not row.capture.startswith("repo:"):
            assert _exchange_of(fixtures_dir / row.capture, fixtures_dir) == row.exchange, row

