"""The capture readers' fast paths read exactly what the plain ways read: bytes literals as
``ast.literal_eval`` does, lines across read blocks, REST files as bytes; the listing helpers'
remembered answers."""
import ast
import gzip
import os
import random

import pytest

from atomfast import capture as C
from atomfast.capture import open_capture
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
