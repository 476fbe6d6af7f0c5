"""Recorded exchange traffic: reading the fixture formats and atomfast's own record format.

Formats (see ../shared/fixtures/README.md):

* cryptofeed ``EXCHANGE.ws.N.0`` -- one websocket connection:
  ``wss://url <-> <ts>`` (connect), ``wss://url <- <ts>: <payload>`` (sent by the client),
  ``<ts>: <payload>`` (received; a binary payload is a Python bytes literal ``b'...'``).
  Its REST companions ``EXCHANGE.0`` (listings + ``configuration: {...}``) and
  ``EXCHANGE.http.N.N`` (snapshots): ``URL -> <ts>: <body>[ header: {json}]``.
* hftbacktest ``*.gz`` -- gzip text, ``<ns> <json>`` a line; the REST depth snapshot
  (``{"lastUpdateId":...}``) sits inline where it arrived.
* atomfast ``record`` -- text (gzip when the name ends in .gz), first line
  ``#atomfast-capture 1 <exchange>``, then ``<ns> <conn> <kind> <payload>`` where kind is
  ``open`` (payload: url), ``sent``, ``recv`` (text frame), ``text64`` (base64 of a text frame
  holding a newline), ``bin`` (base64 of a binary frame), ``rest`` (payload: ``<url> <body>``).

Every reader yields ``Frame``s; several connections are merged in time order.

A capture is evidence: a file in none of these formats (a binary file, a directory, plain text)
is refused with its name (``CaptureError``); a line that is no frame is skipped and reported
(``Capture.report``: kind, detail naming the file and the line), and so is a capture that ends
early (a gzip without its end marker, as a killed ``record`` leaves it, or a last line cut
short): it replays up to the break, with one report naming the file and the line.
"""
from __future__ import annotations

import ast
import base64
import binascii
import codecs
import functools
import gzip
import heapq
import json
import logging
import os
import re
import stat
import sys
import threading
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
        # the formats ``open_capture`` found (a file is not sniffed twice), else each file's own
        fmts = self.formats if len(self.formats) == len(self.paths) else [None] * len(self.paths)
        streams = [_read_frames(p, i, self.report, fmt) for i, (p, fmt) in enumerate(zip(self.paths, fmts))]
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


_HFT_LINE = re.compile(r"^\d{1,20} \S")


