"""The capture readers' fast paths read exactly what the plain ways read: bytes literals as
``ast.literal_eval`` does, lines across read blocks, REST files as bytes; the listing helpers'
remembered answers."""
import ast
import gzip
import os
import random

import pytest

from atomfast import capture as C
from atomfast.capture import Capture, _read_cryptofeed_rest, open_capture
from atomfast.exchanges import _common
from atomfast.exchanges.binance import parse as binance_parse
from atomfast.exchanges.deribit import parse as deribit_parse
from atomfast.exchanges.okx import parse as okx_parse


def _literal_eval(payload: bytes):
    try:
        data = ast.literal_eval(payload.decode("utf-8", "surrogateescape"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return data if isinstance(data, bytes) else None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bytes_literal_reads_as_literal_eval():
    rnd = random.Random(7)
    for _ in range(2000):  # what cryptofeed writes: repr() of a binary frame
        data = os.urandom(rnd.randint(0, 200))
        assert C._bytes_literal(repr(data).encode()) == data
    tricky = [b"b''", b'b""', b"b'", b"b'a", b"b'\\'", b"b'\\\\'", b"b'\\\\\\''", b"b'a'b'", b"b'\\\\''",
              b"b'ab' b'cd'", b"b'a' ", b"b'\\x4'", b"b'\\x41'", b"b'\\777'", b"b'\\q'", b"b'\t'", b"b'\x00'",
              b"b'\xc3\xa9'", b"b'a\"b'", b'b"it\'s"', b'b"\\""', b"b'\\\n'", b"b'\\r\\n\\t'"]
    alphabet = [b"'", b'"', b"\\", b"x", b"4", b"7", b"n", b" ", b"\t", b"\x00", b"\xff", b"q"]
    for _ in range(5000):
        quote = rnd.choice([b"'", b'"'])
        tricky.append(b"b" + quote + b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6))) + quote)
    for payload in tricky:
        assert C._bytes_literal(payload) == _literal_eval(payload), payload


def _everything(paths, report):
    cap = open_capture(*paths, report=report)
    return (cap.urls, cap.rest, cap.configuration, cap.formats), [tuple(f) for f in cap.frames()]


@pytest.mark.parametrize("name", ["cryptofeed/KRAKEN.ws.50.0", "cryptofeed/HUOBI.ws.44.0", "cryptofeed/BINANCE.ws.1.0"])
def test_lines_across_read_blocks(monkeypatch, name):
    from atomfast.testing import fixture_path

    path = fixture_path(name)
    whole = _everything([path], lambda kind, detail: None)
    monkeypatch.setattr(C, "_CHUNK", 97)  # most lines span blocks
    assert _everything([path], lambda kind, detail: None) == whole


def test_ragged_files_across_read_blocks(tmp_path, monkeypatch):
    lines = [b"wss://ws.x.com <-> 1.5", b"2.25: {\"a\":1}", b"", b"3: b'\\x00\\''", b"nonsense", b"4.1234567891: []",
             b"5x: {}", b"6.5: b'\xc3'"]
    body = b"\n".join(lines * 50) + b"\n7.5: {\"cut\": ["
    (tmp_path / "X.ws.1.0").write_bytes(body)
    (tmp_path / "X.ws.2.0.gz").write_bytes(gzip.compress(body + b"1]}\n")[:-30])  # ends early
    (tmp_path / "X.0").write_bytes(b"https://x.com/a -> 1.5: {\"a\":1} header: {\"h\":1}\r\nconfiguration: {\"t\":[1]}\n"
                                   b"https://x.com/a -> 2: {\"a\":2} header: no\nhttps://x.com/b  -> 3: x\n"
                                   b"https://x.com/c -> 4: caf\xc3\xa9 \xff")
    runs = []
    for chunk in (C._CHUNK, 1, 5, 64):
        monkeypatch.setattr(C, "_CHUNK", chunk)
        reports = []
        runs.append((_everything([tmp_path / "X.ws.1.0", tmp_path / "X.ws.2.0.gz"],
                                 lambda kind, detail: reports.append((kind, detail))), reports))
    assert all(run == runs[0] for run in runs[1:])
    (head, frames), reports = runs[0]
    assert head[1] == {"https://x.com/a": [(1_500_000_000, b'{"a":1}'), (2_000_000_000, b'{"a":2} header: no')],
                       "https://x.com/c": [(4_000_000_000, b"caf\xc3\xa9 \xff")]}
    assert head[2] == {"t": [1]}
    assert [k for k, _ in reports].count(C.TRUNCATED) == 2
    assert sum(1 for f in frames if f[4] == b"\x00'") > 50  # the plain file's 50, and the gzip's up to its break


