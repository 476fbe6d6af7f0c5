"""The pre-connect token (``Scheme.token_path`` / ``connect_url``, ``rest.post``, the feed's
``_token_url``): against the real simulator (in-process, and ``atomfast simulate`` + ``atomfast run``
as subprocesses), over real HTTP and websockets on 127.0.0.1.

What is checked: a POST before EVERY connect to the scheme's own URL (none with an endpoint of
its own), the connection made to the URL the answer names, a failed POST counted as a "rest
error" and retried with backoff, and the token nowhere: not in a log line, a status, a raw record,
stdout or stderr.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import ClassVar

import pytest
import uvloop

from atomfast import rest
from atomfast.capture import RecordWriter
from atomfast.events import Trade
from atomfast.feed import FeedGroup, redact_url
from atomfast.metrics import Metrics
from atomfast.pipeline import Pipeline
from atomfast.scheme import Instrument, Scheme
from atomfast.simulator import Simulator
from atomfast.testing import MemorySink, SimProcess, cli_summary, fixture_path, run_cli

TOKEN = "tok3n-Secret-4f9c2b"
TOKEN_PATH = "/api/v1/token"


class TokenScheme(Scheme):
    """A test venue whose websocket URL comes from a POST: ``{"endpoint", "token", "ping"}``."""

    exchange = "tok"
    ws_url = "wss://ws.tok.invalid/feed"
    rest_url = "https://api.tok.invalid"
    token_path = TOKEN_PATH
    channels = {"trades": "trade"}
    default_channels = ("trades",)
    ping_interval = 30.0
    subscribe: ClassVar[str] = '{"op":"subscribe"}'

    def __init__(self, emit, metrics=None, **kw) -> None:
        instruments = {"XBT/USD": Instrument("XBT/USD", "BTC-USD", "spot", "BTC", "USD")}
        super().__init__(emit, metrics, instruments, ["BTC-USD"], ["trades"])
        self.connect_ids: list[str] = []

    @classmethod
    def connect_url(cls, body: bytes, connect_id: str) -> tuple[str, float]:
        answer = json.loads(body)
        if "endpoint" not in answer:
            raise ValueError("no endpoint in the answer")
        return f"{answer['endpoint']}?token={answer['token']}&connectId={connect_id}", answer["ping"]

    def subscribe_messages(self, channel, natives):
        return [self.subscribe]

    def on_frame(self, conn, data, recv_ns):
        self.emit("trades", Trade("tok", "BTC-USD", 1.0, float(len(data)), "buy", bytes(data).decode(), 0,
                                  recv_ns // 1000))


def write_capture(path, token_answers: list[bytes], frames=(b'{"n":1}', b'{"n":2}', b'{"n":3}')) -> None:
    """One recorded connection (subscribe, ``frames``) and the token path's answers, in order."""
    w = RecordWriter(path, "tok")
    for body in token_answers:
        w.rest(1_000, TokenScheme.rest_url + TOKEN_PATH, body)
    w.open(2_000, 1, TokenScheme.ws_url)
    w.sent(2_001, 1, TokenScheme.subscribe)
    for i, data in enumerate(frames):
        w.recv(3_000 + i, 1, data)
    w.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)


def answer(ws_url: str, ping: float = 5.0) -> bytes:
    return json.dumps({"endpoint": ws_url + "/feed", "token": TOKEN, "ping": ping}).encode()


# --- rest.post -------------------------------------------------------------------------------------
def test_post_gets_the_recorded_answer_and_fails_as_get_does(tmp_path):
    """``rest.post`` against the simulator's REST listener: the recorded body for the path; a
    path not recorded is a RestError naming the POST and the HTTP status; the websocket port
    (picows' upgrade handler) refuses a POST: HTTP 400."""
    write_capture(tmp_path / "c.rec", [b'{"endpoint":"ws://127.0.0.1:1","token":"a","ping":1}'])

    async def go():
        sim = Simulator([tmp_path / "c.rec"], rest_port=0)
        await sim.start()
        try:
            body = await rest.post(sim.rest_url + TOKEN_PATH)
            with pytest.raises(rest.RestError) as missing:
                await rest.post(sim.rest_url + "/api/v1/other")
            with pytest.raises(rest.RestError) as on_ws_port:
                await rest.post(f"http://127.0.0.1:{sim.port}{TOKEN_PATH}")
            return body, missing.value, on_ws_port.value
        finally:
            await sim.close()

    body, missing, on_ws_port = uvloop.run(go())
    assert body == b'{"endpoint":"ws://127.0.0.1:1","token":"a","ping":1}'
    assert missing.status == 404 and str(missing).startswith("POST http://127.0.0.1:")
    assert str(missing).endswith("/api/v1/other: HTTP 404 Not Found: not found in the capture")
    assert on_ws_port.status == 400


