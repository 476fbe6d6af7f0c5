"""The pure-Python capture reader as it was before the compiled one (atomfast/capture.py at
9c085b3), kept unchanged as the oracle of tests/core/test_capture_reading.py: the compiled reader
must give what this one gives (frames, times, connections, REST answers, reports) on every
capture. Not used by atomfast itself."""
from __future__ import annotations

import ast
import base64
import codecs
import gzip
import heapq
import json
import logging
import re
import zlib
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import IO, Callable, Iterator, NamedTuple

log = logging.getLogger("atomfast.capture")

RECORD_MAGIC = "#atomfast-capture 1"

OPEN, SENT, RECV, REST = "open", "sent", "recv", "rest"


#: what reading a compressed file that ends early raises
_TRUNCATED = (EOFError, zlib.error, gzip.BadGzipFile)

#: ``Capture.report`` kinds
BAD_LINE = "bad capture line"
TRUNCATED = "truncated capture"


class CaptureError(ValueError):
    """A file that cannot be read as a capture: the message names it and says why."""


def _log_problem(kind: str, detail: str) -> None:
    log.warning("%s: %s", kind, detail)


_TS = itemgetter(0)  # a Frame's ts_ns


class Frame(NamedTuple):
    ts_ns: int  # receive (or send) time, ns since epoch
    conn: int  # connection number within the capture (0 for REST)
    kind: str  # open | sent | recv | rest
    url: str  # the connection's url (for rest: the request url)
    data: bytes  # payload (for open: empty)
    binary: bool = False  # a binary websocket frame


@dataclass
class Capture:
    """A capture: its websocket frames (merged, in time order) and recorded REST answers."""

    paths: list[Path]
    exchange: str = ""  # from an atomfast record header
    urls: list[str] = field(default_factory=list)  # one per connection
    rest: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)  # url -> [(ts_ns, body)]
    configuration: dict = field(default_factory=dict)  # cryptofeed's subscription (channel -> symbols)
    formats: list[str] = field(default_factory=list)  # one per file: record | cryptofeed | hftbacktest | empty
    #: told of every line that is no frame and of an early end: (kind, detail naming file and line)
    report: Callable[[str, str], None] = _log_problem

    def frames(self) -> Iterator[Frame]:
        streams = [_read_frames(p, i, self.report) for i, p in enumerate(self.paths)]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=_TS)

    def rest_body(self, url_or_path: str) -> bytes | None:
        """The first recorded answer for a url (or for a url ending in this path+query)."""
        if url_or_path in self.rest:
            return self.rest[url_or_path][0][1]
        for url, answers in self.rest.items():
            if url.endswith(url_or_path) or _path_of(url) == url_or_path:
                return answers[0][1]
        return None


def _path_of(url: str) -> str:
    m = re.match(r"^[a-z]+://[^/]+(/.*)?$", url)
    return (m.group(1) or "/") if m else url


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape", newline="\n")
    return open(path, encoding="utf-8", errors="surrogateescape", newline="\n")


def _first_line(path: Path) -> str:
    with _open_text(path) as fh:
        return fh.readline().rstrip("\n")


_HFT_LINE = re.compile(r"^\d{1,20} \S")


def detect_format(path: Path) -> str:
    """``record``, ``cryptofeed``, ``hftbacktest`` or ``empty`` (no line at all), from the first
    line; ``CaptureError`` naming the file for anything else."""
    if path.is_dir():
        raise CaptureError(f"{path} is a directory, not a capture file")
    if not path.exists():
        raise CaptureError(f"capture {path} does not exist")
    if not path.is_file():
        raise CaptureError(f"{path} is not a regular file, not a capture")
    try:
        with _open_text(path) as fh:
            first = fh.readline(65536)
    except _TRUNCATED + (OSError,) as exc:
        raise CaptureError(f"{path} is not a capture: cannot read it as {'gzip ' if path.suffix == '.gz' else ''}"
                           f"text ({exc})") from None
    first = first.rstrip("\n")
    if not first:
        return "empty"
    if first.startswith(RECORD_MAGIC):
        return "record"
    if _CF_OPEN.match(first):
        return "cryptofeed"
    if _HFT_LINE.match(first) and not any("\udc80" <= c <= "\udcff" for c in first[:200]):
        return "hftbacktest"
    shown = repr(first[:60]) if first[:60].isprintable() else "binary data"
    raise CaptureError(f"{path} is not a capture: its first line is none of the known formats (atomfast record, "
                       f"cryptofeed EXCHANGE.ws.N.0, hftbacktest '<ns> <json>'): {shown}")


