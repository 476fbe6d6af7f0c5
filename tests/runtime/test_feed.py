"""The feed over real websockets on 127.0.0.1: the simulator (in-process, or `atomfast simulate`
as a subprocess) and small picows test servers, with a tiny test scheme and a collecting sink."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

import pytest
import uvloop
from picows import WSCloseCode, WSListener, WSMsgType, ws_create_server

from atomfast import rest
from atomfast.capture import RECV, SENT, open_capture
from atomfast.events import Trade
from atomfast.feed import Backoff, FeedGroup
from atomfast.metrics import Metrics
from atomfast.pipeline import Pipeline
from atomfast.scheme import Instrument, Scheme
from atomfast.simulator import Simulator
from atomfast.status_line import MetricsServer, StatusLine, prometheus_text, window_percentile

from atomfast.testing import ROOT, MemorySink, SimProcess, cli_summary as summary_of, fixture_path, run_cli
from atomfast.testing import ws_receive as receive

KRAKEN_48 = "cryptofeed/KRAKEN.ws.48.0"


# --- test doubles: a scheme and a sink (the network is real) ---------------------------------
class EchoScheme(Scheme):
    """Subscribes with a given message; every frame is kept and becomes one `trades` event."""

    exchange = "echo"
    ws_url = "ws://127.0.0.1:9/unused"
    channels = {"trades": "trade"}
    default_channels = ("trades",)
    subscribe: ClassVar[bytes] = b'{"event":"subscribe"}'

    def __init__(self, emit, metrics=None, **kw) -> None:
        instruments = {"XBT/USD": Instrument("XBT/USD", "BTC-USD", "spot", "BTC", "USD")}
        super().__init__(emit, metrics, instruments, ["BTC-USD"], ["trades"])
        self.frames: list[bytes] = []
        self.frame_conns: list[int] = []
        self.opens = 0
        self.rest: list[tuple[str, bytes]] = []

    def subscribe_messages(self, channel, natives):
        return [self.subscribe.decode()]

    def on_open(self, conn, recv_ns):
        self.opens += 1
        super().on_open(conn, recv_ns)

    def on_frame(self, conn, data, recv_ns):
        self.frames.append(bytes(data))
        self.frame_conns.append(conn.id)
        self.emit("trades", Trade("echo", "BTC-USD", 1.0, float(len(data)), "buy", str(len(self.frames)), 0, recv_ns // 1000))

    def on_rest(self, url, body, recv_ns):
        self.rest.append((url, body))


def make(scheme_cls=EchoScheme, **group_kw):
    metrics = Metrics()
    sink = MemorySink()
    pipeline = Pipeline(sink, metrics)
    scheme = scheme_cls(pipeline.emit, metrics)
    return scheme, sink, pipeline, metrics, group_kw


def recorded(relative: str) -> tuple[bytes, list[bytes]]:
    frames = list(open_capture(fixture_path(relative)).frames())
    return [f.data for f in frames if f.kind == SENT][0], [f.data for f in frames if f.kind == RECV]


async def wait_until(cond, timeout: float = 10.0, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(step)


def run_served(listener, scheme, pipeline, until, auto_pong: bool = True, **kw):
    """``run_group`` against a test server of ``listener`` (closed afterwards)."""

    async def go():
        server, url = await serve(listener, auto_pong=auto_pong)
        try:
            return await run_group(scheme, pipeline, url, until, **kw)
        finally:
            server.close()

    return uvloop.run(go())


async def run_group(scheme, pipeline, url, until, timeout=15.0, **kw):
    group = FeedGroup(scheme, pipeline, url=url, **kw)
    task = asyncio.create_task(group.run())
    try:
        await wait_until(lambda: until(group), timeout)
    finally:
        group.stop("test over")
        reason = await asyncio.wait_for(task, 10)
    return group, reason


# --- against the simulator --------------------------------------------------------------------
def test_every_frame_once_in_order_and_subscribe_sent():
    subscribe, frames = recorded(KRAKEN_48)
    scheme, sink, pipeline, metrics, _ = make()
    scheme.subscribe = subscribe

    async def go():
        sim = Simulator([fixture_path(KRAKEN_48)], pace="fast")
        await sim.start()
        try:
            group, reason = await run_group(scheme, pipeline, sim.url, lambda g: len(scheme.frames) >= len(frames))
            await asyncio.sleep(0)
            return sim, group, reason, [c.received for c in sim_clients_seen]
        finally:
            await sim.close()

    sim_clients_seen = []
    orig = Simulator._route

    def spy(self, request):
        listener = orig(self, request)
        if isinstance(listener, WSListener):
            sim_clients_seen.append(listener)
        return listener

    Simulator._route = spy
    try:
        sim, group, reason, received = uvloop.run(go())
    finally:
        Simulator._route = orig
    pipeline.close()
    assert scheme.frames == frames  # every frame, in order, exactly once
    assert received == [[subscribe]]  # the subscribe message reached the server
    assert metrics.frames == len(frames) and metrics.reconnects == 0
    assert reason == "test over"
    assert sink.statuses() == [("connected", "ws://" + sim.url.split("://")[1]), ("disconnected", "test over"),
                               ("stopped", "test over")]
    trades = [r for t, r in sink.records if t == "trades"]
    assert len(trades) == len(frames) and metrics.events["trades"] == len(frames)
    assert metrics.produce_latency.total == len(frames)
    assert sink.closed and sink.polls >= 1


def test_reconnect_after_server_drops_resumes_every_frame():
    subscribe, frames = recorded(KRAKEN_48)
    scheme, sink, pipeline, metrics, _ = make()
    scheme.subscribe = subscribe

    async def go():
        sim = Simulator([fixture_path(KRAKEN_48)], pace="fast", close_after=10, resume=True)
        await sim.start()
        try:
            await run_group(scheme, pipeline, sim.url, lambda g: len(scheme.frames) >= len(frames),
                            backoff_base=0.02)
        finally:
            await sim.close()

    uvloop.run(go())
    assert scheme.frames == frames  # 49 frames over 5 connections: none lost, none twice
    assert metrics.reconnects == 4 and scheme.opens == 5
    st = sink.statuses()
    assert [s for s, _ in st].count("connected") == 5
    drops = [r for s, r in st if s == "disconnected"]
    assert drops[:4] == ["closed by server (1001: close-after)"] * 4
    assert st[-1] == ("stopped", "test over")


def test_reconnect_replays_from_start_without_resume():
    subscribe, frames = recorded(KRAKEN_48)
    scheme, sink, pipeline, metrics, _ = make()
    scheme.subscribe = subscribe

    async def go():
        sim = Simulator([fixture_path(KRAKEN_48)], pace="fast", close_after=20)
        await sim.start()
        try:
            await run_group(scheme, pipeline, sim.url, lambda g: len(scheme.frames) >= 45, backoff_base=0.02)
        finally:
            await sim.close()

    uvloop.run(go())
    assert scheme.frames[:20] == frames[:20] and scheme.frames[20:40] == frames[:20]
    assert metrics.reconnects >= 2


# --- small picows servers of our own -----------------------------------------------------------
class ServerListener(WSListener):
    """A test server connection: records what it gets; ``script(transport)`` runs on connect."""

    instances: list["ServerListener"] = []
    script = None
    auto_pong = True

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[WSMsgType, bytes]] = []
        type(self).instances.append(self)

    def on_ws_connected(self, transport) -> None:
        self.transport = transport
        if type(self).script is not None:
            type(self).script(transport)

    def on_ws_frame(self, transport, frame) -> None:
        self.received.append((frame.msg_type, frame.get_payload_as_bytes()))
        if frame.msg_type is WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()


async def serve(listener_cls, auto_pong=True):
    listener_cls.instances = []
    server = await ws_create_server(lambda _req: listener_cls(), "127.0.0.1", 0, enable_auto_pong=auto_pong)
    return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_watchdog_reconnects_a_silent_connection():
    class Silent(EchoScheme):
        silence_timeout = 0.4

    class Quiet(ServerListener):
        pass

    scheme, sink, pipeline, metrics, _ = make(Silent)
    connects: list[float] = []

    async def go():
        server, url = await serve(Quiet)
        try:
            orig = scheme.on_open

            def on_open(conn, recv_ns):
                connects.append(time.monotonic())
                orig(conn, recv_ns)

            scheme.on_open = on_open
            await run_group(scheme, pipeline, url, lambda g: len(connects) >= 3, backoff_base=0.01)
        finally:
            server.close()

    uvloop.run(go())
    gaps = [b - a for a, b in zip(connects, connects[1:])]
    assert all(0.4 <= g < 0.4 + 0.1 + 0.5 for g in gaps), gaps  # timeout + tick + backoff (+ slack)
    reasons = [r for s, r in sink.statuses() if s == "disconnected"]
    assert reasons[0].startswith("silent for ")
    assert metrics.reconnects >= 2
    assert all(msg == (WSMsgType.TEXT, EchoScheme.subscribe) for msg in Quiet.instances[0].received[:1])


def test_application_and_protocol_pings():
    class AppPing(EchoScheme):
        ping_interval = 0.1

        def ping_message(self):
            return '{"event":"ping"}'

    class ProtoPing(EchoScheme):
        ping_interval = 0.1
        silence_timeout = 0.5  # pongs are activity: no watchdog reconnect

    class Srv(ServerListener):
        pass

    async def go(cls):
        scheme, sink, pipeline, metrics, _ = make(cls)
        server, url = await serve(Srv, auto_pong=False)
        try:
            await run_group(scheme, pipeline, url, lambda g: False if not Srv.instances else
                            sum(1 for m in Srv.instances[0].received if m[1] == b'{"event":"ping"}' or m[0] is WSMsgType.PING) >= 8,
                            timeout=5)
        finally:
            server.close()
        return metrics, Srv.instances[0].received

    metrics, received = uvloop.run(go(AppPing))
    assert received[0] == (WSMsgType.TEXT, EchoScheme.subscribe)
    assert received.count((WSMsgType.TEXT, b'{"event":"ping"}')) >= 8
    metrics, received = uvloop.run(go(ProtoPing))
    assert sum(1 for t, _ in received if t is WSMsgType.PING) >= 8
    assert metrics.reconnects == 0  # answered pings kept the watchdog quiet for > silence_timeout


def test_scheme_timer_gets_the_connections_that_are_up_and_a_failure_is_counted():
    """``on_timer`` every ``timer_interval`` s with the connections that are up; what it emits is
    published (the frame is ended after it); an exception is an "internal error", not the end."""

    class Timed(EchoScheme):
        timer_interval = 0.1

        def __init__(self, emit, metrics=None, **kw) -> None:
            super().__init__(emit, metrics, **kw)
            self.ticks: list[tuple[list[int], int]] = []

        def on_timer(self, conns, now_ns):
            self.ticks.append(([c.id for c in conns], now_ns))
            self.emit("trades", Trade("echo", "BTC-USD", 1.0, 1.0, "buy", "timer", 0, now_ns // 1000))
            if len(self.ticks) == 2:
                raise RuntimeError("boom")

    class Srv(ServerListener):
        pass

    scheme, sink, pipeline, metrics, _ = make(Timed)

    run_served(Srv, scheme, pipeline, lambda g: len(scheme.ticks) >= 5 and
               sum(1 for ids, _ in scheme.ticks if ids == [0]) >= 2, timeout=10)
    assert all(ids in ([], [0]) for ids, _ in scheme.ticks)
    assert [ns for _, ns in scheme.ticks] == sorted(ns for _, ns in scheme.ticks)
    assert metrics.errors.counts["internal error"] == 1
    assert sum(1 for t, r in sink.records if t == "trades" and r.trade_id == "timer") >= 5


def test_fragmented_messages_are_reassembled_and_server_pings_answered():
    class Frag(ServerListener):
        @staticmethod
        def script(t):
            t.send(WSMsgType.TEXT, b'{"part":', fin=False)
            t.send_ping(b"hello")  # control frames may come between fragments
            t.send(WSMsgType.CONTINUATION, b'"one",', fin=False)
            t.send(WSMsgType.CONTINUATION, b'"end":1}', fin=True)
            t.send(WSMsgType.TEXT, b'{"whole":true}')
            t.send(WSMsgType.BINARY, b"\x00\x01", fin=False)
            t.send(WSMsgType.CONTINUATION, b"\x02", fin=True)

    scheme, sink, pipeline, metrics, _ = make()

    run_served(Frag, scheme, pipeline, lambda g: len(scheme.frames) >= 3 and
               any(t is WSMsgType.PONG for t, _ in Frag.instances[0].received), auto_pong=False)
    assert scheme.frames == [b'{"part":"one","end":1}', b'{"whole":true}', b"\x00\x01\x02"]
    assert (WSMsgType.PONG, b"hello") in Frag.instances[0].received
    assert metrics.frames == 3 and not metrics.errors.counts


def test_frame_over_max_frame_bytes_is_bad_input_and_the_feed_goes_on():
    class Srv(ServerListener):
        n = 0

        @staticmethod
        def script(t):
            Srv.n += 1
            if Srv.n == 1:
                t.send(WSMsgType.TEXT, b'{"small":1}')
                t.send(WSMsgType.TEXT, b"x" * 101)  # over max_frame_bytes
                t.send(WSMsgType.TEXT, b'{"behind":1}')  # on a connection being dropped: ignored
            else:
                t.send(WSMsgType.TEXT, b'{"small":%d}' % Srv.n)

    class Small(EchoScheme):
        max_frame_bytes = 100

    scheme, sink, pipeline, metrics, _ = make(Small)

    run_served(Srv, scheme, pipeline, lambda g: len(scheme.frames) >= 2, backoff_base=0.01)
    assert scheme.frames == [b'{"small":1}', b'{"small":2}']
    assert metrics.errors.counts["echo: frame too large"] == 1
    assert metrics.reconnects == 1
    assert ("disconnected", "frame too large") in sink.statuses()
    assert metrics.frames == 3  # the big one is counted as received


def test_oversized_fragmented_and_huge_frames_counted():
    class Big(ServerListener):
        n = 0

        @staticmethod
        def script(t):
            Big.n += 1
            if Big.n == 1:  # fragments adding up to more than the limit
                t.send(WSMsgType.TEXT, b"a" * 600, fin=False)
                t.send(WSMsgType.CONTINUATION, b"b" * 600, fin=True)
            elif Big.n == 2:  # one frame over picows' hard limit (2 x limit + 64 KiB)
                t.send(WSMsgType.TEXT, b"c" * 200_000)
            else:
                t.send(WSMsgType.TEXT, b'{"ok":1}')

    class Small(EchoScheme):
        max_frame_bytes = 1000

    scheme, sink, pipeline, metrics, _ = make(Small)

    run_served(Big, scheme, pipeline, lambda g: scheme.frames == [b'{"ok":1}'], backoff_base=0.01)
    assert metrics.errors.counts["echo: frame too large"] == 2
    assert metrics.reconnects == 2


def test_connect_failures_back_off_and_max_retries_gives_up():
    scheme, sink, pipeline, metrics, _ = make()

    async def go():
        # a port with nothing listening
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        group = FeedGroup(scheme, pipeline, url=f"ws://127.0.0.1:{port}", backoff_base=0.01, max_retries=3)
        return await asyncio.wait_for(group.run(), 10)

    reason = uvloop.run(go())
    assert reason == "all connections gave up"
    assert metrics.reconnects == 3
    assert sink.statuses() == [("stopped", "all connections gave up")]


def test_backoff_full_jitter():
    b = Backoff(0.5, 30.0, rng=lambda: 1.0)
    assert [b.next() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    b.reset()
    assert b.next() == 0.5
    b = Backoff(0.5, 30.0)
    assert all(0 <= b.next() <= 30 for _ in range(100))


def test_scheme_reconnect_request_and_rest_fetch_through_override():
    """conn.reconnect() from inside on_frame (a resync), and conn.fetch() of a REST URL moved onto
    the simulator by the REST override."""
    subscribe, frames = recorded(KRAKEN_48)

    class Resync(EchoScheme):
        rest_url = "https://api.kraken.com"

        def on_frame(self, conn, data, recv_ns):
            super().on_frame(conn, data, recv_ns)
            if len(self.frames) == 5:
                conn.reconnect("resync XBT/USD")
                conn.fetch("https://api.kraken.com/0/public/AssetPairs")

    scheme, sink, pipeline, metrics, _ = make(Resync)
    scheme.subscribe = subscribe

    async def go():
        sim = Simulator([fixture_path(KRAKEN_48)], pace="fast")
        await sim.start()
        try:
            await run_group(scheme, pipeline, sim.url, lambda g: len(scheme.frames) >= 5 + len(frames) and scheme.rest,
                            backoff_base=0.02, rest_base=sim.rest_url)
        finally:
            await sim.close()

    uvloop.run(go())
    assert scheme.frames[:5] == frames[:5] and scheme.frames[5:] == frames  # reloaded from the start
    assert ("disconnected", "resync XBT/USD") in sink.statuses()
    assert scheme.rest[0][0] == "https://api.kraken.com/0/public/AssetPairs"
    assert scheme.rest[0][1] == open_capture(fixture_path(KRAKEN_48)).rest_body("/0/public/AssetPairs")


# --- REST client ---------------------------------------------------------------------------------
def test_rest_fetch_errors_and_rebase():
    assert rest.rebase("https://api.kraken.com/0/public/AssetPairs?x=1", "http://127.0.0.1:5") == \
        "http://127.0.0.1:5/0/public/AssetPairs?x=1"
    assert rest.rebase("https://futures.kraken.com/derivatives/api/v3/instruments", "http://h:1/d",
                       "https://futures.kraken.com/derivatives") == "http://h:1/d/api/v3/instruments"
    assert rest.rest_base_for("ws://127.0.0.1:8765/ws") == "http://127.0.0.1:8765"
    assert rest.rest_base_for("wss://x.test") == "https://x.test"

    async def go():
        sim = Simulator([fixture_path(KRAKEN_48)], pace="fast")
        await sim.start()
        try:
            body = await rest.fetch(sim.rest_url + "/0/public/AssetPairs")
            with pytest.raises(rest.RestError) as missing:
                await rest.fetch(sim.rest_url + "/nope")
        finally:
            await sim.close()
        with pytest.raises(rest.RestError) as refused:
            await rest.fetch(sim.rest_url + "/0/public/AssetPairs", timeout=2)
        with pytest.raises(rest.RestError) as bad:
            await rest.fetch("ftp://x/y")
        return body, missing.value, refused.value, bad.value

    body, missing, refused, bad = uvloop.run(go())
    assert json.loads(body)["result"]["XXBTZUSD"]["wsname"] == "XBT/USD"
    assert missing.status == 404 and "HTTP 404" in str(missing) and "/nope" in str(missing)
    assert "refused" in str(refused)
    assert "bad URL" in str(bad)
    assert rest.ssl_context().verify_mode.name == "CERT_REQUIRED"


# --- status line, metrics endpoint -------------------------------------------------------------
def test_status_line_and_prometheus_endpoint():
    import io

    metrics = Metrics()
    sink = MemorySink()
    stream = io.StringIO()
    line = StatusLine(metrics, sink, None, stream=stream, tty=True)
    metrics.frames += 50
    metrics.events["lob"] += 120
    metrics.reconnects = 2
    for ns in (10_000, 20_000, 5_000_000):
        metrics.produce_latency.record(ns)
    text = line.line()
    assert "f/s" in text and "ev/s" in text and "reconn 2" in text and "queue 0" in text
    assert "p50" in text and "p99" in text
    line.show()
    assert stream.getvalue().startswith("\r\x1b[K")
    assert window_percentile(metrics.produce_latency.counts, None, 50) >= 20_000

    async def go():
        server = await MetricsServer(lambda: prometheus_text(metrics, sink), "127.0.0.1", 0).start()
        try:
            loop = asyncio.get_running_loop()
            get = lambda path: urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5).read()
            body = await loop.run_in_executor(None, get, "/metrics")
        finally:
            await server.close()
        return body.decode()

    body = uvloop.run(go())
    assert "atomfast_frames_total 50" in body
    assert 'atomfast_events_total{topic="lob"} 120' in body
    assert "atomfast_reconnects_total 2" in body
    assert 'atomfast_produce_latency_seconds{quantile="0.99"}' in body
    assert "atomfast_sink_queue 0" in body


# --- clean shutdown on SIGTERM (in-process: the run command's own executor) ------------------
def test_sigterm_stops_cleanly_flushing_the_sink():
    import argparse

    from atomfast.commands.run import Setup, execute

    subscribe, frames = recorded(KRAKEN_48)
    sink = MemorySink()
    metrics = Metrics()

    class Sub(EchoScheme):
        pass

    Sub.subscribe = subscribe

    class _Setup(Setup):
        pass

    async def go():
        sim = Simulator([fixture_path(KRAKEN_48)], pace="recorded")
        await sim.start()
        setup = Setup("run", "echo", None, ["BTC-USD"], ["trades"], sim.url, sim.rest_url, scheme_cls=_factory(Sub),
                      instruments={})
        args = argparse.Namespace(backoff=0.5, max_retries=None, max_frames=0, duration=None)
        loop = asyncio.get_running_loop()
        loop.call_later(0.8, os.kill, os.getpid(), signal.SIGTERM)
        try:
            return await asyncio.wait_for(execute(setup, args, sink, metrics, status=False), 10)
        finally:
            await sim.close()

    reason, group = uvloop.run(go())
    assert reason == "SIGTERM"
    assert sink.closed  # pipeline.close() flushed and closed the sink
    st = sink.statuses()
    assert st[-2:] == [("disconnected", "SIGTERM"), ("stopped", "SIGTERM")]
    assert metrics.frames >= 1  # frames arrived at the recorded pace before the signal


def _factory(cls):
    """A scheme class whose constructor takes run's (emit, metrics, instruments, symbols, channels)."""

    class Made(cls):
        def __init__(self, emit, metrics=None, instruments=None, symbols=(), channels=()):
            super().__init__(emit, metrics)

    Made.__name__ = cls.__name__
    return Made


