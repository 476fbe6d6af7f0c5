"""The simulator's markets option: one market's recording served as N markets with distinct
symbols (``Simulator(market_symbol=..., markets=[...])``), spoken to over a real websocket and
real HTTP on 127.0.0.1: exact frames, in round-robin order, renamed in every spelling; REST
answers naming the symbol served for every name."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from picows import WSMsgType

from atomfast.capture import RecordWriter
from atomfast.simulator import MarketFrames, Simulator, load_recordings, multiply_markets
from atomfast.testing import fixture_path, ws_collect

T0 = 1_700_000_000_000_000_000
NAMES = ["BTCUSDT", "ETHUSDT", "X1USDT"]


def depth(u: int) -> bytes:
    return (b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","s":"BTCUSDT","u":%d,'
            b'"b":[["1.0","2"]],"a":[]}}' % u)


TRADE = b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","p":"3.0"}}'
SNAPSHOT = b'{"lastUpdateId":7,"bids":[["1.0","2"]],"asks":[]}'
LISTING = b'{"symbols":[{"symbol":"BTCUSDT"}]}'


def tiny_capture(path, sent: str = "") -> None:
    w = RecordWriter(path, "binance-futures")
    w.open(T0, 0, "wss://fstream.binance.com/public/stream")
    if sent:
        w.sent(T0 + 1, 0, sent)
    for i, frame in enumerate([depth(5), TRADE, depth(6)]):
        w.recv(T0 + 10 + i, 0, frame)
    w.rest(T0, "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000", SNAPSHOT)
    w.rest(T0, "https://fapi.binance.com/fapi/v1/exchangeInfo", LISTING)
    w.close()


def renamed(frame: bytes, name: str) -> bytes:
    return frame.replace(b"BTCUSDT", name.encode()).replace(b"btcusdt", name.lower().encode())


def test_market_frames_round_robin_renamed_in_every_spelling():
    frames = [(T0, depth(5), False), (T0 + 1, TRADE, False)]
    mf = MarketFrames(frames, "BTCUSDT", NAMES)
    assert len(mf) == 6
    assert [f[0] for f in mf] == [T0, T0, T0, T0 + 1, T0 + 1, T0 + 1]  # the recorded time, per copy
    assert mf[0][1] == depth(5)  # the recorded name: unchanged
    assert mf[1][1] == (b'{"stream":"ethusdt@depth@0ms","data":{"e":"depthUpdate","s":"ETHUSDT","u":5,'
                        b'"b":[["1.0","2"]],"a":[]}}')
    assert mf[5][1] == b'{"stream":"x1usdt@trade","data":{"e":"trade","s":"X1USDT","p":"3.0"}}'
    assert mf[-1] == mf[5] and mf[3:5] == [mf[3], mf[4]]
    assert [f[2] for f in mf] == [False] * 6
    with pytest.raises(IndexError):
        mf[6]


def test_multiply_markets_renames_sent_messages_and_rest(tmp_path):
    cap = tmp_path / "tiny.rec"
    tiny_capture(cap, sent='{"method":"SUBSCRIBE","params":["btcusdt@depth@0ms"],"id":1}')
    recordings, rest, _exchange = load_recordings([cap])
    multiply_markets(recordings, rest, "BTCUSDT", NAMES)
    (rc,) = recordings
    assert rc.sent == [f'{{"method":"SUBSCRIBE","params":["{n.lower()}@depth@0ms"],"id":1}}'.encode() for n in NAMES]
    assert sorted(rest) == ["/fapi/v1/depth?symbol=BTCUSDT&limit=1000", "/fapi/v1/depth?symbol=ETHUSDT&limit=1000",
                            "/fapi/v1/depth?symbol=X1USDT&limit=1000", "/fapi/v1/exchangeInfo"]
    assert rest["/fapi/v1/depth?symbol=X1USDT&limit=1000"] == [SNAPSHOT]
    assert rest["/fapi/v1/exchangeInfo"] == [LISTING]  # its path names no symbol: as recorded
    with pytest.raises(ValueError):
        multiply_markets(recordings, rest, "", NAMES)


def test_simulator_serves_the_recording_as_n_markets(tmp_path):
    cap = tmp_path / "tiny.rec"
    tiny_capture(cap)  # no sent message: the stream plays on connect

    async def go():
        sim = Simulator([cap], pace="fast", market_symbol="BTCUSDT", markets=NAMES)
        await sim.start()
        try:
            client, transport = await ws_collect(sim.url, [], 9)
            # (the stream plays on connect: frames may come before ws_collect sets its count)
            for _ in range(200):
                if len(client.frames) >= 9:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)  # nothing more may come
            transport.disconnect()
            loop = asyncio.get_running_loop()
            bodies = {}
            for name in ("ETHUSDT", "X1USDT", "NOPE"):
                url = f"{sim.rest_url}/fapi/v1/depth?symbol={name}&limit=1000"
                bodies[name] = await loop.run_in_executor(None, _get, url)
            info = await loop.run_in_executor(None, _get, sim.rest_url + "/_atomfast/capture")
            return client, bodies, json.loads(info), sim.frames_sent
        finally:
            await sim.close()

    client, bodies, info, sent = asyncio.run(go())
    want = [renamed(f, n) for f in (depth(5), TRADE, depth(6)) for n in NAMES]
    assert [d for _, d in client.frames] == want
    assert [t for t, _ in client.frames] == [WSMsgType.TEXT] * 9
    assert sent == 9
    assert bodies == {"ETHUSDT": SNAPSHOT, "X1USDT": SNAPSHOT, "NOPE": 404}
    assert info["frames"] == [9] and info["connections"] == 1


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code


def test_binance_usdm_session_as_three_markets():
    """The capture the scale benchmark serves: every received frame of the session once per
    market, each market's copy naming only its own symbol."""
    path = fixture_path("hftbacktest/usdm/btcusdt_20240808.gz")
    recordings, rest, _exchange = load_recordings([path])
    (rc,) = recordings
    recorded = len(rc.frames)
    assert recorded == 93_953  # 93,954 lines, one of them the REST depth snapshot
    multiply_markets(recordings, rest, "BTCUSDT", NAMES)
    frames = rc.frames
    assert len(frames) == 3 * recorded
    for i in (0, 1, 2, 3 * 1000 + 1, len(frames) - 1):
        name = NAMES[i % 3].encode()
        data = frames[i][1]
        assert data.startswith(b'{"stream":"' + name.lower() + b"@")
        assert b'"s":"' + name + b'"' in data
        others = [n.encode() for n in NAMES if n.encode() != name]
        assert not any(o in data or o.lower() in data for o in others)
    assert frames[4][1] == renamed(frames.frames[1][1], "ETHUSDT")
