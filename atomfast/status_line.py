"""What a running collector shows: a live status line, periodic log lines, a Prometheus endpoint.

``StatusLine`` rewrites one line on stderr every second when stderr is a terminal, and logs one
line every 10 s otherwise: frames/s, events/s, books synced/total, reconnects, errors, the sink's
queue, and p50/p99 latency frame -> produce and frame -> broker delivery over the last interval.

``MetricsServer`` answers ``GET /metrics`` on HOST:PORT (127.0.0.1 unless ``--metrics-host``) in
the Prometheus text format (counters, events per topic, books, connections, latency quantiles,
each labelled with its ``exchange``; the sink's stats), with a tiny asyncio HTTP handler.
``tools/grafana/atomfast.json`` is a dashboard of them.
"""
from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .metrics import LatencyHistogram, Metrics

log = logging.getLogger("atomfast.status")


def _bucket_upper_ns(idx: int, sub: int = 16) -> int:
    exp, s = divmod(idx, sub)
    return ((sub + s + 1) << exp) >> 4


def window_percentile(now: list[int], before: list[int] | None, q: float) -> int:
    """The q-th percentile (ns, bucket upper bound) of the counts recorded between two snapshots."""
    if before is None:
        counts = now
    else:
        counts = [a - b for a, b in zip(now, before)]
    total = sum(counts)
    if not total:
        return 0
    rank = max(1, math.ceil(total * q / 100.0))
    seen = 0
    for idx, n in enumerate(counts):
        seen += n
        if seen >= rank:
            return _bucket_upper_ns(idx)
    return 0


def _fmt_latency(ns: int) -> str:
    if not ns:
        return "-"
    if ns < 1_000_000:
        return f"{ns / 1000:.0f}us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f}ms"
    return f"{ns / 1e9:.1f}s"


def _fmt_rate(x: float) -> str:
    if x >= 10_000:
        return f"{x / 1000:.0f}k"
    if x >= 1000:
        return f"{x / 1000:.1f}k"
    return f"{x:.0f}"


def books_state(scheme: Any) -> tuple[int, int]:
    """(synced, total) books of a scheme."""
    if scheme is None:
        return 0, 0
    books = getattr(scheme, "books", {}) or {}
    unsynced = getattr(scheme, "unsynced", set()) or set()
    total = len(books) + len([n for n in unsynced if n not in books])
    return total - len(unsynced), total


def connections_state(group: Any) -> tuple[int, int]:
    """(up, total) websocket connections of a FeedGroup."""
    conns = getattr(group, "connections", None) or []
    return sum(1 for c in conns if getattr(c, "connected", False)), len(conns)


class Source:
    """One feed the status line and the metrics endpoint show: its label (the exchange), its
    metrics, its scheme (books) and its FeedGroup (connections), the latter two once it runs."""

    __slots__ = ("label", "metrics", "scheme", "group")

    def __init__(self, label: str, metrics: "Metrics", scheme: Any = None, group: Any = None) -> None:
        self.label, self.metrics, self.scheme, self.group = label, metrics, scheme, group