def _sniff(path: Path) -> tuple[str, str]:
    """The file's format (``detect_format``) and its first line (without its line end): one
    ``stat`` and one read of its start."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CaptureError(f"capture {path} does not exist") from None
    except OSError as exc:
        raise CaptureError(f"{path} is not a capture: cannot read it ({exc})") from None
    if stat.S_ISDIR(mode):
        raise CaptureError(f"{path} is a directory, not a capture file")
    if not stat.S_ISREG(mode):
        raise CaptureError(f"{path} is not a regular file, not a capture")
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            first = fh.readline(65536)
    except _TRUNCATED + (OSError,) as exc:
        raise CaptureError(f"{path} is not a capture: cannot read it as {'gzip ' if path.suffix == '.gz' else ''}"
                           f"text ({exc})") from None
    first = first.decode("utf-8", "surrogateescape").rstrip("\n")
    if not first:
        return "empty", first
    if first.startswith(RECORD_MAGIC):
        return "record", first
    if _CF_OPEN.match(first):
        return "cryptofeed", first
    if _HFT_LINE.match(first) and not any("\udc80" <= c <= "\udcff" for c in first[:200]):
        return "hftbacktest", first
    shown = repr(first[:60]) if first[:60].isprintable() else "binary data"
    raise CaptureError(f"{path} is not a capture: its first line is none of the known formats (atomfast record, "
                       f"cryptofeed EXCHANGE.ws.N.0, hftbacktest '<ns> <json>'): {shown}")


def detect_format(path: Path) -> str:
    """``record``, ``cryptofeed``, ``hftbacktest`` or ``empty`` (no line at all), from the first
    line; ``CaptureError`` naming the file for anything else."""
    return _sniff(path)[0]


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


def _read_frames(path: Path, conn: int, report: Callable[[str, str], None] = _log_problem,
                 fmt: str | None = None) -> Iterator[Frame]:
    """The file's frames (an iterator; the file is read a block at a time as it is consumed), the
    connection numbered ``conn`` (a record names its own); nothing for an empty file. ``fmt``: its
    format if already known (``detect_format``'s name)."""
    if fmt is None:
        fmt = detect_format(path)
    if fmt == "empty":
        return iter(())
    return _reader(path, fmt, conn, report)


#: bytes read (decompressed) at a time
_CHUNK = 1 << 18


def _reader(path: Path, fmt: str, conn: int, report: Callable[[str, str], None], listing: bool = False) -> Iterator[Frame]:
    """The compiled line reader (``atomfast._capture.FrameReader``) over the opened file.

    It reads ``_CHUNK`` bytes at a time with ``read1`` (one read of the underlying, decompressing,
    reader a call, so that whatever a compressed file that ends early still holds is handed out
    before the error) and splits the lines in place. Lines are numbered from 1, empty ones
    included (and skipped); a line that is no frame is reported (``BAD_LINE``, ``file:line``) and
    skipped; a compressed file that ends early is reported once (``TRUNCATED``, after the last
    whole line) and read up to the break; a last line without its line end whose payload is cut
    short (not the JSON it starts as: the trace of an interrupted write) is reported and not
    delivered."""
    fh = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    return FrameReader(fh, path, fmt, conn, report, _CHUNK, listing)


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


def _cryptofeed_time_ns(ts: bytes) -> int | None:
    """A cryptofeed time (``<secs>[.<frac>]``) in ns, as ``int()`` reads its parts (None if it
    cannot): the compiled reader's way for a time that is not plain digits."""
    whole, _, frac = ts.partition(b".")
    try:
        return int(whole) * 1_000_000_000 + int((frac + b"000000000")[:9])
    except ValueError:
        return None


def _cryptofeed_other(line: bytes, conn: int) -> Frame | None:
    """A cryptofeed line that is not ``<ts>: <payload>``: a send (``url <- ts: payload``) or a
    connect (``url <-> ts``); None for anything else."""
    text = line.decode("utf-8", "surrogateescape")
    m = _CF_SENT.match(text)
    if m:
        return Frame(_secs_to_ns(m.group(2)), conn, SENT, m.group(1), m.group(3).encode("utf-8", "surrogateescape"))
    m = _CF_OPEN.match(text)
    if m:
        return Frame(_secs_to_ns(m.group(2)), conn, OPEN, m.group(1), b"")
    return None


#: a record's ``bin`` and ``text64`` payloads: ``base64.b64decode(payload, validate=True)``
_b64decode = functools.partial(binascii.a2b_base64, strict_mode=True)


def _record_listing(path: Path, capture: Capture) -> None:
    """What ``open_capture`` takes from an atomfast record before its frames are read: the first
    connection's url and the REST answers (its ``open`` and ``rest`` lines; the others are not
    parsed here, and bad lines and an early end are reported when the frames are read)."""
    for frame in _reader(path, "record", 0, lambda kind, detail: None, listing=True):
        if frame.kind == OPEN:
            if not capture.urls[-1]:
                capture.urls[-1] = frame.url
        else:
            capture.rest.setdefault(frame.url, []).append((frame.ts_ns, frame.data))


#: a REST file up to this size is read into the thread's reused buffer (``_read_whole``)
_REUSED_BUFFER_MAX = 64 << 20
_buffers = threading.local()


def _read_whole(path: Path) -> tuple[bytes | bytearray, int]:
    """A file's bytes, whole, and their count. An uncompressed file of at most 64 MiB is read into
    a buffer the thread keeps for the next one (valid until this thread's next call): no new
    allocation of megabytes, faulted in page by page, per file."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            data = fh.read()
        return data, len(data)
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > _REUSED_BUFFER_MAX:
            data = fh.read()
            return data, len(data)
        buf = getattr(_buffers, "rest", None)
        if buf is None or len(buf) < size + 1:
            buf = _buffers.rest = bytearray(max(size + 1, 1 << 20))
        view = memoryview(buf)
        n = 0
        while True:  # to the end, even if the file grew since fstat
            got = fh.readinto(view[n:])
            if not got:
                break
            n += got
            if n == len(buf):
                view.release()
                buf.extend(bytes(len(buf)))
                view = memoryview(buf)
        view.release()
        return buf, n


def _read_cryptofeed_rest(path: Path, capture: Capture) -> None:
    """A cryptofeed REST file (``URL -> <ts>: <body>[ header: {json}]`` and ``configuration:
    {...}`` lines), read whole (its answers are kept whole anyway): only the part of a line before
    the body is decoded and matched, and each body is copied out once (a large one equal to one
    read before in this process is that same object: ``_capture.rest_body``)."""
    data, size = _read_whole(path)
    start = 0
    while start < size:
        end = data.find(b"\n", start, size)
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
        header = _capture.last_header(data, colon + 2, end)  # data.rfind(b" header: ", colon + 2, end)
        if header >= 0 and data.startswith(b"{", header + len(b" header: "), end):
            body_end = header
        capture.rest.setdefault(m.group(1), []).append((_secs_to_ns(m.group(2)), _capture.rest_body(data, colon + 2, body_end)))


def companions(path: Path) -> list[Path]:
    """REST files recorded beside a cryptofeed websocket file (``X.ws.N.0`` -> ``X.0``, ``X.http.*``)."""
    name = path.name
    if ".ws." not in name:
        return []
    prefix = name.split(".ws.", 1)[0]
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    http = prefix + ".http."
    out = [path.with_name(prefix + ".0")] if prefix + ".0" in names else []
    out += [path.with_name(n) for n in sorted(names) if n.startswith(http)]
    return out


def open_capture(*paths: str | Path, report: Callable[[str, str], None] | None = None) -> Capture:
    """A capture from one or more files (connections), with their REST companions. A file that
    is no capture is refused (``CaptureError``, a ``ValueError`` naming it)."""
    plist = [Path(p) for p in paths]
    capture = Capture(plist)
    if report is not None:
        capture.report = report
    sniffed = [_sniff(p) for p in plist]
    capture.formats = [fmt for fmt, _ in sniffed]
    seen: set[Path] = set()
    for p, (fmt, first) in zip(plist, sniffed):
        if fmt == "record":
            capture.exchange = first[len(RECORD_MAGIC):].strip()
            capture.urls.append("")
            _record_listing(p, capture)
            continue
        m = _CF_OPEN.match(first) if fmt == "cryptofeed" else None
        capture.urls.append(m.group(1) if m else "")
        for comp in companions(p):
            if comp not in seen:
                seen.add(comp)
                _read_cryptofeed_rest(comp, capture)
    return capture


class RecordWriter:
    """Writes atomfast's record format (see module doc)."""

    def __init__(self, path: str | Path, exchange: str) -> None:
        self.path = Path(path)
        self.fh: IO[str] = (
            gzip.open(self.path, "wt", encoding="utf-8") if self.path.suffix == ".gz" else open(self.path, "w", encoding="utf-8")
        )
        self.fh.write(f"{RECORD_MAGIC} {exchange}\n")

    def open(self, ts_ns: int, conn: int, url: str) -> None:
        self.fh.write(f"{ts_ns} {conn} open {url}\n")

    def sent(self, ts_ns: int, conn: int, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", "replace")
        self.fh.write(f"{ts_ns} {conn} sent {payload.replace(chr(10), ' ')}\n")

    def recv(self, ts_ns: int, conn: int, data: bytes, binary: bool = False) -> None:
        if binary:
            self.fh.write(f"{ts_ns} {conn} bin {base64.b64encode(data).decode()}\n")
        elif b"\n" in data:
            self.fh.write(f"{ts_ns} {conn} text64 {base64.b64encode(data).decode()}\n")
        else:
            self.fh.write(f"{ts_ns} {conn} recv {data.decode('utf-8', 'surrogateescape')}\n")

    def rest(self, ts_ns: int, url: str, body: bytes) -> None:
        self.fh.write(f"{ts_ns} 0 rest {url} {body.decode('utf-8', 'surrogateescape').replace(chr(10), ' ')}\n")

    def close(self) -> None:
        self.fh.close()


from . import _capture  # noqa: E402  (the compiled reader takes this module's names)

_capture.bind(sys.modules[__name__])
FrameReader = _capture.FrameReader