def test_listing_helpers_answer_the_same_twice():
    for value in ("0.01000000", "1.00000000", "0.5", " 0.5", "1e-5", "nan", "abc", "", 0.0005, 1e-05, 10.0, -0.0,
                  float("nan"), float("inf"), 10, True, None):
        first = [_common.decimals_of(value, d) for d in (8, 3, 0)]
        assert [_common.decimals_of(value, d) for d in (8, 3, 0)] == first
    assert _common.decimals_of("0.0001") == 4 and _common.decimals_of(True, 5) == 5 and _common.decimals_of(1) == 0
    assert binance_parse.decimals_of("0.01000000") == binance_parse.decimals_of("0.01000000") == 2
    assert deribit_parse.expiry_from_code("24SEP21") == deribit_parse.expiry_from_code("24SEP21") == "20210924"
    assert deribit_parse.strike_text(2.5) == deribit_parse.strike_text(2.5) == "2.5"
    assert deribit_parse.strike_text("2d4") == deribit_parse.strike_text("2d4") == "2.4"
    for bad in ("30FEB21", "XX"):
        for _ in range(2):  # a code that is none raises each time
            with pytest.raises(KeyError):
                deribit_parse.expiry_from_code(bad)
    assert okx_parse._date("261225") == okx_parse._date("261225") == "20261225"
    for _ in range(2):
        with pytest.raises(KeyError):
            okx_parse._date("261345")


# ---------------------------------------------------------------------------------------------
# the compiled line reader (atomfast._capture) against the Python reader it replaced


from pathlib import Path  # noqa: E402

from atomfast.testing import FIXTURES  # noqa: E402

from . import capture_reference as REF  # noqa: E402

REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def _read_all(module, paths):
    """What a reader module makes of a capture: its head, every frame (with its type's name) and
    every report; or the refusal's message."""
    reports = []
    try:
        cap = module.open_capture(*paths, report=lambda kind, detail: reports.append((kind, detail)))
    except ValueError as exc:
        return "refused", str(exc)
    frames = [(type(f).__name__, tuple(f)) for f in cap.frames()]
    return (cap.urls, cap.rest, cap.configuration, cap.formats, cap.exchange), frames, reports


def _capture_files():
    files = sorted(p for root in (FIXTURES, REPO_DATA) for p in root.rglob("*") if p.is_file())
    return [p for p in files if p.name != "README.md"]


@pytest.mark.parametrize("path", _capture_files(), ids=lambda p: str(p.relative_to(p.parents[1])))
def test_compiled_reader_reads_every_capture_as_before(path):
    new = _read_all(C, [path])
    assert new == _read_all(REF, [path])
    if new[0] != "refused" and ".ws." in path.name:
        assert new[1] and all(name == "Frame" for name, _ in new[1])


def test_compiled_reader_merges_connections_as_before():
    paths = [FIXTURES / "cryptofeed/KRAKEN.ws.48.0", FIXTURES / "cryptofeed/KRAKEN.ws.49.0"]
    new = _read_all(C, paths)
    assert new == _read_all(REF, paths) and len(new[1]) == 51 + 62


_CF_ODD = [b"wss://ws.x.com <-> 1.5", b"2.25: {\"a\":1}", b"12.123456789123: [1]", b"3.5: b'\\x00\\x01'",
           b"3.6: b\"it's\"", b"4: []", b"5.: {}", b"6.5 : {}", b"1_0.5: {}", b"7.+5: {}", b"8.5\t: x", b"9x.1: {}",
           b"12345678901234567890.5: {}", b"10.5:{}", b"11.5: b'\\q'", b"11.6: b'unterminated", b"12.5: ",
           b"wss://ws.x.com <- 13.5: {\"op\":\"subscribe\"}", b"14.5: b", b"\xff\xfe", b"15.5: caf\xc3\xa9 \xff",
           b"16.25: \r", b"17.5: b''"]