# --- end to end: `atomfast simulate` + `atomfast run` / `record` as subprocesses -----------------
KRAKEN_50 = "cryptofeed/KRAKEN.ws.50.0"
#: the pairs of KRAKEN.ws.50.0, normalised (XBT -> BTC)
KRAKEN_50_SYMBOLS = "WAVES-EUR,KSM-BTC,ETH-CHF,OMG-USD,BTC-CHF,ADA-BTC"
#: lob events of KRAKEN.ws.50.0, as the Kraken scheme's own replay test counts them
KRAKEN_50_LOB = 6855


def kraken_v1():
    try:
        from atomfast.exchanges.kraken import KrakenSpotV1Scheme
    except ImportError as exc:  # pragma: no cover - the Kraken schemes are written in parallel
        pytest.skip(f"the Kraken v1 scheme is not available: {exc}")
    return KrakenSpotV1Scheme


def atomfast(*args, timeout: float = 60, **kw):
    """``python -m atomfast.cli ARGS`` (the test kit's ``run_cli``), 60 s at most by default."""
    return run_cli(*args, timeout=timeout, **kw)


def stdout_topics(stdout: str) -> dict:
    from collections import Counter

    return Counter(json.loads(ln)["topic"] for ln in stdout.splitlines() if ln)


def replay_counts(relative: str) -> dict:
    from atomfast.replay import replay_capture
    from atomfast.sinks.null import NullSink

    metrics = Metrics()
    replay_capture([path if isinstance(path := relative, Path) else fixture_path(relative)], "kraken",
                   NullSink(framing=None), metrics)  # counts only: no Avro encoding needed
    return metrics.summary()


