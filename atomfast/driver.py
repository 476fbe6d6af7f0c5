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

from ._frame import FrameCore

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .scheme import Connection, Scheme

log = logging.getLogger("atomfast.driver")

#: (conn, data, recv_ns, binary): sees every frame before the scheme (``atomfast record``)
FrameHook = Callable[[Any, Any, int, bool], None]


class FrameDriver(FrameCore):
    """Frames of one scheme's connections, from their payload to the sink.

    ``FrameDriver(scheme, pipeline, raw_tap=None, frame_hook=None)``. The hot part is compiled
    (``atomfast._frame.FrameCore``): ``frame(conn, data, recv_ns, binary=False)``, ``apply``
    (a frame whose outputs were delivered before: ``atomfast process`` rebuilding its books),
    ``too_large`` and the replay loop; ``on_frame`` is what a frame is handed to (the scheme's
    bound route table). The rest is here."""

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
            self.metrics.errors.report("internal error", f"{what}: {type(exc).__name__}: {exc}", bytes(sample[:200]))
            log.exception("%s: %s failed", self.scheme.exchange, what)

    def _finish(self, publish: bool, recv_ns: int = 0) -> None:
        if not publish:
            self.pipeline.discard()
            return
        try:
            self.pipeline.end_frame(recv_ns)
        except Exception as exc:
            self.metrics.errors.report("sink error", f"{type(exc).__name__}: {exc}")


__all__ = ["FrameDriver", "FrameHook"]