_HFT_ODD = [b"1722470400000000000 {\"e\":1}", b"1722470400000000001 {\"lastUpdateId\":5,\"bids\":[]}",
            b"12345678901234567890 {}", b"123456789012345678901 {}", b"12 ", b"12", b" 12 {}", b"1x {}",
            b"5 {\"lastUpdateId\"", b"6  {}"]
_RECORD_ODD = [b"#atomfast-capture 1 kraken", b"1 0 open wss://ws.kraken.com", b"2 0 recv {\"a\":1}", b"",
               b"3 0 text64 eyJhIjoKMX0=", b"4 0 bin AAEC/w==", b"5 0 bin AAE", b"6 0 bin AA!C", b"7 0 sent {\"x\":1}",
               b"8 0 rest https://api.kraken.com/0/public/AssetPairs {\"result\":{}}", b"9 0 rest https://x.com/a",
               b"10 1 recv {\"b\":2}", b"11 1 open wss://ws-auth.kraken.com", b"12 1 recv", b"13 1 recv ",
               b"14 x recv {}", b"15 0 nope {}", b"16 0", b"17", b"18  0 recv {}", b"123456789012345678901 2 recv []",
               b"19 0 recv {\"c\":3} tail"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # b'\\q': an invalid escape, read as literal_eval does
@pytest.mark.parametrize("name,lines", [("X.ws.1.0", _CF_ODD), ("X.ws.2.0.gz", _CF_ODD), ("hft.gz", _HFT_ODD),
                                        ("rec.txt", _RECORD_ODD), ("rec.gz", _RECORD_ODD)])
@pytest.mark.parametrize("chunk", [C._CHUNK, 7])
def test_compiled_reader_odd_lines_as_before(tmp_path, monkeypatch, name, lines, chunk):
    """Lines of every shape, good and bad, plain and gzip, whole, cut short and ended early."""
    monkeypatch.setattr(C, "_CHUNK", chunk)
    monkeypatch.setattr(REF, "_CHUNK", chunk)
    body = b"\n".join(lines) + b"\n"
    stem, suffix = (name[:-3], ".gz") if name.endswith(".gz") else (name, "")
    variants = {
        "whole" + suffix: body,
        "unended" + suffix: body + lines[1],  # a last line without its line end, whole
        "cut" + suffix: body + lines[1][:-2],  # ... and cut short
    }
    if suffix:
        variants = {k: gzip.compress(v) for k, v in variants.items()}
        variants["early.gz"] = gzip.compress(body * 40)[:-40]  # a gzip without its end
    for variant, data in variants.items():
        path = tmp_path / f"{stem}.{variant}"
        path.write_bytes(data)
        new = _read_all(C, [path])
        assert new == _read_all(REF, [path]), variant


def test_record_format_exact_values(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_bytes(b"\n".join(_RECORD_ODD) + b"\n")
    (head, frames, reports) = _read_all(C, [path])
    assert head == (["wss://ws.kraken.com"], {"https://api.kraken.com/0/public/AssetPairs": [(8, b'{"result":{}}')],
                                               "https://x.com/a": [(9, b"")]}, {}, ["record"], "kraken")
    assert [f for _, f in frames] == [
        (1, 0, "open", "wss://ws.kraken.com", b"", False),
        (2, 0, "recv", "wss://ws.kraken.com", b'{"a":1}', False),
        (3, 0, "recv", "wss://ws.kraken.com", b'{"a":\n1}', False),
        (4, 0, "recv", "wss://ws.kraken.com", b"\x00\x01\x02\xff", True),
        (7, 0, "sent", "wss://ws.kraken.com", b'{"x":1}', False),
        (8, 0, "rest", "https://api.kraken.com/0/public/AssetPairs", b'{"result":{}}', False),
        (9, 0, "rest", "https://x.com/a", b"", False),
        (10, 1, "recv", "", b'{"b":2}', False),
        (11, 1, "open", "wss://ws-auth.kraken.com", b"", False),
        (12, 1, "recv", "wss://ws-auth.kraken.com", b"", False),
        (13, 1, "recv", "wss://ws-auth.kraken.com", b"", False),
        (123456789012345678901, 2, "recv", "", b"[]", False),
        (19, 0, "recv", "wss://ws.kraken.com", b'{"c":3} tail', False),
    ]
    assert [(kind, detail.split(": ", 1)[0].rsplit(":", 1)[1]) for kind, detail in reports] == [
        (C.BAD_LINE, "7"), (C.BAD_LINE, "8"), (C.BAD_LINE, "16"), (C.BAD_LINE, "17"), (C.BAD_LINE, "18"),
        (C.BAD_LINE, "19"), (C.BAD_LINE, "20")]
    assert reports[0][1] == f"{path}:7: not a frame (bad base64): b'5 0 bin AAE'"


def test_cryptofeed_and_hftbacktest_exact_values(tmp_path):
    cf = tmp_path / "X.ws.1.0"
    cf.write_bytes(b"\n".join(_CF_ODD[:8]) + b"\n")
    _head, frames, reports = _read_all(C, [cf])
    url = "wss://ws.x.com"
    assert [f for _, f in frames] == [
        (1_500_000_000, 0, "open", url, b"", False),
        (2_250_000_000, 0, "recv", url, b'{"a":1}', False),
        (12_123_456_789, 0, "recv", url, b"[1]", False),
        (3_500_000_000, 0, "recv", url, b"\x00\x01", True),
        (3_600_000_000, 0, "recv", url, b"it's", True),
        (4_000_000_000, 0, "recv", url, b"[]", False),
        (5_000_000_000, 0, "recv", url, b"{}", False),
    ]
    assert reports == [(C.BAD_LINE, f"{cf}:8: not a frame (bad time): b'6.5 : {{}}'")]
    hft = tmp_path / "h.gz"
    hft.write_bytes(gzip.compress(b"\n".join(_HFT_ODD[:3]) + b"\n"))
    _head, frames, reports = _read_all(C, [hft])
    assert [f for _, f in frames] == [
        (1722470400000000000, 0, "recv", "", b'{"e":1}', False),
        (1722470400000000001, 0, "rest", "", b'{"lastUpdateId":5,"bids":[]}', False),
        (12345678901234567890, 0, "recv", "", b"{}", False),
    ]
    assert reports == []


def test_rest_header_search_as_rfind():
    from atomfast import _capture

    rnd = random.Random(3)
    alphabet = [b" ", b"h", b"eader", b": ", b" header: ", b"x", b"{", b"\n"]
    for _ in range(20000):
        data = b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))
        start, end = sorted((rnd.randint(0, len(data)), rnd.randint(0, len(data))))
        if rnd.random() < 0.2:
            start, end = end, start
        assert _capture.last_header(data, start, end) == data.rfind(b" header: ", start, end), (data, start, end)


