"""The capture readers on the real recorded files (exact counts and payloads)."""
import gzip

from atomfast.capture import OPEN, RECV, REST, SENT, RecordWriter, open_capture

from atomfast.testing import fixture_path


def test_cryptofeed_ws_file_kraken_book():
    path = fixture_path("cryptofeed/KRAKEN.ws.50.0")
    cap = open_capture(path)
    frames = list(cap.frames())
    assert cap.urls == ["wss://ws.kraken.com"]
    assert [f.kind for f in frames[:3]] == [OPEN, SENT, RECV]
    assert sum(f.kind == RECV for f in frames) == 2481
    assert frames[0].ts_ns == 1618678132385815100
    assert frames[1].data == (
        b'{"event":"subscribe","pair":["WAVES/EUR","KSM/XBT","ETH/CHF","OMG/USD","XBT/CHF","ADA/XBT"],'
        b'"subscription":{"name":"book","depth":1000}}'
    )
    assert frames[2].data == b'{"connectionID":17843232920108168701,"event":"systemStatus","status":"online","version":"1.8.3"}'
    assert frames[2].ts_ns == 1618678132825818800
    # the REST companion KRAKEN.0: instrument listing and cryptofeed's configuration line
    assert cap.rest_body("/0/public/AssetPairs").startswith(b'{"error":[],"result":{"AAVEAUD":')
    assert cap.configuration["l2_book"][0] == "KSM-BTC"


def test_binary_payloads_are_bytes_literals():
    cap = open_capture(fixture_path("cryptofeed/HUOBI.ws.44.0"))
    binary = [f for f in cap.frames() if f.kind == RECV and f.binary]
    assert binary, "Huobi frames are gzip"
    assert gzip.decompress(binary[0].data).startswith(b"{")


def test_hftbacktest_gz_with_inline_snapshot():
    cap = open_capture(fixture_path("hftbacktest/usdm/btcusdt_20240808.gz"))
    frames = list(cap.frames())
    assert len(frames) == 93954
    rest = [f for f in frames if f.kind == REST]
    assert len(rest) == 1 and rest[0].data.startswith(b'{"lastUpdateId"')
    assert frames[0].kind == RECV


def test_record_format_round_trip(tmp_path):
    out = tmp_path / "cap.rec.gz"
    w = RecordWriter(out, "kraken")
    w.open(1, 0, "wss://ws.kraken.com/v2")
    w.rest(2, "https://api.kraken.com/0/public/AssetPairs", b'{"error":[]}')
    w.sent(3, 0, '{"method":"subscribe"}')
    w.recv(4, 0, b'{"channel":"heartbeat"}')
    w.recv(5, 0, b"\x1f\x8b binary\nwith newline", binary=True)
    w.recv(6, 0, b'{"pretty":\n 1}')
    w.close()
    cap = open_capture(out)
    assert cap.exchange == "kraken"
    assert cap.urls == ["wss://ws.kraken.com/v2"]
    assert cap.rest_body("/0/public/AssetPairs") == b'{"error":[]}'
    got = [(f.ts_ns, f.kind, f.data, f.binary) for f in cap.frames() if f.kind != REST]
    assert got == [
        (1, OPEN, b"", False),
        (3, SENT, b'{"method":"subscribe"}', False),
        (4, RECV, b'{"channel":"heartbeat"}', False),
        (5, RECV, b"\x1f\x8b binary\nwith newline", True),
        (6, RECV, b'{"pretty":\n 1}', False),
    ]


def test_several_connections_merge_in_time_order():
    cap = open_capture(fixture_path("cryptofeed/KRAKEN.ws.48.0"), fixture_path("cryptofeed/KRAKEN.ws.49.0"))
    ts = [f.ts_ns for f in cap.frames()]
    assert ts == sorted(ts)
    assert {f.conn for f in cap.frames()} == {0, 1}