def test_redact_url_drops_the_query():
    assert redact_url("wss://ws-api-spot.kucoin.com/?token=abc&connectId=1") == "wss://ws-api-spot.kucoin.com/"
    assert redact_url("ws://u:p@127.0.0.1:5/feed?token=x#f") == "ws://127.0.0.1:5/feed"


# --- the feed ----------------------------------------------------------------------------------
def _run(tmp_path, token_answers, until, *, close_after=0, max_retries=None, raw=True, url=None):
    """The feed of a TokenScheme (REST override: the simulator's REST listener) until ``until``."""
    port = free_port()
    ws = f"ws://127.0.0.1:{port}"
    write_capture(tmp_path / "c.rec", [a.replace(b"WS", ws.encode()) for a in token_answers])
    metrics = Metrics()
    sink = MemorySink()
    pipeline = Pipeline(sink, metrics)
    scheme = TokenScheme(pipeline.emit, metrics)

    async def go():
        sim = Simulator([tmp_path / "c.rec"], port=port, rest_port=0, close_after=close_after)
        await sim.start()
        group = FeedGroup(scheme, pipeline, url=ws if url == "sim" else url, rest_base=sim.rest_url,
                          backoff_base=0.01, max_retries=max_retries, raw=raw)
        task = asyncio.create_task(group.run())
        try:
            await wait_until(lambda: until(group, sim) or task.done())
        finally:
            group.stop("test over")
            reason = await asyncio.wait_for(task, 10)
            served = dict(sim._rest_served)
            connections = sim.connections
            await sim.close()
        return reason, served, connections, group

    reason, served, connections, group = uvloop.run(go())
    pipeline.close()
    return reason, served, connections, group, sink, metrics, scheme


def test_a_token_is_asked_before_every_connect_and_never_shown(tmp_path, caplog):
    """Two connects (the simulator drops the first after 2 frames): two POSTs, both connections
    made to the answered URL, its ping interval taken (5 s < the scheme's 30 s); the token in no
    log line, status or raw record, and the connection's URL the scheme's own."""
    caplog.set_level(logging.DEBUG)
    reason, served, connections, group, sink, metrics, scheme = _run(
        tmp_path, [b'{"endpoint":"WS/feed","token":"' + TOKEN.encode() + b'","ping":5}'],
        lambda g, sim: sim.connections >= 2 and trades(g) >= 4, close_after=2)
    assert reason == "test over"
    # one POST before each connect (and perhaps one for a connect under way when the test stopped)
    assert connections >= 2 and served[TOKEN_PATH] in (connections, connections + 1) and set(served) == {TOKEN_PATH}
    assert [r.trade_id for t, r in sink.records if t == "trades"][:4] == ['{"n":1}', '{"n":2}', '{"n":1}', '{"n":2}']
    assert scheme.ping_interval == 5.0
    assert group.connections[0].url == TokenScheme.ws_url
    assert metrics.errors.counts.get("rest error", 0) == 0
    statuses = sink.statuses()
    assert statuses[:2] == [("connected", TokenScheme.ws_url), ("disconnected", "closed by server (1001: close-after)")]
    everything = "\n".join(repr(r) for _t, r in sink.records) + "\n" + caplog.text
    assert TOKEN not in everything
    assert sum(1 for t, _r in sink.records if t == "raw") >= 5  # (the raw tap was on)


def trades(group) -> int:
    return sum(1 for t, _r in group.pipeline.sink.records if t == "trades")


