"""What a running collector shows: a live status line, periodic log lines, a Prometheus endpoint.

``StatusLine`` rewrites one line on stderr every second when stderr is a terminal, and logs one
line every 10 s otherwise: frames/s, events/s, books synced/total, reconnects, errors, the sink's
queue, and p50/p99 latency frame -> produce and frame -> broker delivery over the last interval.

``MetricsServer`` answers ``GET /metrics`` on 127.0.0.1:PORT in the Prometheus text format
(counters, events per topic, sink stats, latency quantiles), with a tiny asyncio HTTP handler.
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


class StatusLine:
    """Periodic status: a rewritten terminal line (tty) or a log line (not a tty)."""

    def __init__(self, metrics: "Metrics", sink: Any = None, scheme: Any = None, stream: Any = None,
                 tty: bool | None = None, interval: float | None = None, label: str = "") -> None:
        self.metrics = metrics
        self.sink = sink
        self.scheme = scheme
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            try:
                tty = self.stream.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.interval = interval if interval is not None else (1.0 if tty else 10.0)
        self.label = label
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_t = time.monotonic()
        self._last_frames = metrics.frames
        self._last_events = sum(metrics.events.values())
        self._last_produce = list(metrics.produce_latency.counts)
        self._last_delivery = list(metrics.delivery_latency.counts)
        self._shown = False

    def line(self) -> str:
        m = self.metrics
        now = time.monotonic()
        dt = max(now - self._last_t, 1e-9)
        events = sum(m.events.values())
        fps = (m.frames - self._last_frames) / dt
        eps = (events - self._last_events) / dt
        produce = list(m.produce_latency.counts)
        delivery = list(m.delivery_latency.counts)
        p50 = window_percentile(produce, self._last_produce, 50)
        p99 = window_percentile(produce, self._last_produce, 99)
        d50 = window_percentile(delivery, self._last_delivery, 50)
        d99 = window_percentile(delivery, self._last_delivery, 99)
        self._last_t, self._last_frames, self._last_events = now, m.frames, events
        self._last_produce, self._last_delivery = produce, delivery
        synced, total = books_state(self.scheme)
        parts = [
            f"{self.label} " if self.label else "",
            f"frames/s {_fmt_rate(fps)}",
            f" events/s {_fmt_rate(eps)}",
            f" books {synced}/{total}",
            f" reconnects {m.reconnects}",
            f" errors {m.errors.total}",
        ]
        if m.checksum_failed:
            parts.append(f" checksum_failed {m.checksum_failed}")
        stats = self._sink_stats()
        queue = stats.get("queue")
        if queue is not None:
            parts.append(f" queue {queue}")
        parts.append(f" produce p50 {_fmt_latency(p50)} p99 {_fmt_latency(p99)}")
        if m.delivery_latency.total:
            parts.append(f" delivery p50 {_fmt_latency(d50)} p99 {_fmt_latency(d99)}")
        return "".join(parts)

    def _sink_stats(self) -> dict:
        if self.sink is None:
            return {}
        try:
            return self.sink.stats() or {}
        except Exception:  # noqa: BLE001 - the status line must never fail the run
            return {}

    def show(self) -> None:
        text = self.line()
        if self.tty:
            try:
                self.stream.write("\r\x1b[K" + text)
                self.stream.flush()
                self._shown = True
            except (OSError, ValueError):
                pass
        else:
            log.info("%s", text)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> "StatusLine":
        self._loop = loop or asyncio.get_running_loop()
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
        if self.tty and self._shown:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass


# --- Prometheus -------------------------------------------------------------------------------
def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _quantiles(hist: "LatencyHistogram") -> list[tuple[str, float]]:
    return [(q, hist.percentile(float(q) * 100) / 1e9) for q in ("0.5", "0.9", "0.99", "0.999")]


def prometheus_text(metrics: "Metrics", sink: Any = None, scheme: Any = None, prefix: str = "atomfast") -> str:
    """The metrics in the Prometheus text exposition format (version 0.0.4)."""
    out: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        full = f"{prefix}_{name}"
        out.append(f"# HELP {full} {help_text}")
        out.append(f"# TYPE {full} {kind}")
        for labels, value in samples:
            out.append(f"{full}{labels} {value:g}" if isinstance(value, float) else f"{full}{labels} {value}")

    m = metrics
    metric("frames_total", "counter", "Websocket frames received.", [("", m.frames)])
    metric("bytes_total", "counter", "Websocket payload bytes received.", [("", m.bytes)])
    metric("events_total", "counter", "Events written to the sink, by topic.",
           [(f'{{topic="{_escape(t)}"}}', n) for t, n in sorted(m.events.items())])
    metric("checksum_ok_total", "counter", "Book checksums verified.", [("", m.checksum_ok)])
    metric("checksum_failed_total", "counter", "Book checksum mismatches.", [("", m.checksum_failed)])
    metric("gaps_total", "counter", "Sequence gaps detected.", [("", m.gaps)])
    metric("resyncs_total", "counter", "Book resyncs.", [("", m.resyncs)])
    metric("reconnects_total", "counter", "Websocket reconnect attempts.", [("", m.reconnects)])
    metric("errors_total", "counter", "Bad input and internal errors, by kind.",
           [(f'{{kind="{_escape(k)}"}}', n) for k, n in sorted(m.errors.counts.items())])
    for name, hist, text in (("produce_latency_seconds", m.produce_latency, "Frame receipt to produce()."),
                             ("delivery_latency_seconds", m.delivery_latency, "produce() to the broker's delivery report.")):
        full = f"{prefix}_{name}"
        out.append(f"# HELP {full} {text}")
        out.append(f"# TYPE {full} summary")
        for q, v in _quantiles(hist):
            out.append(f'{full}{{quantile="{q}"}} {v:g}')
        out.append(f"{full}_count {hist.total}")
    synced, total = books_state(scheme)
    if scheme is not None:
        metric("books", "gauge", "Books held.", [("", total)])
        metric("books_synced", "gauge", "Books in sync.", [("", synced)])
    if sink is not None:
        try:
            stats = sink.stats() or {}
        except Exception:  # noqa: BLE001
            stats = {}
        for key, value in sorted(stats.items()):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            metric(f"sink_{key}", "gauge", f"Sink statistic {key}.", [("", value)])
    metric("uptime_seconds", "gauge", "Seconds since start.", [("", round(time.monotonic() - m.started, 3))])
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


__all__ = ["MetricsServer", "StatusLine", "prometheus_text", "window_percentile"]
