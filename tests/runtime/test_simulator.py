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