def _secs_to_ns(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def _payload_bytes(text: str) -> tuple[bytes, bool]:
    if text.startswith(("b'", 'b"')):
        return ast.literal_eval(text), True
    return text.encode("utf-8", "surrogateescape"), False


_CF_OPEN = re.compile(r"^(wss?://\S+) <-> (\d+(?:\.\d+)?)$")
_CF_SENT = re.compile(r"^(wss?://\S+) <- (\d+(?:\.\d+)?): (.*)$", re.S)
_CF_RECV = re.compile(r"^(\d+(?:\.\d+)?): (.*)$", re.S)
_CF_REST = re.compile(r"^(https?://\S+) -> (\d+(?:\.\d+)?): (.*)$", re.S)


def _read_frames(path: Path, conn: int, report: Callable[[str, str], None] = _log_problem) -> Iterator[Frame]:
    fmt = detect_format(path)
    reader = {"record": _read_record, "cryptofeed": _read_cryptofeed_ws, "hftbacktest": _read_hftbacktest}.get(fmt)
    if reader is None:
        return
    lines = _Lines(path, report)
    try:
        yield from reader(lines, conn)
    except _TRUNCATED as exc:
        report(TRUNCATED, f"{path} ends early after line {lines.n} ({exc}): replayed up to it")


#: bytes read (decompressed) at a time
_CHUNK = 1 << 18


class _Lines:
    """A capture file's lines (bytes, without the line end), numbered, with the reports of a line
    that is no frame. A last line without its line end whose payload is cut short (not the JSON it
    starts as) is the trace of an interrupted write: reported and not delivered.

    ``blocks()`` hands out the lines a read at a time (``_CHUNK`` bytes, split at once: no
    per-line read, slice or counter): ``(number of the block's first line, [line, ...])``, empty
    lines included (a reader skips them). ``n``: the lines read whole so far (where a compressed
    file that ends early broke off)."""

    def __init__(self, path: Path, report: Callable[[str, str], None]) -> None:
        self.path = path
        self.report = report
        self.n = 0

    def blocks(self) -> Iterator[tuple[int, list[bytes]]]:
        opener = gzip.open if self.path.suffix == ".gz" else open
        pending: list[bytes] = []  # the start of a line not ended yet
        with opener(self.path, "rb") as fh:
            # read1: one read of the underlying (decompressing) reader a call, so that whatever a
            # compressed file that ends early still holds is handed out before the error
            read = fh.read1
            while True:
                data = read(_CHUNK)
                if not data:
                    break
                if data.rfind(b"\n") < 0:
                    pending.append(data)
                    continue
                if pending:
                    pending.append(data)
                    data = b"".join(pending)
                block = data.split(b"\n")
                rest = block.pop()  # what follows the last line end: the start of the next line
                pending = [rest] if rest else []
                first = self.n + 1
                self.n += len(block)
                yield first, block
        rest = b"".join(pending)
        if rest:  # a last line without its line end
            self.n += 1
            if _cut_short(rest):
                self.report(TRUNCATED, f"{self.path} ends in the middle of line {self.n} (no line end, payload "
                                       f"incomplete): replayed up to it")
                return
            yield self.n, [rest]

    def bad(self, n: int, line: bytes, why: str) -> None:
        self.report(BAD_LINE, f"{self.path}:{n}: {why}: {line[:80]!r}")


def _cut_short(line: bytes) -> bool:
    """Whether an unterminated last line's JSON payload is incomplete."""
    brace = min((i for i in (line.find(b"{"), line.find(b"[")) if i >= 0), default=-1)
    if brace < 0:
        return False
    try:
        json.loads(line[brace:])
    except ValueError:
        return True
    return False


#: printable ASCII: a bytes literal made of these alone, its quote escaped, reads as its escapes say
_PRINTABLE = bytes(range(0x20, 0x7F))
_escape_decode = codecs.escape_decode  # the bytes-literal escapes (the compiler's own decoder)


def _quotes_escaped(inner: bytes, quote: bytes) -> bool:
    """Whether every ``quote`` in a literal's ``inner`` text is escaped: preceded by an odd run of
    backslashes (the tokenizer pairs a backslash with the character after it)."""
    i = inner.find(quote)
    while i >= 0:
        j = i
        while j and inner[j - 1] == 92:  # a backslash
            j -= 1
        if not (i - j) & 1:
            return False
        i = inner.find(quote, i + 1)
    return True


def _bytes_literal(payload: bytes) -> bytes | None:
    """The value of a Python bytes literal (``b'...'``, as cryptofeed writes a binary frame), or
    None if it is not one. The common case (printable ASCII between the quotes, every quote in
    it escaped: what ``repr(bytes)`` writes) is decoded directly, by the same escape decoder the
    compiler uses for a bytes literal; anything else goes through ``ast.literal_eval``."""
    quote = payload[1:2]
    if len(payload) >= 3 and payload[-1:] == quote:
        inner = payload[2:-1]
        if _quotes_escaped(inner, quote) and not inner.translate(None, _PRINTABLE):
            try:
                return _escape_decode(inner)[0]
            except ValueError:  # a lone trailing backslash, a bad \x escape: as literal_eval
                pass
    try:
        data = ast.literal_eval(payload.decode("utf-8", "surrogateescape"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return data if isinstance(data, bytes) else None


def _read_cryptofeed_ws(lines: _Lines, conn: int) -> Iterator[Frame]:
    """Binary-mode parse: a received line is ``<digits>.<digits>: <payload>`` (the common case,
    split without a regex and without decoding the payload); other lines are rare."""
    url = ""
    new = tuple.__new__  # Frame(...) without the Python-level NamedTuple __new__
    last_whole, last_s = None, 0  # the whole seconds of the previous time (most frames share them)
    for first, block in lines.blocks():
        for n, line in enumerate(block, first):
            if not line:
                continue
            if 48 <= line[0] <= 57:  # a digit: "<ts>: <payload>"
                ts, sep, payload = line.partition(b": ")
                if sep:
                    whole, _, frac = ts.partition(b".")
                    try:
                        if whole != last_whole:
                            last_s = int(whole) * 1_000_000_000
                            last_whole = whole
                        ts_ns = last_s + int((frac + b"000000000")[:9])
                    except ValueError:
                        lines.bad(n, line, "not a frame (bad time)")
                        continue
                    if payload[:1] == b"b" and payload[1:2] in (b"'", b'"'):
                        data = _bytes_literal(payload)
                        if data is None:
                            lines.bad(n, line, "not a frame (bad bytes literal)")
                            continue
                        yield new(Frame, (ts_ns, conn, RECV, url, data, True))
                    else:
                        yield new(Frame, (ts_ns, conn, RECV, url, payload, False))
                    continue
            text = line.decode("utf-8", "surrogateescape")
            m = _CF_SENT.match(text)
            if m:
                yield Frame(_secs_to_ns(m.group(2)), conn, SENT, m.group(1),
                            m.group(3).encode("utf-8", "surrogateescape"))
                continue
            m = _CF_OPEN.match(text)
            if m:
                url = m.group(1)
                yield Frame(_secs_to_ns(m.group(2)), conn, OPEN, url, b"")
                continue
            lines.bad(n, line, "not a frame")


def _read_hftbacktest(lines: _Lines, conn: int) -> Iterator[Frame]:
    new = tuple.__new__
    for first, block in lines.blocks():
        for n, line in enumerate(block, first):
            if not line:
                continue
            ts, _, payload = line.partition(b" ")
            if not payload or not ts.isdigit() or len(ts) > 20:
                lines.bad(n, line, "not a frame ('<ns> <json>')")
                continue
            # the REST depth snapshot was written inline where it arrived
            kind = REST if payload.startswith(b'{"lastUpdateId"') else RECV
            yield new(Frame, (int(ts), conn, kind, "", payload, False))


_RECORD_KINDS = frozenset((OPEN, RECV, "bin", "text64", SENT, REST))
#: the same, as they appear in a line (a kind that is not ASCII is none of them)
_RECORD_KINDS_B = frozenset(k.encode() for k in _RECORD_KINDS)
_B_OPEN, _B_RECV, _B_SENT, _B_BIN, _B_TEXT64 = b"open", b"recv", b"sent", b"bin", b"text64"


def _read_record(lines: _Lines, conn: int = 0) -> Iterator[Frame]:
    urls: dict[int, str] = {}
    header = True
    new = tuple.__new__
    for first, block in lines.blocks():
        for n, line in enumerate(block, first):
            if not line:
                continue
            if header:  # the header
                header = False
                continue
            parts = line.split(b" ", 3)
            if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit() or parts[2] not in _RECORD_KINDS_B:
                lines.bad(n, line, "not a frame ('<ns> <conn> <kind> <payload>')")
                continue
            ts, conn_id, kind = int(parts[0]), int(parts[1]), parts[2]
            payload = parts[3] if len(parts) > 3 else b""
            if kind == _B_RECV:
                yield new(Frame, (ts, conn_id, RECV, urls.get(conn_id, ""), payload, False))
            elif kind == _B_OPEN:
                url = payload.decode("utf-8", "surrogateescape")
                urls[conn_id] = url
                yield new(Frame, (ts, conn_id, OPEN, url, b"", False))
            elif kind == _B_BIN or kind == _B_TEXT64:
                try:
                    raw = base64.b64decode(payload, validate=True)
                except ValueError:
                    lines.bad(n, line, "not a frame (bad base64)")
                    continue
                yield new(Frame, (ts, conn_id, RECV, urls.get(conn_id, ""), raw, kind == _B_BIN))
            elif kind == _B_SENT:
                yield new(Frame, (ts, conn_id, SENT, urls.get(conn_id, ""), payload, False))
            else:  # REST
                url, _, body = payload.partition(b" ")
                yield new(Frame, (ts, conn_id, REST, url.decode("utf-8", "surrogateescape"), body, False))


def _record_listing(lines: _Lines, capture: Capture) -> None:
    """What ``open_capture`` takes from an atomfast record before its frames are read: the first
    connection's url and the REST answers (the lines ``_read_record`` reads as ``open`` and
    ``rest``; the others are not parsed here)."""
    header = True
    for _first, block in lines.blocks():
        for line in block:
            if not line:
                continue
            if header:
                header = False
                continue
            if b" open" not in line and b" rest" not in line:  # neither kind (a cheap sieve)
                continue
            parts = line.split(b" ", 3)
            if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit():
                continue
            kind = parts[2]
            payload = parts[3] if len(parts) > 3 else b""
            if kind == _B_OPEN:
                if not capture.urls[-1]:
                    capture.urls[-1] = payload.decode("utf-8", "surrogateescape")
            elif kind == b"rest":
                url, _, body = payload.partition(b" ")
                capture.rest.setdefault(url.decode("utf-8", "surrogateescape"), []).append((int(parts[0]), body))


def _read_cryptofeed_rest(path: Path, capture: Capture) -> None:
    """A cryptofeed REST file (``URL -> <ts>: <body>[ header: {json}]`` and ``configuration:
    {...}`` lines), read as bytes, whole (its answers are kept whole anyway): only the part of a
    line before the body is decoded and matched, and each body is copied out once."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    size = len(data)
    start = 0
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        line_start, start = start, end + 1
        if data.startswith(b"configuration: ", line_start, end):
            try:
                capture.configuration = json.loads(
                    data[line_start + len(b"configuration: "):end].decode("utf-8", "surrogateescape"))
            except ValueError:
                pass
            continue
        # the URL holds no whitespace and the time no ": ": whether the line matches is decided
        # before the first ": " after " -> ", and the body is all that follows it
        arrow = data.find(b" -> ", line_start, end)
        if arrow < 0:
            continue
        colon = data.find(b": ", arrow + 4, end)
        if colon < 0:
            continue
        m = _CF_REST.match(data[line_start:colon + 2].decode("utf-8", "surrogateescape"))
        if not m:
            continue
        body_end = end
        header = data.rfind(b" header: ", colon + 2, end)
        if header >= 0 and data.startswith(b"{", header + len(b" header: "), end):
            body_end = header
        capture.rest.setdefault(m.group(1), []).append((_secs_to_ns(m.group(2)), data[colon + 2:body_end]))


def companions(path: Path) -> list[Path]:
    """REST files recorded beside a cryptofeed websocket file (``X.ws.N.0`` -> ``X.0``, ``X.http.*``)."""
    name = path.name
    if ".ws." not in name:
        return []
    prefix = name.split(".ws.", 1)[0]
    out = [p for p in [path.with_name(prefix + ".0")] if p.exists()]
    out += sorted(path.parent.glob(prefix + ".http.*"))
    return out


def open_capture(*paths: str | Path, report: Callable[[str, str], None] | None = None) -> Capture:
    """A capture from one or more files (connections), with their REST companions. A file that
    is no capture is refused (``CaptureError``, a ``ValueError`` naming it)."""
    plist = [Path(p) for p in paths]
    capture = Capture(plist)
    if report is not None:
        capture.report = report
    capture.formats = [detect_format(p) for p in plist]
    seen: set[Path] = set()
    for p, fmt in zip(plist, capture.formats):
        if fmt == "record":
            capture.exchange = _first_line(p)[len(RECORD_MAGIC):].strip()
            capture.urls.append("")
            lines = _Lines(p, lambda kind, detail: None)  # reported when the frames are read
            try:
                _record_listing(lines, capture)
            except _TRUNCATED:
                pass
            continue
        first = _first_line(p) if fmt == "cryptofeed" else ""
        m = _CF_OPEN.match(first)
        capture.urls.append(m.group(1) if m else "")
        for comp in companions(p):
            if comp not in seen:
                seen.add(comp)
                _read_cryptofeed_rest(comp, capture)
    return capture


