"""Replay: a recorded capture through the same scheme, book, encoder and sink as a live run,
offline and as fast as it goes. Used by ``atomfast replay``, the tests and the benchmarks.

Each recorded connection becomes a ``ReplayConnection``: what the scheme sends (subscribe,
resubscribe after a resync, pings) is kept in ``sent``; a reconnect request is counted; a REST
``fetch`` is answered, right after the current frame, with the capture's next recorded answer
for that url (cryptofeed's ``.http`` files); where the capture holds REST answers inline
(hftbacktest), they reach ``Scheme.on_rest`` at the time they arrived. The recorded receive time
of each frame is its ``recv_ns``, so the output is deterministic.
"""
from __future__ import annotations

import functools
import heapq
import logging
import time
from pathlib import Path
from typing import Sequence

from urllib.parse import urlsplit

from .capture import OPEN, RECV, REST, Capture, CaptureError, open_capture
from .capture import _read_frames as read_frames
from .driver import FrameDriver
from .exchanges import scheme_for, schemes
from .metrics import Metrics
from .pipeline import Pipeline
from .scheme import ConnectionPlan, Scheme, remember_listing

log = logging.getLogger("atomfast.replay")


class ReplayConnection:
    """The Connection a scheme sees during a replay."""

    def __init__(self, conn_id: int, url: str, fetches: list[str] | None = None) -> None:
        self.id = conn_id
        self.url = url
        self.plan = ConnectionPlan(url, [])
        self.state: dict = {}
        self.sent: list[str | bytes] = []
        self.reconnects: list[str] = []
        self.fetches: list[str] = fetches if fetches is not None else []

    def send(self, message: str | bytes) -> None:
        self.sent.append(message)

    def reconnect(self, reason: str) -> None:
        self.reconnects.append(reason)

    def fetch(self, url: str) -> None:
        self.fetches.append(url)


def instruments_from_capture(scheme_cls: type[Scheme], capture: Capture) -> dict:
    """The instrument listings (``instruments_paths``) the capture recorded, parsed by the
    scheme and merged; those it lacks are left out ({} where it holds none). A new dict each call."""
    return dict(_listed_instruments(scheme_cls, capture))


#: the listings parsed so far: (scheme class, the listings' bodies, their instruments merged), so
#: that a listing is parsed once per process however often it is replayed. Found by comparing the
#: bodies whole (a length, then ``memcmp``: cheaper than hashing megabytes of listing)
_PARSED_LISTINGS: list[tuple[type[Scheme], tuple[bytes, ...], dict]] = []
#: the listings remembered at most (the oldest forgotten first)
_PARSED_LISTINGS_MAX = 16


def _listed_instruments(scheme_cls: type[Scheme], capture: Capture) -> dict:
    """``instruments_from_capture``, the remembered dict itself (not to be changed: a scheme
    copies the instruments it is given)."""
    if not scheme_cls.instruments_paths:
        return {}
    bodies = []
    for path in scheme_cls.instruments_paths:
        body = capture.rest_body(scheme_cls.rest_url + path)
        if body is None:
            body = capture.rest_body(path)
        if body is not None:
            bodies.append(body)
    if not bodies:
        log.warning("%s: capture holds no instrument listing; symbols are guessed", scheme_cls.exchange)
        return {}
    listed = tuple(bodies)
    for cls, seen, merged in _PARSED_LISTINGS:
        if cls is scheme_cls and seen == listed:
            return merged
    merged = scheme_cls.merge_instruments(bodies)
    forgotten = None
    if len(_PARSED_LISTINGS) >= _PARSED_LISTINGS_MAX:
        forgotten = _PARSED_LISTINGS.pop(0)[2]
    _PARSED_LISTINGS.append((scheme_cls, listed, merged))
    remember_listing(merged, forgotten)
    return merged


#: received frames of a URL-less capture that are asked ``Scheme.foreign``
FOREIGN_PROBE = 2000


def _domain(host: str) -> str:
    return ".".join(host.split(".")[-2:])


def _local(host: str) -> bool:
    """A loopback or private host: a simulator, a recording made against one."""
    return host in ("localhost", "::1") or host.startswith(("127.", "10.", "192.168.")) or host.endswith(".local")


@functools.lru_cache(maxsize=1)
def venue_hosts() -> dict[str, frozenset[str]]:
    """exchange -> the websocket hosts its schemes declare (once per process, as ``schemes()``)."""
    out: dict[str, frozenset[str]] = {}
    for exchange, classes in schemes().items():
        out[exchange] = frozenset(urlsplit(e.url).hostname or "" for cls in classes for e in cls.websocket_endpoints)
    return out


@functools.lru_cache(maxsize=64)
def _venue_of(exchange: str) -> tuple[frozenset[str], dict[str, str], frozenset[str]]:
    """``exchange``'s own hosts, the other venues' hosts (host -> exchange) and its own domains."""
    hosts = venue_hosts()
    own = hosts.get(exchange, frozenset())
    others = {h: ex for ex, hs in hosts.items() if ex != exchange for h in hs if h not in own}
    return own, others, frozenset(_domain(h) for h in own)