def test_end_to_end_kraken_v1_through_the_simulator():
    """`run --endpoint ws://127.0.0.1:P` against `simulate KRAKEN.ws.50.0`: the scheme is picked
    from the simulator's capture (v1), and the network path publishes exactly what replay does."""
    kraken_v1()
    offline = replay_counts(KRAKEN_50)
    assert offline["checksum_failed"] == 0 and offline["events"]["lob"] == KRAKEN_50_LOB
    with SimProcess(fixture_path(KRAKEN_50), "--pace", "fast") as sim:
        r = atomfast("run", "--exchange", "kraken", "--endpoint", sim.url, "--sink", "stdout",
                     "--symbols", KRAKEN_50_SYMBOLS, "--channels", "lob", "--max-frames", offline["frames"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "KrakenSpotV1Scheme" in r.stderr
    s = summary_of(r.stderr)
    assert s["frames"] == offline["frames"]
    assert s["checksum_failed"] == 0 and s["checksum_ok"] == offline["checksum_ok"]
    assert s["events"]["lob"] == offline["events"]["lob"] == KRAKEN_50_LOB
    assert s["events"]["spread"] == offline["events"]["spread"]
    topics = stdout_topics(r.stdout)
    assert topics["lob"] == offline["events"]["lob"]
    last = json.loads(r.stdout.splitlines()[-1])
    assert (last["topic"], last["status"], last["reason"]) == ("status", "stopped", "max frames")


def test_end_to_end_reconnect_reloads_books():
    """The simulator drops the connection every 400 frames (and plays from the start again): the
    feed reconnects, books are marked unsynced and reload from the fresh snapshot: no checksum
    failure, no resync."""
    kraken_v1()
    with SimProcess(fixture_path(KRAKEN_50), "--pace", "fast", "--close-after", "400") as sim:
        r = atomfast("run", "--exchange", "kraken", "--endpoint", sim.url, "--sink", "stdout", "--backoff", "0.01",
                     "--symbols", KRAKEN_50_SYMBOLS, "--channels", "lob", "--max-frames", 1100)
    assert r.returncode == 0, r.stderr[-3000:]
    s = summary_of(r.stderr)
    assert s["reconnects"] == 2 and s["checksum_failed"] == 0 and s["resyncs"] == 0
    assert s["checksum_ok"] > 900
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    status = [(x["status"], x["reason"]) for x in lines if x["topic"] == "status" and not x["symbol"]]
    assert [st for st, _ in status] == ["connected", "disconnected"] * 2 + ["connected", "disconnected", "stopped"]
    assert status[1][1] == "closed by server (1001: close-after)"
    snapshots = [x["symbol"] for x in lines if x["topic"] == "status" and x["status"] == "snapshot"]
    assert len(snapshots) == 3 * 6  # every book reloaded on every connection


def test_sigterm_on_run_flushes_files_and_exits_0(tmp_path):
    import subprocess
    import sys

    import fastavro

    kraken_v1()
    pytest.importorskip("atomfast_avro", reason="the files sink needs the native Avro encoder (native/avro)")
    with SimProcess(fixture_path(KRAKEN_50), "--pace", "recorded") as sim:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(
            [sys.executable, "-m", "atomfast.cli", "run", "--exchange", "kraken", "--endpoint", sim.url,
             "--sink", "files", "--data-dir", str(tmp_path), "--symbols", KRAKEN_50_SYMBOLS, "--channels", "lob"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not list(tmp_path.glob("lob/*.avro")) and time.monotonic() < deadline:
                time.sleep(0.1)  # the files sink writes a block once a record is a second old
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err[-3000:]
    s = summary_of(err)
    assert s["stopped"] == "SIGTERM" and s["checksum_failed"] == 0

    def read(topic):
        recs = []
        for f in sorted(tmp_path.glob(f"{topic}/*.avro")):
            with open(f, "rb") as fh:
                recs.extend(fastavro.reader(fh))
        return recs

    assert len(read("lob")) == s["events"]["lob"] > 0  # everything was flushed
    status = read("status")
    assert (status[-1]["status"], status[-1]["reason"]) == ("stopped", "SIGTERM")


def test_record_then_replay_and_simulate_the_recording(tmp_path):
    kraken_v1()
    out = tmp_path / "kraken.rec.gz"
    offline = replay_counts(KRAKEN_50)
    with SimProcess(fixture_path(KRAKEN_50), "--pace", "fast") as sim:
        r = atomfast("record", "--exchange", "kraken", "--endpoint", sim.url, "--out", out,
                     "--symbols", KRAKEN_50_SYMBOLS, "--channels", "lob", "--max-frames", offline["frames"])
    assert r.returncode == 0, r.stderr[-3000:]
    cap = open_capture(out)
    assert cap.exchange == "kraken"
    frames = list(cap.frames())
    original = [f.data for f in open_capture(fixture_path(KRAKEN_50)).frames() if f.kind == RECV]
    assert [f.data for f in frames if f.kind == RECV] == original
    sent = [f.data for f in frames if f.kind == SENT]
    assert sent and b'"subscribe"' in sent[0]
    assert cap.rest_body("https://api.kraken.com/0/public/AssetPairs")
    # replay of the recording == replay of the original
    again = replay_counts(out)
    assert again["events"] == offline["events"] and again["checksum_failed"] == offline["checksum_failed"]
    # and the simulator serves the recording (record format) like any capture
    with SimProcess(out, "--pace", "fast") as sim:
        client, transport = uvloop.run(_receive_all(receive, sim.url, sent[:1], len(original)))
        assert [d for _, d in client.frames] == original
        assert urllib.request.urlopen(sim.rest_url + "/0/public/AssetPairs", timeout=10).read() == \
            cap.rest_body("https://api.kraken.com/0/public/AssetPairs")


async def _receive_all(receive, url, send, want):
    client, transport = await receive(url, send, want)
    transport.disconnect()
    return client, transport


def test_run_bad_settings_exit_2_with_one_line(tmp_path):
    kraken_v1()
    cases = [
        (["--exchange", "nope"], "unknown exchange"),
        (["--exchange", "kraken", "--endpoint", "http://127.0.0.1:1"], "--endpoint"),
        (["--exchange", "kraken", "--rest-endpoint", "nope"], "--rest-endpoint"),
        (["--exchange", "kraken", "--scheme", "v9"], "no single scheme"),
        (["--exchange", "kraken", "--duration", "0"], "--duration"),
    ]
    for args, words in cases:
        r = atomfast("run", *args, timeout=30)
        assert r.returncode == 2, (args, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    with SimProcess(fixture_path(KRAKEN_50), "--pace", "fast") as sim:
        for args, words in [
            (["--symbols", "NOPE-USD"], "unknown symbol"),
            (["--symbols", "BTC-CHF", "--channels", "bogus"], "unsupported channel"),
            (["--symbols", "BTC-CHF", "--raw", "--sink", "files", "--data-dir", str(tmp_path)], "--raw"),
        ]:
            r = atomfast("run", "--exchange", "kraken", "--endpoint", sim.url, *args, timeout=30)
            assert r.returncode == 2, (args, r.stderr)
            assert words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    # an unreachable REST listing with --fail-fast is not a settings error: exit 1, one line
    r = atomfast("run", "--exchange", "kraken", "--scheme", "v1", "--endpoint", "ws://127.0.0.1:1", "--fail-fast",
                 timeout=30)
    assert r.returncode == 1 and "instrument listing" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_run_raw_and_metrics_endpoint(tmp_path):
    """--raw adds every untouched frame to the raw topic; --metrics-port serves Prometheus text."""
    import socket
    import subprocess
    import sys

    kraken_v1()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, frames = recorded(KRAKEN_50)
    out_path = tmp_path / "stdout.jsonl"
    with SimProcess(fixture_path(KRAKEN_50), "--pace", "fast") as sim, open(out_path, "w") as out_file:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        # stdout to a file: a full pipe nobody reads would block the collector (and its metrics)
        proc = subprocess.Popen(
            [sys.executable, "-m", "atomfast.cli", "run", "--exchange", "kraken", "--endpoint", sim.url, "--sink",
             "stdout", "--raw", "--symbols", KRAKEN_50_SYMBOLS, "--channels", "lob", "--metrics-port", str(port)],
            cwd=ROOT, env=env, stdout=out_file, stderr=subprocess.PIPE, text=True)
        try:
            body = ""
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                    if f'atomfast_frames_total{{exchange="kraken"}} {len(frames)}' in body:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = out_path.read_text()
    assert proc.returncode == 0, err[-3000:]
    assert f'atomfast_frames_total{{exchange="kraken"}} {len(frames)}' in body
    assert 'atomfast_events_total{exchange="kraken",topic="lob"}' in body
    assert 'atomfast_checksum_failed_total{exchange="kraken"} ' in body
    raws = [json.loads(ln) for ln in out.splitlines() if ln.startswith('{"topic":"raw"')]
    # raw also holds the connection's open/close and the stop (atomfast process needs them)
    assert [x["data"].encode() for x in raws if x["kind"] == "frame"] == frames
    assert summary_of(err)["stopped"] == "SIGINT"


def test_run_duration_stops_cleanly():
    kraken_v1()
    with SimProcess(fixture_path(KRAKEN_50), "--pace", "recorded") as sim:
        started = time.monotonic()
        r = atomfast("run", "--exchange", "kraken", "--scheme", "v1", "--endpoint", sim.url, "--sink", "stdout",
                     "--symbols", KRAKEN_50_SYMBOLS, "--duration", "1.5")
        elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr[-3000:]
    assert summary_of(r.stderr)["stopped"] == "duration"
    assert 1.5 <= elapsed < 10
    last = json.loads(r.stdout.splitlines()[-1])
    assert (last["status"], last["reason"]) == ("stopped", "duration")
