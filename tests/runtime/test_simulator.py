"""The simulator as a separate process (`python -m atomfast.cli simulate ...`), spoken to over a
real websocket and real HTTP on 127.0.0.1: recorded frames come back byte-identical and in
order, recorded REST answers come back as recorded."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from picows import WSMsgType

from atomfast.capture import RECV, SENT, RecordWriter, open_capture
from atomfast.testing import SimProcess, fixture_path, run_cli, ws_collect
from atomfast.testing import ws_receive as receive

KRAKEN_48 = "cryptofeed/KRAKEN.ws.48.0"
KRAKEN_49 = "cryptofeed/KRAKEN.ws.49.0"


def recorded(path: Path) -> tuple[list[bytes], list[bytes]]:
    frames = list(open_capture(path).frames())
    return [f.data for f in frames if f.kind == SENT], [f.data for f in frames if f.kind == RECV]


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def test_replays_every_frame_byte_identical_and_serves_rest():
    path = fixture_path(KRAKEN_48)
    sent, frames = recorded(path)
    assert sent and len(frames) == 49
    with SimProcess(path, "--pace", "fast") as sim:
        assert sim.url.startswith("ws://127.0.0.1:") and sim.rest_url.startswith("http://127.0.0.1:")

        async def go():
            client, transport = await receive(sim.url, sent[:1], len(frames))
            await asyncio.sleep(0.2)  # nothing more may come
            transport.disconnect()
            return client

        client = asyncio.run(go())
        assert [t for t, _ in client.frames] == [WSMsgType.TEXT] * len(frames)
        assert [d for _, d in client.frames] == frames
        # REST on the same port as the websocket: the recorded body, byte for byte
        capture = open_capture(path)
        body = http_get(sim.rest_url + "/0/public/AssetPairs")
        assert body == capture.rest_body("https://api.kraken.com/0/public/AssetPairs")
        assert len(body) > 100_000
        with pytest.raises(urllib.error.HTTPError) as info:
            http_get(sim.rest_url + "/0/public/Nope")
        assert info.value.code == 404
        about = json.loads(http_get(sim.rest_url + "/_atomfast/capture"))
        assert about["urls"] == ["wss://ws.kraken.com"] and about["frames"] == [49]
        assert about["exchange"] == "kraken"


def test_two_captures_matched_by_subscription():
    p48, p49 = fixture_path(KRAKEN_48), fixture_path(KRAKEN_49)
    sent48, frames48 = recorded(p48)
    sent49, frames49 = recorded(p49)
    assert sent48[0] != sent49[0]
    with SimProcess(p48, p49, "--pace", "fast") as sim:

        async def go():
            # connect in the opposite order of the files: the subscription decides
            c49, t49 = await receive(sim.url, sent49[:1], len(frames49))
            c48, t48 = await receive(sim.url, sent48[:1], len(frames48))
            t48.disconnect()
            t49.disconnect()
            return c48, c49

        c48, c49 = asyncio.run(go())
        assert [d for _, d in c48.frames] == frames48
        assert [d for _, d in c49.frames] == frames49


def test_record_format_binary_frames_close_after_and_recorded_pace(tmp_path):
    cap = tmp_path / "tiny.rec"
    w = RecordWriter(cap, "test")
    t0 = 1_700_000_000_000_000_000
    w.open(t0, 0, "wss://example.test/ws")
    w.sent(t0 + 1, 0, '{"op":"subscribe"}')
    payloads = [b'{"a":1}', b"\x1f\x8b\x00binary\xff", b'{"text":"\xc3\xa9t\xc3\xa9"}', b'{"a":2}', b'{"a":3}']
    for i, p in enumerate(payloads):
        w.recv(t0 + 10 + i * 150_000_000, 0, p, binary=p.startswith(b"\x1f"))
    w.rest(t0, "https://example.test/api/v1/markets?type=spot", b'{"markets":[]}')
    w.close()
    with SimProcess(cap, "--pace", "recorded", "--close-after", "4") as sim:

        async def go():
            started = time.monotonic()
            client, transport = await receive(sim.url, [b'{"op":"subscribe"}'], 99, timeout=10)
            return client, time.monotonic() - started

        client, elapsed = asyncio.run(go())
        assert client.closed_with == 1001  # dropped after 4 frames
        assert [d for _, d in client.frames] == payloads[:4]
        assert [t for t, _ in client.frames] == [WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.TEXT]
        assert elapsed >= 0.4  # three recorded gaps of 0.15 s
        assert http_get(sim.rest_url + "/api/v1/markets?type=spot") == b'{"markets":[]}'
        with pytest.raises(urllib.error.HTTPError):
            http_get(sim.rest_url + "/api/v1/markets")  # the query is part of the key


def test_fast_pace_large_capture_does_not_starve_the_loop():
    """KRAKEN.ws.50.0 (2,481 frames, up to 79 kB) at full speed: all of it, in order, while the
    simulator keeps answering REST requests in between."""
    path = fixture_path("cryptofeed/KRAKEN.ws.50.0")
    sent, frames = recorded(path)
    with SimProcess(path, "--pace", "fast", "--loop") as sim:

        async def go():
            client, transport = await ws_collect(sim.url, sent[:1], len(frames) * 3)
            loop = asyncio.get_running_loop()
            t = time.monotonic()
            await loop.run_in_executor(None, http_get, sim.rest_url + "/_atomfast/capture")
            rest_latency = time.monotonic() - t
            await asyncio.wait_for(client.event.wait(), 60)
            transport.disconnect()
            return client, rest_latency

        client, rest_latency = asyncio.run(go())
        got = [d for _, d in client.frames]
        assert got[: len(frames)] == frames
        assert got[len(frames): 2 * len(frames)] == frames  # --loop starts over
        assert rest_latency < 5


def test_bad_arguments_exit_2(tmp_path):
    r = run_cli("simulate", tmp_path / "missing", "--port", "0", timeout=30)
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr


# --- faults (simulate --faults) -------------------------------------------------------------------
def test_fault_spec_grammar():
    from atomfast.simulator import FaultPlan

    plan = FaultPlan.parse("drop-every=400,stall=3@1000,garbage=0.01,truncate=0.01,duplicate=0.005,reorder=0.005,"
                           "rest-delay=2,rest-status=429:2,rest-status=503:1,refuse=1.5,drop=0.001")
    assert plan == FaultPlan(drop_every=400, drop=0.001, stalls=((3.0, 1000),), garbage=0.01, truncate=0.01,
                             duplicate=0.005, reorder=0.005, rest_delay=2.0, rest_status=((429, 2), (503, 1)),
                             refuse=1.5)
    assert FaultPlan.parse(plan.describe()) == plan
    assert not FaultPlan.parse("") and FaultPlan.parse(" ").describe() == "none"
    assert plan.rest_faults and not FaultPlan.parse("garbage=1").rest_faults


@pytest.mark.parametrize("spec, words", [
    ("bogus=1", "unknown fault 'bogus'"),
    ("drop=2", "not a probability"),
    ("garbage", "expected name=value"),
    ("drop-every=0", "whole number >= 1"),
    ("stall=3", "stall=SECONDS@FRAMES"),
    ("stall=-1@5", "seconds"),
    ("rest-status=200:1", "400..599"),
    ("rest-status=429", "rest-status=CODE:N"),
    ("refuse=abc", "seconds"),
])
def test_bad_fault_spec_is_one_line_exit_2(spec, words):
    from atomfast.simulator import FaultPlan, FaultSpecError

    with pytest.raises(FaultSpecError, match=words.replace("(", r"\(").replace(".", r"\.")):
        FaultPlan.parse(spec)
    if spec == "bogus=1":  # the command line says the same, once, with exit 2
        r = run_cli("simulate", fixture_path(KRAKEN_48), "--port", "0", "--faults", spec, timeout=30)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [
            "atomfast simulate: --faults: unknown fault 'bogus' in 'bogus=1' (known: drop-every, drop, stall, "
            "garbage, truncate, duplicate, reorder, rest-delay, rest-status, refuse)"]


def test_help_documents_the_fault_grammar():
    r = run_cli("simulate", "--help", timeout=30)
    assert r.returncode == 0
    for name in ("drop-every=N", "drop=P", "stall=T@N", "garbage=P", "truncate=P", "duplicate=P", "reorder=P",
                 "rest-delay=T", "rest-status=C:N", "refuse=T", "--seed", "--fault-log"):
        assert name in r.stdout, name


def _faulty_session(path: Path, log: Path, *faults: str, want: int) -> list[bytes]:
    sent, frames = recorded(path)
    with SimProcess(path, "--pace", "fast", "--faults", ",".join(faults), "--seed", "7", "--fault-log", log) as sim:

        async def go():
            client, transport = await receive(sim.url, sent[:1], want)
            transport.disconnect()
            return client

        client = asyncio.run(go())
    return [d for _, d in client.frames]


def test_frame_faults_are_deterministic_and_logged(tmp_path):
    """garbage/truncate/duplicate/reorder on KRAKEN.ws.50.0 with seed 7: the same frames twice,
    and the fault log says exactly what was done to which recorded frame."""
    path = fixture_path("cryptofeed/KRAKEN.ws.50.0")
    _, frames = recorded(path)
    faults = ("garbage=0.02", "truncate=0.02", "duplicate=0.02", "reorder=0.02")
    a = _faulty_session(path, tmp_path / "a.jsonl", *faults, want=1000)
    b = _faulty_session(path, tmp_path / "b.jsonl", *faults, want=1000)
    assert a[:1000] == b[:1000]
    log_a = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    n = min(len(log_a), len(log_b))
    assert n > 40 and log_a[:n] == log_b[:n]
    assert {f["fault"] for f in log_a} == {"garbage", "truncate", "duplicate", "reorder"}
    # rebuild what was sent from the recording and the log: every frame is accounted for
    expect: list[bytes] = []
    by_index: dict[int, list[dict]] = {}
    for f in log_a:
        by_index.setdefault(f["index"], []).append(f)
    i = 0
    while len(expect) < 1000:
        kinds = {f["fault"]: f for f in by_index.get(i, ())}
        if "garbage" in kinds:
            expect.append(a[kinds["garbage"]["at"] - 1])
            assert expect[-1].startswith(b"!garbage ")
        if "truncate" in kinds:
            expect.append(frames[i][: len(frames[i]) // 2])
        elif "duplicate" in kinds:
            expect += [frames[i], frames[i]]
        elif "reorder" in kinds:
            expect += [frames[i + 1], frames[i]]
            i += 1
        else:
            expect.append(frames[i])
        i += 1
    assert a[:1000] == expect[:1000]
    # `at` is the frame's ordinal among everything sent: the garbage frames sit there
    assert all(a[f["at"] - 1].startswith(b"!garbage ") for f in log_a if f["fault"] == "garbage" and f["at"] <= 1000)


def test_drop_every_refuse_and_rest_faults(tmp_path):
    """drop-every closes with 1001 "fault: drop-every" after N frames; refuse answers the next
    upgrade 503 for a while; REST: listings before any websocket are spared, then 429 twice, then
    the recorded body after rest-delay, on the REST listener of its own."""
    path = fixture_path(KRAKEN_48)
    sent, frames = recorded(path)
    log = tmp_path / "faults.jsonl"
    body = open_capture(path).rest_body("https://api.kraken.com/0/public/AssetPairs")
    with SimProcess(path, "--pace", "fast", "--faults", "drop-every=10,refuse=30,rest-status=429:2,rest-delay=0.3",
                    "--fault-log", log) as sim:
        assert sim.rest_url != sim.url.replace("ws://", "http://")  # a listener of its own
        assert http_get(sim.rest_url + "/0/public/AssetPairs") == body  # no websocket yet: spared

        async def go():
            client, transport = await receive(sim.url, sent[:1], 99)
            return client

        client = asyncio.run(go())
        assert client.closed_with == 1001 and [d for _, d in client.frames] == frames[:10]
        from picows import WSError
        with pytest.raises(WSError):
            asyncio.run(go())  # refused for 30 s
        for _ in range(2):
            with pytest.raises(urllib.error.HTTPError) as info:
                http_get(sim.rest_url + "/0/public/AssetPairs")
            assert info.value.code == 429 and b"fault: rest-status" in info.value.read()
        with pytest.raises(urllib.error.HTTPError) as info:  # the websocket port answers REST faults too
            http_get(sim.url.replace("ws://", "http://") + "/0/public/Nope")
        assert info.value.code == 429
        t = time.monotonic()
        assert http_get(sim.rest_url + "/0/public/AssetPairs") == body
        assert time.monotonic() - t >= 0.3
        assert json.loads(http_get(sim.rest_url + "/_atomfast/capture"))["exchange"] == "kraken"  # never faulted
    kinds = [json.loads(x)["fault"] for x in log.read_text().splitlines()]
    assert kinds == ["drop-every", "refuse", "rest-status", "rest-status", "rest-status", "rest-delay"]


def test_stall_is_silence_without_pong(tmp_path):
    """stall=T@N: after N frames nothing for T s, and a websocket PING goes unanswered."""
    from picows import WSListener, WSMsgType, ws_connect

    path = fixture_path(KRAKEN_48)
    sent, frames = recorded(path)

    class Client(WSListener):
        def __init__(self):
            self.frames, self.pongs = [], 0

        def on_ws_frame(self, transport, frame):
            if frame.msg_type is WSMsgType.PONG:
                self.pongs += 1
            elif frame.msg_type is WSMsgType.TEXT:
                self.frames.append((time.monotonic(), frame.get_payload_as_bytes()))

    async def until(predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return predicate()

    with SimProcess(path, "--pace", "fast", "--faults", "stall=4@5", "--fault-log", tmp_path / "f.jsonl") as sim:

        async def go():
            transport, client = await ws_connect(Client, sim.url)
            transport.send(WSMsgType.TEXT, sent[0])
            assert await until(lambda: len(client.frames) >= 5)
            transport.send_ping(b"during")
            await asyncio.sleep(0.5)
            during = client.pongs, len(client.frames)
            assert await until(lambda: len(client.frames) == len(frames))
            transport.send_ping(b"after")
            assert await until(lambda: client.pongs >= 1)
            transport.disconnect()
            return client, during

        client, during = asyncio.run(go())
    assert during == (0, 5)  # in the stall: no frame after the 5th, the PING unanswered
    assert [d for _, d in client.frames] == frames
    assert client.pongs == 1  # a ping in the stall is never answered; the one after it is
    assert [json.loads(x)["fault"] for x in (tmp_path / "f.jsonl").read_text().splitlines()] == ["stall"]