class StatusLine:
    """Periodic status: a rewritten terminal line (tty) or a log line (not a tty), of one feed
    or the sum of several (``sources``). On a terminal the line fits its width (80 columns by
    default: the least useful parts go first), log records are written above it (it is cleared
    and drawn again), and it says ``down`` while no connection is up (books held then are not
    live, whatever they were)."""

    def __init__(self, metrics: "Metrics | None" = None, sink: Any = None, scheme: Any = None, stream: Any = None,
                 tty: bool | None = None, interval: float | None = None, label: str = "",
                 sources: "list[Source] | None" = None, width: int | None = None) -> None:
        self.sources = sources if sources is not None else [Source(label, metrics, scheme)]
        self.sink = sink
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            try:
                tty = self.stream.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.width = width
        self.interval = interval if interval is not None else (1.0 if tty else 10.0)
        self.label = label if sources is None else ",".join(s.label for s in self.sources)
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_t = time.monotonic()
        self._last_frames = self._frames()
        self._last_events = self._events()
        self._last_produce = self._counts("produce_latency")
        self._last_delivery = self._counts("delivery_latency")
        self._shown = ""
        self._wrapped: list[tuple[logging.Handler, Callable]] = []

    # the single-feed attributes callers set (``line.scheme = ...``)
    @property
    def metrics(self) -> "Metrics":
        return self.sources[0].metrics

    @property
    def scheme(self) -> Any:
        return self.sources[0].scheme

    @scheme.setter
    def scheme(self, value: Any) -> None:
        self.sources[0].scheme = value

    def _frames(self) -> int:
        return sum(s.metrics.frames for s in self.sources)

    def _events(self) -> int:
        return sum(sum(s.metrics.events.values()) for s in self.sources)

    def _counts(self, name: str) -> list[int]:
        out: list[int] = []
        for s in self.sources:
            counts = list(getattr(s.metrics, name).counts)
            out = counts if not out else [a + b for a, b in zip(out, counts)]
        return out

    def parts(self) -> list[tuple[int, str]]:
        """(priority, text) of each part: 0 always shown; higher ones dropped first to fit."""
        now = time.monotonic()
        dt = max(now - self._last_t, 1e-9)
        frames, events = self._frames(), self._events()
        fps = (frames - self._last_frames) / dt
        eps = (events - self._last_events) / dt
        produce, delivery = self._counts("produce_latency"), self._counts("delivery_latency")
        p50 = window_percentile(produce, self._last_produce, 50)
        p99 = window_percentile(produce, self._last_produce, 99)
        d99 = window_percentile(delivery, self._last_delivery, 99)
        self._last_t, self._last_frames, self._last_events = now, frames, events
        self._last_produce, self._last_delivery = produce, delivery
        synced = total = up = conns = reconnects = errors = failed = 0
        grouped = False
        for s in self.sources:
            a, b = books_state(s.scheme)
            synced, total = synced + a, total + b
            if s.group is not None:
                grouped = True
                c, d = connections_state(s.group)
                up, conns = up + c, conns + d
            reconnects += s.metrics.reconnects
            errors += s.metrics.errors.total
            failed += s.metrics.checksum_failed
        out = [(0, self.label)] if self.label else []
        if grouped and conns and not up:
            out.append((0, "down"))
        elif grouped and up < conns:
            out.append((0, f"conn {up}/{conns}"))
        out += [(0, f"{_fmt_rate(fps)} f/s"), (1, f"{_fmt_rate(eps)} ev/s"),
                (0, f"books {synced if not grouped or up else 0}/{total}")]
        if failed:
            out.append((0, f"cksum-fail {failed}"))
        out += [(2, f"reconn {reconnects}"), (1, f"err {errors}")]
        queue = self._sink_stats().get("queue")
        if queue is not None:
            out.append((3, f"queue {queue}"))
        out.append((2, f"p50 {_fmt_latency(p50)} p99 {_fmt_latency(p99)}"))
        if any(s.metrics.delivery_latency.total for s in self.sources):
            out.append((4, f"dlv p99 {_fmt_latency(d99)}"))
        return out

    def line(self, width: int | None = None) -> str:
        parts = self.parts()
        if width is None:
            return " ".join(text for _, text in parts)
        for drop in (9, 4, 3, 2, 1):
            text = " ".join(t for prio, t in parts if prio < drop)
            if len(text) <= width:
                return text
        return text[: max(width, 1)]

    def _width(self) -> int:
        if self.width is not None:
            return self.width
        import shutil

        return max(20, shutil.get_terminal_size((80, 24)).columns - 1)

    def _sink_stats(self) -> dict:
        if self.sink is None:
            return {}
        try:
            return self.sink.stats() or {}
        except Exception:  # noqa: BLE001 - the status line must never fail the run
            return {}

    def show(self) -> None:
        if self.tty:
            text = self.line(self._width())
            try:
                self.stream.write("\r\x1b[K" + text)
                self.stream.flush()
                self._shown = text
            except (OSError, ValueError):
                pass
        else:
            log.info("%s", self.line())

    def _clear(self) -> None:
        if self._shown:
            try:
                self.stream.write("\r\x1b[K")
            except (OSError, ValueError):
                pass

    def _redraw(self) -> None:
        if self._shown:
            try:
                self.stream.write(self._shown)
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def _wrap_log_handlers(self) -> None:
        """Log records written to the status line's terminal go above it: clear, write, redraw."""
        for handler in logging.getLogger().handlers:
            if getattr(handler, "stream", None) is not self.stream:
                continue
            original = handler.emit

            def emit(record, _original=original):
                self._clear()
                _original(record)
                self._redraw()

            handler.emit = emit  # type: ignore[method-assign]
            self._wrapped.append((handler, original))

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> "StatusLine":
        self._loop = loop or asyncio.get_running_loop()
        if self.tty:
            self._wrap_log_handlers()
        self._handle = self._loop.call_later(self.interval, self._tick)
        return self

    def _tick(self) -> None:
        try:
            self.show()
        finally:
            self._handle = self._loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for handler, original in self._wrapped:
            handler.emit = original  # type: ignore[method-assign]
        self._wrapped = []
        if self.tty and self._shown:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self._shown = ""


# --- Prometheus -------------------------------------------------------------------------------
def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _quantiles(hist: "LatencyHistogram") -> list[tuple[str, float]]:
    return [(q, hist.percentile(float(q) * 100) / 1e9) for q in ("0.5", "0.9", "0.99", "0.999")]