def test_listing_parsed_once_per_content():
    import copy

    from atomfast.exchanges.binance import BinanceSpotScheme as BinanceScheme
    from atomfast.replay import _listed_instruments, instruments_from_capture
    from atomfast.testing import fixture_path

    cap = open_capture(fixture_path("cryptofeed/BINANCE.ws.1.0"))
    url = next(u for u in cap.rest if u.endswith("/exchangeInfo"))
    body = cap.rest[url][0][1]
    parsed = BinanceScheme.merge_instruments([body])
    again = open_capture(fixture_path("cryptofeed/BINANCE.ws.1.0"))  # the same listing, read anew
    assert _listed_instruments(BinanceScheme, cap) is _listed_instruments(BinanceScheme, again)
    assert instruments_from_capture(BinanceScheme, again) == parsed
    assert instruments_from_capture(BinanceScheme, again) is not instruments_from_capture(BinanceScheme, again)
    changed = copy.copy(cap)  # another listing (a market renamed): parsed, not taken from the first
    changed.rest = {**cap.rest, url: [(cap.rest[url][0][0], body.replace(b'"ETHBTC"', b'"ETHXYZ"', 1))]}
    other = instruments_from_capture(BinanceScheme, changed)
    assert other == BinanceScheme.merge_instruments([changed.rest[url][0][1]]) and other != parsed


