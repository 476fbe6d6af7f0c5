"""Replay: a recorded capture through the same scheme, book, encoder and sink as a live run,
offline and as fast as it goes. Used by ``atomfast replay``, the tests and the benchmarks.

Each recorded connection becomes a ``ReplayConnection``: what the scheme sends (subscribe,
resubscribe after a resync, pings) is kept in ``sent``; a reconnect request is counted. The
recorded receive time of each frame is its ``recv_ns``, so the output is deterministic.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

from .capture import OPEN, RECV, REST, Capture, open_capture
from .exchanges import scheme_for
from .metrics import Metrics
from .pipeline import Pipeline
from .scheme import ConnectionPlan, Scheme

log = logging.getLogger("atomfast.replay")


class ReplayConnection:
    """The Connection a scheme sees during a replay."""

    def __init__(self, conn_id: int, url: str) -> None:
        self.id = conn_id
        self.url = url
        self.plan = ConnectionPlan(url, [])
        self.state: dict = {}
        self.sent: list[str | bytes] = []
        self.reconnects: list[str] = []

    def send(self, message: str | bytes) -> None:
        self.sent.append(message)

    def reconnect(self, reason: str) -> None:
        self.reconnects.append(reason)


def instruments_from_capture(scheme_cls: type[Scheme], capture: Capture) -> dict:
    """The instrument listing the capture recorded, parsed by the scheme ({} where absent)."""
    if not scheme_cls.instruments_path:
        return {}
    body = capture.rest_body(scheme_cls.rest_url + scheme_cls.instruments_path)
    if body is None:
        body = capture.rest_body(scheme_cls.instruments_path)
    if body is None:
        log.warning("%s: capture holds no instrument listing; symbols are guessed", scheme_cls.exchange)
        return {}
    return scheme_cls.parse_instruments(body)


class Replay:
    """One capture wired to one scheme and one sink."""

    def __init__(self, capture: Capture, exchange: str, sink, metrics: Metrics | None = None,
                 scheme_cls: type[Scheme] | None = None) -> None:
        self.capture = capture
        self.metrics = metrics if metrics is not None else Metrics()
        self.scheme_cls = scheme_cls or scheme_for(exchange, capture.urls[0] if capture.urls else None)
        self.pipeline = Pipeline(sink, self.metrics)
        self.scheme = self.scheme_cls(
            self.pipeline.emit,
            self.metrics,
            instruments_from_capture(self.scheme_cls, capture),
            (),
            tuple(self.scheme_cls.channels),
        )
        self.connections: dict[int, ReplayConnection] = {}

    def connection(self, conn_id: int, url: str) -> ReplayConnection:
        conn = self.connections.get(conn_id)
        if conn is None:
            conn = self.connections[conn_id] = ReplayConnection(conn_id, url or self.scheme_cls.ws_url)
        return conn

    def run(self, max_frames: int = 0) -> Metrics:
        scheme, pipeline, metrics = self.scheme, self.pipeline, self.metrics
        on_frame, end_frame = scheme.on_frame, pipeline.end_frame
        limit = scheme.max_frame_bytes
        started = time.perf_counter()
        for frame in self.capture.frames():
            kind = frame.kind
            if kind == RECV:
                conn = self.connections.get(frame.conn) or self.connection(frame.conn, frame.url)
                data = frame.data
                metrics.frames += 1
                metrics.bytes += len(data)
                if len(data) > limit:
                    scheme.bad_input("frame too large", f"{len(data)} bytes > {limit}", data[:200])
                    continue
                try:
                    on_frame(conn, data, frame.ts_ns)
                except Exception as exc:  # a scheme must not raise; if it does, count it and go on
                    metrics.errors.report("internal error", f"{type(exc).__name__}: {exc}", data)
                end_frame()
                if max_frames and metrics.frames >= max_frames:
                    break
            elif kind == OPEN:
                scheme.on_open(self.connection(frame.conn, frame.url), frame.ts_ns)
                end_frame()
            elif kind == REST:
                scheme.on_rest(frame.url, frame.data, frame.ts_ns)
                end_frame()
        pipeline.close()
        self.seconds = time.perf_counter() - started
        return metrics


def replay_capture(paths: Sequence[str | Path], exchange: str, sink, metrics: Metrics | None = None,
                   max_frames: int = 0) -> Replay:
    replay = Replay(open_capture(*paths), exchange, sink, metrics)
    replay.run(max_frames)
    return replay