def test_a_failed_token_is_a_rest_error_and_a_failed_connect(tmp_path, caplog):
    """An answer naming no URL (KuCoin's error code): counted as "rest error" each time, no
    websocket connection, retried with backoff until the retries run out; nothing echoes it."""
    caplog.set_level(logging.DEBUG)
    reason, served, connections, group, sink, metrics, _scheme = _run(
        tmp_path, [b'{"code":"400100","msg":"' + TOKEN.encode() + b'"}'], lambda g, sim: False, max_retries=2)
    assert reason == "all connections gave up"
    assert served == {TOKEN_PATH: 3} and connections == 0
    assert metrics.errors.counts["rest error"] == 3 and metrics.reconnects == 2
    assert sink.statuses() == [("stopped", "all connections gave up")]
    assert "no websocket URL: POST http://127.0.0.1:" in caplog.text
    assert TOKEN not in caplog.text


def test_an_unanswered_token_path_is_a_rest_error(tmp_path):
    """The REST listener answers 404 (no recording of the path): a "rest error" per attempt."""
    reason, served, connections, _group, _sink, metrics, _scheme = _run(
        tmp_path, [], lambda g, sim: False, max_retries=1)
    assert reason == "all connections gave up" and connections == 0
    assert metrics.errors.counts["rest error"] == 2


def test_an_endpoint_of_its_own_needs_no_token(tmp_path):
    """``url`` (``--endpoint``) other than the scheme's: connected directly, no POST."""
    reason, served, connections, _group, sink, metrics, _scheme = _run(
        tmp_path, [b'{"endpoint":"WS/feed","token":"t","ping":5}'],
        lambda g, sim: trades(g) >= 3, url="sim")
    assert served == {} and connections == 1
    assert [r.trade_id for t, r in sink.records if t == "trades"] == ['{"n":1}', '{"n":2}', '{"n":3}']


# --- atomfast simulate + atomfast run --exchange kucoin, without --endpoint -------------------------
KUCOIN = "cryptofeed/KUCOIN.ws.1.0"


def test_run_kucoin_gets_its_token_from_the_rest_endpoint(tmp_path):
    """``atomfast run --exchange kucoin --rest-endpoint SIM`` (no ``--endpoint``): the run POSTs
    ``/api/v1/bullet-public`` to the simulator, connects to the ``instanceServers`` endpoint it
    answers (the simulator's websocket, token and connectId in the query) and publishes exactly
    the spot capture's row (tests/test_captures.py); the token is in neither stdout nor stderr."""
    capture = fixture_path(KUCOIN)
    port = free_port()
    token = "2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64mdzUOPusi34M_wGoSf7iNyEWJ2gZJLp3fgqG"
    bullet = tmp_path / "BULLET.rec"
    w = RecordWriter(bullet, "kucoin")
    # the answer's shape: https://www.kucoin.com/docs-new/websocket-api/base-info/get-public-token-spot-margin
    w.rest(1_000, "https://api.kucoin.com/api/v1/bullet-public", json.dumps({"code": "200000", "data": {
        "token": token, "instanceServers": [{"endpoint": f"ws://127.0.0.1:{port}/", "encrypt": False,
                                             "protocol": "websocket", "pingInterval": 18000,
                                             "pingTimeout": 10000}]}}).encode())
    w.close()
    with SimProcess(capture, bullet, "--port", port, "--rest-port", 0, "--rate", 2000) as sim:
        r = run_cli("--log-level", "DEBUG", "run", "--exchange", "kucoin", "--rest-endpoint", sim.rest_url, "--sink", "null", "--symbols",
                    "BSV-USDT,SNX-BTC", "--channels", "candle,lob,ticker,trades,trades_l3", "--max-frames", 4721,
                    "--backoff", "0.01", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == 4721
    assert {t: n for t, n in s["events"].items() if t != "status"} == {
        "candle": 6, "lob": 10325, "spread": 560, "ticker": 830, "trades": 18, "trades_l3": 18}
    assert (s["gaps"], s["resyncs"], s["errors"]) == (0, 0, 0)
    assert token not in r.stdout and token not in r.stderr
    assert "ws://127.0.0.1:%d/?token" % port not in r.stderr