def check_venue(capture: Capture, exchange: str, scheme_cls: type[Scheme]) -> None:
    """Refuse (``CaptureError``) a capture that is not ``exchange``'s: an atomfast record names
    another exchange in its header; a recorded URL is on another venue's host, or on a domain that
    is none of this exchange's (a host of the exchange's own domain it no longer declares, as
    ``ws-feed.pro.coinbase.com``, is its own); a capture without a URL holds frames the scheme
    says are another venue's (``Scheme.foreign``)."""
    name = ", ".join(str(p) for p in capture.paths)
    if capture.exchange and capture.exchange != exchange:
        raise CaptureError(f"{name} was recorded from {capture.exchange}, not {exchange} (--force replays it anyway)")
    own, others, own_domains = _venue_of(exchange)
    urls = [u for u in capture.urls if u]
    for url in urls:
        host = urlsplit(url).hostname or ""
        if host in own or _local(host):
            continue
        if host in others or _domain(host) not in own_domains:
            whose = f" ({others[host]}'s)" if host in others else ""
            raise CaptureError(f"{name} was recorded from {host}{whose}, which is not {exchange}'s "
                               f"({', '.join(sorted(own))}) (--force replays it anyway)")
    if urls or capture.exchange:
        return
    seen = 0
    quiet = heapq.merge(*(read_frames(p, i, lambda kind, detail: None) for i, p in enumerate(capture.paths)),
                        key=lambda f: f.ts_ns)  # bad lines and an early end: the replay reports them
    for frame in quiet:
        if frame.kind != RECV:
            continue
        why = scheme_cls.foreign(frame.data)
        if why:
            raise CaptureError(f"{name} is not {exchange}'s: its frames are another venue's ({why}) "
                               f"(--force replays it anyway)")
        seen += 1
        if seen >= FOREIGN_PROBE:
            return


class Replay:
    """One capture wired to one scheme and one sink."""

    def __init__(self, capture: Capture, exchange: str, sink, metrics: Metrics | None = None,
                 scheme_cls: type[Scheme] | None = None, raw: bool = False, session: str | None = None,
                 force: bool = False) -> None:
        self.capture = capture
        self.metrics = metrics if metrics is not None else Metrics()
        self.scheme_cls = scheme_cls or scheme_for(exchange, capture.urls[0] if capture.urls else None)
        if not force:
            check_venue(capture, exchange, self.scheme_cls)
        # a line of the capture that is no frame, an early end: counted and logged as bad input
        capture.report = self.metrics.errors.report
        self.pipeline = Pipeline(sink, self.metrics, timed=False)
        self.scheme = self.scheme_cls(
            self.pipeline.emit,
            self.metrics,
            _listed_instruments(self.scheme_cls, capture),
            (),
            tuple(self.scheme_cls.channels),
        )
        self.connections: dict[int, ReplayConnection] = {}
        #: REST requests made by the scheme, answered after the current frame
        self.fetches: list[str] = []
        #: url -> index of the next recorded answer to hand out
        self._answered: dict[str, int] = {}
        self.unanswered: list[str] = []
        #: raw=True: what the scheme is handed also goes to the raw topic (atomfast.processor)
        self.raw_tap = None
        if raw:
            from .processor import RawTap

            self.raw_tap = RawTap(self.pipeline, self.scheme, session)
        #: the one owner of every frame and scheme call (``atomfast.driver``)
        self.driver = FrameDriver(self.scheme, self.pipeline, self.raw_tap)

    def _other(self, frame) -> None:
        """What the capture holds besides received frames: a connection opened, an inline REST
        answer."""
        if frame.kind == OPEN:
            self.driver.open(self.connection(frame.conn, frame.url), frame.ts_ns)
            if self.fetches:
                self._answer_fetches(frame.ts_ns)
        elif frame.kind == REST:
            self.driver.rest(None, frame.url, frame.data, frame.ts_ns)

    def connection(self, conn_id: int, url: str) -> ReplayConnection:
        conn = self.connections.get(conn_id)
        if conn is None:
            conn = self.connections[conn_id] = ReplayConnection(conn_id, url or self.scheme_cls.ws_url, self.fetches)
        return conn

    def _answer_fetches(self, recv_ns: int) -> None:
        """Hand each requested url its next recorded answer (in recorded order)."""
        while self.fetches:
            url = self.fetches.pop(0)
            answers = self.capture.rest.get(url)
            if answers is None:
                match = [u for u in self.capture.rest if u.endswith(url) or url.endswith(u)]
                answers = self.capture.rest[match[0]] if match else None
            i = self._answered.get(url, 0)
            if not answers or i >= len(answers):
                self.unanswered.append(url)  # an inline REST frame may still bring it
                continue
            self._answered[url] = i + 1
            self.driver.rest(None, url, answers[i][1], recv_ns)

    def run(self, max_frames: int = 0) -> Metrics:
        """Every frame of the capture through the driver (its compiled loop: received frames to
        ``FrameDriver.frame``, the rest here), then the sink closed."""
        started = time.perf_counter()
        last_ns = self.driver.replay(self.capture.frames(), self.connections, self.connection, self._other,
                                     self._answer_fetches, self.fetches, max_frames, RECV)
        if self.raw_tap is not None:
            self.raw_tap.end(last_ns, self.connections)
        self.pipeline.close()
        self.seconds = time.perf_counter() - started
        return self.metrics


def replay_capture(paths: Sequence[str | Path], exchange: str, sink, metrics: Metrics | None = None,
                   max_frames: int = 0, raw: bool = False, force: bool = False) -> Replay:
    replay = Replay(open_capture(*paths), exchange, sink, metrics, raw=raw, force=force)
    replay.run(max_frames)
    return replay
