"""Operations (issue "A product a new user can run", items 5 and 7): several exchanges in one
``run``, Prometheus metrics labelled by exchange, the Grafana dashboard over them, and a status
line that fits 80 columns, keeps log lines above it and says when the connection is down."""
from __future__ import annotations

import io
import json
import logging
import re
import urllib.request

import pytest

from atomfast.metrics import Metrics
from atomfast.status_line import Source, StatusLine, prometheus_text
from atomfast.testing import ROOT, SimProcess, cli_summary, fixture_path, run_cli, MemorySink


class _Conn:
    def __init__(self, up: bool) -> None:
        self.connected = up


class _Group:
    def __init__(self, *up: bool) -> None:
        self.connections = [_Conn(u) for u in up]


class _Scheme:
    def __init__(self, books: int, unsynced: int = 0) -> None:
        self.books = {f"B{i}": object() for i in range(books)}
        self.unsynced = {f"B{i}" for i in range(unsynced)}


def test_status_line_fits_80_columns_and_says_down():
    m = Metrics()
    m.frames, m.reconnects = 123456, 7
    m.events["lob"] = 10 ** 9
    for ns in (10_000, 3_000_000):
        m.produce_latency.record(ns)
        m.delivery_latency.record(ns * 10)
    sources = [Source("binance-futures", m, _Scheme(200), _Group(True, True)),
               Source("kraken", Metrics(), _Scheme(6), _Group(True))]
    line = StatusLine(sink=MemorySink(), sources=sources, tty=True, stream=io.StringIO(), width=80)
    full = line.line()
    assert len(full) > 80  # everything, for a log line
    text = line.line(80)
    assert len(text) <= 80
    assert text.startswith("binance-futures,kraken ") and "books 206/206" in text
    sources[0].group = _Group(False, True)
    assert "conn 2/3" in line.line(80)
    sources[0].group, sources[1].group = _Group(False, False), _Group(False)
    down = line.line(80)
    assert " down " in down and "books 0/206" in down  # held books are not live while down
    assert len(line.line(40)) <= 40


def test_log_records_go_above_the_status_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        line = StatusLine(Metrics(), None, _Scheme(1), stream=stream, tty=True, width=80)
        line._loop = None
        line._wrap_log_handlers()
        line.show()
        shown = line._shown
        logging.getLogger("atomfast.test").warning("a log line")
        line.stop()
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    # the line is cleared before the record and drawn again after it: never glued to it
    assert f"\r\x1b[K{shown}\r\x1b[Ka log line\n{shown}" in text


def test_prometheus_labels_every_feed_sample_with_its_exchange():
    a, b = Metrics(), Metrics()
    a.frames, b.frames = 5, 7
    a.events["lob"], b.events["trades"] = 3, 4
    text = prometheus_text(sink=MemorySink(), sources=[Source("kraken", a, _Scheme(2, 1), _Group(True)),
                                                       Source("bitstamp", b)])
    assert 'atomfast_frames_total{exchange="kraken"} 5' in text
    assert 'atomfast_frames_total{exchange="bitstamp"} 7' in text
    assert 'atomfast_events_total{exchange="kraken",topic="lob"} 3' in text
    assert 'atomfast_events_total{exchange="bitstamp",topic="trades"} 4' in text
    assert 'atomfast_books_synced{exchange="kraken"} 1' in text
    assert 'atomfast_connections_up{exchange="kraken"} 1' in text
    assert 'atomfast_produce_latency_seconds{exchange="kraken",quantile="0.99"}' in text
    assert "atomfast_sink_queue 0" in text


def test_grafana_dashboard_queries_metrics_that_exist():
    dash = json.loads((ROOT / "tools" / "grafana" / "atomfast.json").read_text())
    m = Metrics()
    exposed = set(re.findall(r"^# TYPE (atomfast_\w+) ", prometheus_text(
        sink=MemorySink(), sources=[Source("kraken", m, _Scheme(1), _Group(True))]), re.M))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"atomfast_\w+", e)}
    assert used and used <= exposed, used - exposed
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for what in ("frames", "events", "books", "resyncs", "checksum", "latency", "delivery", "queue"):
        assert what in titles


def test_several_exchanges_in_one_run(tmp_path):
    """``run`` with two exchanges from a config file (endpoints, symbols, channels per exchange):
    one sink (the files), one summary summing them, one metrics endpoint labelled by exchange."""
    # paced: Bitstamp's REST snapshots answer while its diffs come
    with SimProcess(fixture_path("cryptofeed/KRAKEN.ws.50.0"), "--rate", 1000) as k, \
            SimProcess(fixture_path("cryptofeed/BITSTAMP.ws.1.0"), "--rate", 1000) as b:
        ini = tmp_path / "two.ini"
        ini.write_text(f"[atomfast]\nATOMFAST_EXCHANGES = kraken, bitstamp\n"
                       f"[kraken]\nendpoint = {k.url}\nchannels = lob\n"
                       f"[bitstamp]\nendpoint = {b.url}\nsymbols = BTC-USD, ETH-USD\nchannels = lob, trades\n")
        r = run_cli("--config", ini, "run", "--sink", "files", "--data-dir", tmp_path / "data", "--max-frames", 600,
                    timeout=120)
        refused = run_cli("run", "--exchange", "kraken,bitstamp", "--symbols", "BTC-USD")
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    per = s["exchanges"]
    assert set(per) == {"kraken", "bitstamp"}
    assert per["kraken"]["frames"] == per["bitstamp"]["frames"] == 600
    assert s["frames"] == 1200
    for topic in ("lob", "status"):
        assert s["events"][topic] == sum(p["events"].get(topic, 0) for p in per.values())
    assert per["kraken"]["checksum_failed"] == 0 and per["kraken"]["checksum_ok"] > 0
    read = run_cli("consume", "lob", "--from", "files", "--data-dir", tmp_path / "data")
    exchanges = [json.loads(ln)["exchange"] for ln in read.stdout.splitlines()]
    assert exchanges.count("kraken") == per["kraken"]["events"]["lob"]
    assert exchanges.count("bitstamp") == per["bitstamp"]["events"]["lob"]
    assert refused.returncode == 2 and "--symbols is per exchange" in refused.stderr