def prometheus_text(metrics: "Metrics | None" = None, sink: Any = None, scheme: Any = None, prefix: str = "atomfast",
                    exchange: str = "", sources: "list[Source] | None" = None) -> str:
    """The metrics in the Prometheus text exposition format (version 0.0.4): per feed
    (``sources``, or the one of ``metrics``/``scheme``), each sample labelled with its
    ``exchange``; the sink's statistics once (the feeds share it)."""
    if sources is None:
        sources = [Source(exchange, metrics, scheme)]
    out: list[str] = []

    def labels(source: Source, extra: str = "") -> str:
        parts = [f'exchange="{_escape(source.label)}"'] if source.label else []
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        full = f"{prefix}_{name}"
        out.append(f"# HELP {full} {help_text}")
        out.append(f"# TYPE {full} {kind}")
        for lab, value in samples:
            out.append(f"{full}{lab} {value:g}" if isinstance(value, float) else f"{full}{lab} {value}")

    def per_feed(name: str, kind: str, help_text: str, value: Callable[[Source], float]) -> None:
        metric(name, kind, help_text, [(labels(s), value(s)) for s in sources])

    per_feed("frames_total", "counter", "Websocket frames received.", lambda s: s.metrics.frames)
    per_feed("bytes_total", "counter", "Websocket payload bytes received.", lambda s: s.metrics.bytes)
    metric("events_total", "counter", "Events written to the sink, by topic.",
           [(labels(s, f'topic="{_escape(t)}"'), n) for s in sources for t, n in sorted(s.metrics.events.items())])
    per_feed("checksum_ok_total", "counter", "Book checksums verified.", lambda s: s.metrics.checksum_ok)
    per_feed("checksum_failed_total", "counter", "Book checksum mismatches.", lambda s: s.metrics.checksum_failed)
    per_feed("gaps_total", "counter", "Sequence gaps detected.", lambda s: s.metrics.gaps)
    per_feed("resyncs_total", "counter", "Book resyncs.", lambda s: s.metrics.resyncs)
    per_feed("reconnects_total", "counter", "Websocket reconnect attempts.", lambda s: s.metrics.reconnects)
    metric("errors_total", "counter", "Bad input and internal errors, by kind.",
           [(labels(s, f'kind="{_escape(k)}"'), n) for s in sources for k, n in sorted(s.metrics.errors.counts.items())])
    for name, attr, text in (("produce_latency_seconds", "produce_latency", "Frame receipt to produce()."),
                             ("delivery_latency_seconds", "delivery_latency",
                              "produce() to the broker's delivery report."),
                             ("receipt_to_delivery_seconds", "receipt_latency",
                              "Frame receipt to the broker's delivery report, per message.")):
        full = f"{prefix}_{name}"
        out.append(f"# HELP {full} {text}")
        out.append(f"# TYPE {full} summary")
        for s in sources:
            hist = getattr(s.metrics, attr)
            for q, v in _quantiles(hist):
                quantile = 'quantile="' + q + '"'
                out.append(f"{full}{labels(s, quantile)} {v:g}")
            out.append(f"{full}_count{labels(s)} {hist.total}")
    held = [s for s in sources if s.scheme is not None]
    if held:
        metric("books", "gauge", "Books held.", [(labels(s), books_state(s.scheme)[1]) for s in held])
        metric("books_synced", "gauge", "Books in sync.", [(labels(s), books_state(s.scheme)[0]) for s in held])
    grouped = [s for s in sources if s.group is not None]
    if grouped:
        metric("connections", "gauge", "Websocket connections planned.",
               [(labels(s), connections_state(s.group)[1]) for s in grouped])
        metric("connections_up", "gauge", "Websocket connections open.",
               [(labels(s), connections_state(s.group)[0]) for s in grouped])
    if sink is not None:
        try:
            stats = sink.stats() or {}
        except Exception:  # noqa: BLE001
            stats = {}
        for key, value in sorted(stats.items()):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            metric(f"sink_{key}", "gauge", f"Sink statistic {key}.", [("", value)])
    started = min(s.metrics.started for s in sources)
    metric("uptime_seconds", "gauge", "Seconds since start.", [("", round(time.monotonic() - started, 3))])
    return "\n".join(out) + "\n"


class MetricsServer:
    """``GET /metrics`` (Prometheus text) on host:port; anything else 404."""

    def __init__(self, render: Callable[[], str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.render = render
        self.host = host
        self.port = port
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> "MetricsServer":
        self.server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split()
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            if method in ("GET", "HEAD") and path.split("?", 1)[0] in ("/metrics", "/"):
                body = self.render().encode()
                status, ctype = "200 OK", "text/plain; version=0.0.4; charset=utf-8"
            else:
                body, status, ctype = b"not found\n", "404 Not Found", "text/plain"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode() + (body if method != "HEAD" else b"")
            )
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except Exception:  # noqa: BLE001
            log.exception("metrics request failed")
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass


__all__ = ["MetricsServer", "Source", "StatusLine", "prometheus_text", "window_percentile"]