def test_scheme_of_a_remembered_listing_has_its_own_symbol_index():
    """The schemes made from a listing the process keeps copy its by-symbol index (built once):
    the same as built anew, and a market one scheme learns is not another's."""
    from atomfast.exchanges.binance import BinanceSpotScheme as BinanceScheme
    from atomfast.replay import _listed_instruments
    from atomfast.testing import fixture_path

    listed = _listed_instruments(BinanceScheme, open_capture(fixture_path("cryptofeed/BINANCE.ws.1.0")))
    one, two = BinanceScheme(lambda *a: None, None, listed), BinanceScheme(lambda *a: None, None, listed)
    assert len(one.by_symbol) == 1_695 and one.by_symbol["ETH-BTC"].native == "ETHBTC"
    assert one.by_symbol == {i.symbol: i for i in listed.values()} and one.by_symbol is not two.by_symbol
    one.by_symbol["XYZ-ABC"] = one.by_symbol["ETH-BTC"]
    assert "XYZ-ABC" not in two.by_symbol
    assert "XYZ-ABC" not in BinanceScheme(lambda *a: None, None, listed).by_symbol


def test_large_rest_body_is_one_object_per_content(tmp_path):
    """A REST file read again (its listing: megabytes) hands out the body read before, itself;
    a body that differs in its last byte, a small body, and a file read after a larger one
    through the same reused buffer are read exactly."""
    from atomfast import _capture
    from atomfast.testing import fixture_path

    listing = fixture_path("cryptofeed/BINANCE.0")
    url = "https://api.binance.com/api/v3/exchangeInfo"
    first, again = Capture([listing]), Capture([listing])
    _read_cryptofeed_rest(listing, first)
    _read_cryptofeed_rest(listing, again)
    body = first.rest[url][0][1]
    raw = listing.read_bytes()  # its first line: "URL -> 1633998511.132921: {...}"
    assert body == raw[raw.index(b": {") + 2:raw.index(b"\n")] and len(body) == 1_860_807
    assert again.rest[url][0][1] is body

    # the same length, another last byte: its own object, its own bytes
    tail = body[:-1] + b" "
    line = f"{url} -> 1626099300.5: ".encode() + tail + b"\n"
    other = tmp_path / "X.0"
    other.write_bytes(line)
    changed = Capture([other])
    _read_cryptofeed_rest(other, changed)
    got = changed.rest[url][0][1]
    assert got == tail and got is not body and len(got) == len(body)

    # a shorter file after the longer one, in the same buffer: nothing of the longer one's tail
    small = tmp_path / "Y.0"
    small.write_bytes(f"{url} -> 1626099300.5: ".encode() + b'{"a":1}')
    short = Capture([small])
    _read_cryptofeed_rest(small, short)
    assert short.rest == {url: [(1626099300500000000, b'{"a":1}')]}
    assert _capture.rest_body(b"x" * 10, 2, 5) == b"xxx" and _capture.rest_body(b"abc", 2, 1) == b""


def test_binary_frames_read_in_c_as_the_python_reader_reads_them():
    """``repr(bytes)``'s form decoded in C (``_capture.bytes_literal``): every byte string's repr
    gives the bytes back; any other text is None there and the Python reader decides; where
    both decode, they agree."""
    from atomfast import _capture

    rnd = random.Random(11)
    for _ in range(3000):
        data = bytes(rnd.choice((rnd.randrange(256), 39, 34, 92, 10, 0))
                     for _ in range(rnd.randint(0, 40)))
        assert _capture.bytes_literal(repr(data).encode()) == data
    odd = [b"b'\\q'", b"b'\\x4'", b"b'\\x4g'", b"b'\\777'", b"b'\\400'", b"b'\\'", b"b'a'b'", b"b'ab", b"b'",
           b"b\"a'b\"", b"b'\\101\\0\\12\\3777'", b"b'\\a\\b\\f\\v'", b"b'\\\n'", b"b'\xe9'", b"b'\\x41\\X41'",
           b"b'\\\\\\''", b"x'a'", b"b\"\\\"\""]
    for text in odd:
        fast = _capture.bytes_literal(text)
        assert fast is None or fast == C._bytes_literal(text), text
    assert [_capture.bytes_literal(t) for t in odd] == [
        None, None, None, None, None, None, None, None, None,
        b"a'b", b"A\x00\n\xff7", b"\x07\x08\x0c\x0b", None, None, None,
        b"\\'", None, b'"']
