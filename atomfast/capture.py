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
"""
from __future__ import annotations

import ast
import base64
import gzip
import heapq
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, NamedTuple

RECORD_MAGIC = "#atomfast-capture 1"

OPEN, SENT, RECV, REST = "open", "sent", "recv", "rest"


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

    def frames(self) -> Iterator[Frame]:
        streams = [_read_frames(p, i) for i, p in enumerate(self.paths)]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=lambda f: f.ts_ns)

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


def _read_frames(path: Path, conn: int) -> Iterator[Frame]:
    first = _first_line(path)
    if first.startswith(RECORD_MAGIC):
        yield from _read_record(path)
    elif _CF_OPEN.match(first):
        yield from _read_cryptofeed_ws(path, conn)
    else:
        yield from _read_hftbacktest(path, conn)


def _read_cryptofeed_ws(path: Path, conn: int) -> Iterator[Frame]:
    """Binary-mode parse: a received line is ``<digits>.<digits>: <payload>`` (the common case,
    split without a regex and without decoding the payload); other lines are rare."""
    url = ""
    new = tuple.__new__  # Frame(...) without the Python-level NamedTuple __new__
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for line in fh:
            if line[-1:] == b"\n":
                line = line[:-1]
            if not line:
                continue
            if 48 <= line[0] <= 57:  # a digit: "<ts>: <payload>"
                ts, sep, payload = line.partition(b": ")
                if sep:
                    whole, _, frac = ts.partition(b".")
                    ts_ns = int(whole) * 1_000_000_000 + int((frac + b"000000000")[:9])
                    if payload[:2] in (b"b'", b'b"'):
                        yield Frame(ts_ns, conn, RECV, url, ast.literal_eval(payload.decode("utf-8", "surrogateescape")), True)
                    else:
                        yield new(Frame, (ts_ns, conn, RECV, url, payload, False))
                    continue
            text = line.decode("utf-8", "surrogateescape")
            m = _CF_SENT.match(text)
            if m:
                yield Frame(_secs_to_ns(m.group(2)), conn, SENT, m.group(1), m.group(3).encode("utf-8", "surrogateescape"))
                continue
            m = _CF_OPEN.match(text)
            if m:
                url = m.group(1)
                yield Frame(_secs_to_ns(m.group(2)), conn, OPEN, url, b"")


def _read_hftbacktest(path: Path, conn: int) -> Iterator[Frame]:
    with _open_text(path) as fh:
        for line in fh:
            ts, _, payload = line.rstrip("\n").partition(" ")
            if not payload:
                continue
            data = payload.encode("utf-8", "surrogateescape")
            # the REST depth snapshot was written inline where it arrived
            kind = REST if payload.startswith('{"lastUpdateId"') else RECV
            yield Frame(int(ts), conn, kind, "", data)


def _read_record(path: Path) -> Iterator[Frame]:
    urls: dict[int, str] = {}
    with _open_text(path) as fh:
        fh.readline()
        for line in fh:
            parts = line.rstrip("\n").split(" ", 3)
            if len(parts) < 3:
                continue
            ts, conn, kind = int(parts[0]), int(parts[1]), parts[2]
            payload = parts[3] if len(parts) > 3 else ""
            if kind == OPEN:
                urls[conn] = payload
                yield Frame(ts, conn, OPEN, payload, b"")
            elif kind == RECV:
                yield Frame(ts, conn, RECV, urls.get(conn, ""), payload.encode("utf-8", "surrogateescape"))
            elif kind == "bin" or kind == "text64":
                raw = base64.b64decode(payload)
                yield Frame(ts, conn, RECV, urls.get(conn, ""), raw, kind == "bin")
            elif kind == SENT:
                yield Frame(ts, conn, SENT, urls.get(conn, ""), payload.encode())
            elif kind == REST:
                url, _, body = payload.partition(" ")
                yield Frame(ts, conn, REST, url, body.encode("utf-8", "surrogateescape"))


def _read_cryptofeed_rest(path: Path, capture: Capture) -> None:
    with _open_text(path) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith("configuration: "):
                try:
                    capture.configuration = json.loads(line[len("configuration: ") :])
                except ValueError:
                    pass
                continue
            m = _CF_REST.match(line)
            if not m:
                continue
            body = m.group(3)
            head, sep, tail = body.rpartition(" header: ")
            if sep and tail.startswith("{"):
                body = head
            capture.rest.setdefault(m.group(1), []).append((_secs_to_ns(m.group(2)), body.encode("utf-8", "surrogateescape")))


def companions(path: Path) -> list[Path]:
    """REST files recorded beside a cryptofeed websocket file (``X.ws.N.0`` -> ``X.0``, ``X.http.*``)."""
    name = path.name
    if ".ws." not in name:
        return []
    prefix = name.split(".ws.", 1)[0]
    out = [p for p in [path.with_name(prefix + ".0")] if p.exists()]
    out += sorted(path.parent.glob(prefix + ".http.*"))
    return out


def open_capture(*paths: str | Path) -> Capture:
    """A capture from one or more files (connections), with their REST companions."""
    plist = [Path(p) for p in paths]
    for p in plist:
        if not p.is_file():
            raise FileNotFoundError(f"capture {p} does not exist")
    capture = Capture(plist)
    seen: set[Path] = set()
    for p in plist:
        first = _first_line(p)
        if first.startswith(RECORD_MAGIC):
            capture.exchange = first[len(RECORD_MAGIC) :].strip()
            capture.urls.append("")
            for f in _read_record(p):
                if f.kind == OPEN and not capture.urls[-1]:
                    capture.urls[-1] = f.url
                elif f.kind == REST:
                    capture.rest.setdefault(f.url, []).append((f.ts_ns, f.data))
            continue
        m = _CF_OPEN.match(first)
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
