"""The one owner of a received frame: ``FrameDriver``.

Whatever delivers frames (the websocket listener of ``atomfast.feed``, a capture in
``atomfast.replay``, a ``raw`` record in ``atomfast.processor``) hands each one to
``FrameDriver.frame`` and nothing else; the driver does, in this order and once:

1. counts it (``metrics.frames``, ``metrics.bytes``);
2. refuses a frame over the scheme's ``max_frame_bytes`` (one "frame too large" bad input; the
   connection is reconnected, its books reload from a fresh snapshot);
3. hands it to the raw tap (``run --raw``) and the frame hook (``atomfast record``), if any;
4. calls ``scheme.on_frame(conn, data, recv_ns)`` (a scheme never raises: if it does, ONE
   "internal error" is counted for the frame and the driver goes on);
5. ends the frame: ``pipeline.end_frame(recv_ns)`` encodes what the frame produced and writes it
   to the sink (a sink failure is one counted "sink error").

The scheme's other entry points (``on_open``, ``on_close``, ``on_rest``, ``on_rest_error``,
``on_timer``) go through the driver too, with the same accounting, so that what a venue emits
outside a frame is published the same way.

Venues never repeat any of this: their ``on_frame`` starts at the bytes.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .scheme import Connection, Scheme

log = logging.getLogger("atomfast.driver")

#: (conn, data, recv_ns, binary): sees every frame before the scheme (``atomfast record``)
FrameHook = Callable[[Any, Any, int, bool], None]


class FrameDriver:
    """Frames of one scheme's connections, from their payload to the sink."""

    __slots__ = ("scheme", "pipeline", "metrics", "raw_tap", "frame_hook", "limit", "_on_frame", "_end_frame",
                 "_errors")

    def __init__(self, scheme: "Scheme", pipeline: "Pipeline", raw_tap: Any = None,
                 frame_hook: FrameHook | None = None) -> None:
        self.scheme = scheme
        self.pipeline = pipeline
        self.metrics = scheme.metrics
        self.raw_tap = raw_tap
        self.frame_hook = frame_hook
        self.limit = scheme.max_frame_bytes
        self._on_frame = scheme.on_frame
        self._end_frame = pipeline.end_frame
        self._errors = self.metrics.errors

    # --- the hot path ------------------------------------------------------------------------------
    def frame(self, conn: "Connection", data: bytes, recv_ns: int, binary: bool = False) -> None:
        """One received frame (bytes, or a memoryview valid during the call for a scheme with
        ``accepts_memoryview``), through the scheme to the sink."""
        metrics = self.metrics
        n = len(data)
        metrics.frames += 1
        metrics.bytes += n
        if n > self.limit:
            self.too_large(conn, n, data)
            return
        if self.raw_tap is not None:
            self.raw_tap.frame(conn, data, recv_ns, binary)
        if self.frame_hook is not None:
            self.frame_hook(conn, data, recv_ns, binary)
        try:
            self._on_frame(conn, data, recv_ns)
        except Exception as exc:  # a scheme must not raise; if it does, count it and go on
            self._errors.report("internal error", f"{type(exc).__name__}: {exc}", bytes(data[:200]))
        try:
            self._end_frame(recv_ns)
        except Exception as exc:
            self._errors.report("sink error", f"{type(exc).__name__}: {exc}")

    def apply(self, conn: "Connection", data: bytes, recv_ns: int) -> None:
        """A frame whose outputs were delivered before (``atomfast process`` rebuilding its books
        from ``raw``): the scheme's state follows it, nothing is published or counted as new."""
        if len(data) > self.limit:
            return
        try:
            self._on_frame(conn, data, recv_ns)
        except Exception as exc:
            self._errors.report("internal error", f"{type(exc).__name__}: {exc}", bytes(data[:200]))
        self.pipeline.discard()

    def too_large(self, conn: "Connection", n: int, data: Any = b"") -> None:
        """A frame over ``max_frame_bytes`` (``n`` bytes; ``data`` a sample): counted bad input,
        the connection reconnected (its books reload)."""
        self.scheme.bad_input("frame too large", f"{n} bytes > {self.limit} (max_frame_bytes)", bytes(data[:200]))
        conn.reconnect("frame too large")

    # --- the scheme's other entry points ------------------------------------------------------------
    def open(self, conn: "Connection", recv_ns: int, publish: bool = True) -> None:
        """A connection is up: the scheme says so and subscribes."""
        if self.raw_tap is not None:
            self.raw_tap.open(conn, recv_ns)
        self._call("on_open", self.scheme.on_open, conn, recv_ns)
        self._finish(publish)

    def close(self, conn: "Connection", reason: str, recv_ns: int, publish: bool = True) -> None:
        """A connection went down: its books are untrusted until their next snapshot."""
        if self.raw_tap is not None:
            self.raw_tap.close(conn, reason, recv_ns)
        self._call("on_close", self.scheme.on_close, conn, reason, recv_ns)
        self._finish(publish)

    def rest(self, conn: "Connection | None", url: str, body: bytes, recv_ns: int, publish: bool = True) -> None:
        """A REST answer (a book snapshot, an open-interest poll)."""
        if self.raw_tap is not None:
            self.raw_tap.rest(conn, url, body, recv_ns)
        self._call("on_rest", self.scheme.on_rest, url, body, recv_ns, sample=body)
        self._finish(publish, recv_ns)

    def rest_error(self, conn: "Connection | None", url: str, exc: Exception, recv_ns: int,
                   publish: bool = True) -> None:
        """A REST request that failed (the venue decides when to ask again)."""
        handler = getattr(self.scheme, "on_rest_error", None)
        if handler is None:
            return
        if self.raw_tap is not None:
            self.raw_tap.rest_error(conn, url, exc, recv_ns)
        self._call("on_rest_error", handler, url, exc, recv_ns)
        self._finish(publish)

    def timer(self, conns: Sequence["Connection"], now_ns: int) -> None:
        """The feed's housekeeping tick (every ``scheme.timer_interval`` s)."""
        self._call("on_timer", self.scheme.on_timer, conns, now_ns)
        self._finish(True)

    def status(self, symbol: str, status: str, reason: str, recv_ns: int, publish: bool = True) -> None:
        """A ``status`` event that is the runtime's, not the venue's (``stopped``)."""
        self.scheme.status(symbol, status, reason, recv_ns)
        self._finish(publish)

    def _call(self, what: str, fn: Callable, *args, sample: Any = b"") -> None:
        try:
            fn(*args)
        except Exception as exc:  # a scheme must not raise; if it does, count it and go on
            self._errors.report("internal error", f"{what}: {type(exc).__name__}: {exc}", bytes(sample[:200]))
            log.exception("%s: %s failed", self.scheme.exchange, what)

    def _finish(self, publish: bool, recv_ns: int = 0) -> None:
        if not publish:
            self.pipeline.discard()
            return
        try:
            self._end_frame(recv_ns)
        except Exception as exc:
            self._errors.report("sink error", f"{type(exc).__name__}: {exc}")


__all__ = ["FrameDriver", "FrameHook"]
