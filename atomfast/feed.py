"""The websocket side: connect, subscribe, ping, watch, reconnect; frames straight to the scheme.

``FeedGroup`` runs every connection of one scheme's plan (``scheme.plan(url)``); each
``FeedConnection`` is one planned connection for its whole life, across reconnects, and is the
``Connection`` the scheme sees (``id``, ``url``, ``plan``, ``state``, ``send``, ``reconnect``, plus
``fetch`` for REST snapshots). Transport: picows on the running (uvloop) event loop.

Hot path (``_Listener.on_ws_frame``): payload -> ``recv_ns = time.time_ns()`` ->
``FrameDriver.frame(conn, data, recv_ns)`` (``atomfast.driver``: counters, size limit, raw tap,
``scheme.on_frame``, ``pipeline.end_frame``), synchronously inside picows' callback: no Future,
task or queue between a frame and the sink. Connection events, REST answers and the timer go
through the same driver.

Protocol details:
- PING frames are answered by picows (``enable_auto_pong``); PONG frames count as activity.
- Fragmented messages (first frame without FIN, then CONTINUATION frames) are reassembled here.
- A message over ``scheme.max_frame_bytes`` is bad input (counted under "frame too large" by the
  driver) and the connection is reconnected (its books reload from a fresh snapshot). picows' own
  ``max_frame_size`` is set higher, as a memory bound; a frame over that one ends the connection
  in picows and is counted the same way; fragments are bounded here while they are reassembled.
- CLOSE from the server is answered and the connection reconnected.
- Application-level pings every ``scheme.ping_interval`` s: ``scheme.ping_message()``, or a
  websocket PING frame when the scheme has no message of its own.
- Watchdog: a connection silent for ``scheme.silence_timeout`` s is dropped and reconnected.
- Token: a scheme with ``token_path`` (KuCoin, Kraken's level3) is connected, on its own URL
  (not an ``--endpoint``), to the URL its ``connect_url`` reads from a POST of that path, made
  before every connect (``_token_url``); a failed POST is a "rest error" and a failed connect. The
  token never reaches a log, a status or a recording: ``conn.url`` stays the scheme's URL. A
  scheme says which of its URLs need the token (``Scheme.needs_token(url)``, default: all) and
  what the POST carries (``Scheme.token_request()``, default ``{}``, no headers); its
  ``connect_url`` may keep the token for its subscribe messages (Kraken).
- Reconnect: exponential backoff with full jitter (``Backoff``), forever unless ``max_retries``;
  the attempt counter restarts after a connection that stayed up ``stable_after`` s.
  ``scheme.on_close`` marks the connection's books unsynced and says ``disconnected``;
  ``scheme.on_open`` (on the new connection) says ``connected`` and resubscribes.
- ``stop()``: every connection closed (CLOSE 1000), ``disconnected`` then one ``stopped`` status.
  The caller closes the pipeline (which flushes the sink).
- Housekeeping timer (``poll_interval``, 100 ms): ``sink.poll()``, watchdog, pings, and every
  ``scheme.timer_interval`` s ``scheme.on_timer(connections that are up, now_ns)`` (a failure is
  counted as "internal error" by the driver, which ends the frame after it).
"""
from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any, Callable

from picows import WSCloseCode, WSError, WSListener, WSMsgType, WSProtocolError, ws_connect

from . import rest
from .driver import FrameDriver

try:  # the compiled listener, built against picows' declarations
    from ._listener import FrameListener
except (ImportError, ValueError) as _exc:  # (a picows whose layout differs from the build's)
    logging.getLogger("atomfast.feed").warning("compiled websocket listener unavailable (%s): using Python's", _exc)
    FrameListener = WSListener
from .metrics import Metrics

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .scheme import ConnectionPlan, Scheme

log = logging.getLogger("atomfast.feed")

TEXT = WSMsgType.TEXT
BINARY = WSMsgType.BINARY
CONTINUATION = WSMsgType.CONTINUATION
CLOSE = WSMsgType.CLOSE
PONG = WSMsgType.PONG

_time_ns = time.time_ns

#: picows' hard limit is this many times the scheme's limit (it bounds the read buffer)
HARD_LIMIT_FACTOR = 2


class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n))."""

    __slots__ = ("base", "cap", "attempt", "_random")

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: Callable[[], float] = random.random) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._random = rng

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 62)))
        self.attempt += 1
        return self._random() * ceiling

    def reset(self) -> None:
        self.attempt = 0


class _Listener(FrameListener):
    """picows' callbacks for one connection attempt. The common frame (a whole message within
    the limit) is the compiled ``FrameListener``'s (``atomfast._listener``); the rest is here."""

    def __init__(self, conn: "FeedConnection") -> None:
        super().__init__()
        self.conn = conn
        group = conn.group
        self.group = group
        self.metrics = group.metrics
        self.deliver = group.driver.frame
        self.limit = group.scheme.max_frame_bytes
        self.max_frames = group.max_frames
        self.memoryview = group.pass_memoryview
        self.frag: bytearray | None = None
        self.frag_binary = False

    def on_ws_connected(self, transport) -> None:
        self.conn._on_connected(transport)

    def on_ws_disconnected(self, transport) -> None:
        self.conn.connected = False

    if FrameListener is WSListener:  # the compiled listener could not be loaded: the same in Python
        def on_ws_frame(self, transport, frame) -> None:
            conn = self.conn
            if conn.closing is not None:
                return
            mt = frame.msg_type
            if (mt is TEXT or mt is BINARY) and frame.fin and frame.payload_size <= self.limit:
                data = frame.get_payload_as_memoryview() if self.memoryview else frame.get_payload_as_bytes()
                recv_ns = _time_ns()
                conn.last_ns = recv_ns
                self.deliver(conn, data, recv_ns, mt is BINARY)
                if self.max_frames and self.metrics.frames >= self.max_frames:
                    self.group.stop("max frames")
                return
            self.on_other_frame(transport, frame)

    def on_other_frame(self, transport, frame) -> None:
        """Fragments, control frames, a message over the limit."""
        conn = self.conn
        mt = frame.msg_type
        if mt is TEXT or mt is BINARY:
            if not frame.fin:
                self._begin_fragments(frame, mt is BINARY)
            else:
                # (the driver would count it too; here picows' own refusal is told apart)
                self._too_large(frame, frame.payload_size)
            return
        if mt is CONTINUATION:
            data = self._continue_fragments(frame)
            if data is None:
                return
            recv_ns = _time_ns()
            conn.last_ns = recv_ns
            self.deliver(conn, data, recv_ns, self.frag_binary)
            if self.max_frames and self.metrics.frames >= self.max_frames:
                self.group.stop("max frames")
        elif mt is PONG:
            conn.last_ns = _time_ns()
        elif mt is CLOSE:
            conn._on_close_frame(frame)

    # --- rare paths ----------------------------------------------------------------------------
    def _too_large(self, frame, n: int) -> None:
        sample = bytes(frame.get_payload_as_memoryview()[:200]) if frame.payload_size else b""
        self._report_too_large(n, sample)

    def _report_too_large(self, n: int, sample: bytes) -> None:
        conn = self.conn
        transport = conn.transport
        if transport is not None and transport.is_close_frame_sent:
            return  # picows already refused it (over its hard limit): counted when the close completes
        self.metrics.frames += 1
        self.metrics.bytes += n
        self.frag = None
        conn.group.driver.too_large(conn, n, sample)

    def _begin_fragments(self, frame, binary: bool) -> None:
        if frame.payload_size > self.limit:
            self._too_large(frame, frame.payload_size)
            return
        self.frag = bytearray(frame.get_payload_as_memoryview())
        self.frag_binary = binary

    def _continue_fragments(self, frame) -> bytes | None:
        frag = self.frag
        if frag is None:
            self.conn.group.scheme.bad_input("protocol", "CONTINUATION frame without a first fragment",
                                             frame.get_payload_as_bytes()[:200])
            return None
        if len(frag) + frame.payload_size > self.limit:
            self._report_too_large(len(frag) + frame.payload_size, bytes(frag[:200]))
            return None
        frag += frame.get_payload_as_memoryview()
        if not frame.fin:
            return None
        self.frag = None
        return bytes(frag)


class FeedConnection:
    """One planned connection, across reconnects: the ``Connection`` a scheme sees."""

    def __init__(self, group: "FeedGroup", conn_id: int, plan: "ConnectionPlan") -> None:
        self.group = group
        self.id = conn_id
        self.url = plan.url
        self.plan = plan
        #: per-connection scheme state (cleared on every new connection)
        self.state: dict = {}
        self.transport: Any = None
        self.connected = False
        #: the reason a close was requested (reconnect/stop/watchdog); None while running
        self.closing: str | None = None
        self.close_frame_reason: str | None = None
        self.last_ns = 0  # last activity (frame, pong, connect), time.time_ns()
        self.next_ping = 0.0  # loop time
        self.opened_at = 0.0  # loop time of the last successful connect
        self.connects = 0
        self.backoff = Backoff(group.backoff_base, group.backoff_cap)
        self.task: asyncio.Task | None = None
        self.done = False

    def __repr__(self) -> str:
        return f"<FeedConnection {self.id} {self.url} {'up' if self.connected else 'down'}>"

    # --- the Connection protocol ----------------------------------------------------------------
    def send(self, message: str | bytes) -> None:
        transport = self.transport
        if transport is None or not self.connected or self.closing is not None:
            log.debug("conn %d: not connected, dropped outgoing %.100r", self.id, self.group.scheme.redact(message))
            return
        data = message.encode() if isinstance(message, str) else bytes(message)
        transport.send(TEXT, data)
        hook = self.group.send_hook
        if hook is not None:
            hook(self, data, _time_ns())

    def reconnect(self, reason: str, abort: bool = False) -> None:
        """Close this connection (if open) and connect again, after the backoff delay."""
        if not self.connected or self.closing is not None:
            return
        self.closing = reason
        transport = self.transport
        log.info("%s conn %d: reconnecting (%s)", self.group.scheme.exchange, self.id, reason)
        try:
            if abort:
                transport.disconnect(graceful=False)
            else:
                transport.send_close(WSCloseCode.GOING_AWAY, reason[:100].encode())
                transport.disconnect()
        except Exception:  # noqa: BLE001 - already going down
            transport.disconnect(graceful=False)

    def fetch(self, url: str) -> None:
        """GET ``url`` in the background (the REST override applied); the answer goes to
        ``scheme.on_rest(url, body, recv_ns)``. Failures are counted as "rest error"."""
        self.group.fetch(url, self)

    # --- life ------------------------------------------------------------------------------------
    def _on_connected(self, transport) -> None:
        group = self.group
        recv_ns = _time_ns()
        self.transport = transport
        self.connected = True
        self.closing = None
        self.close_frame_reason = None
        self.state.clear()
        self.last_ns = recv_ns
        self.connects += 1
        loop = group.loop
        self.opened_at = loop.time()
        self.next_ping = self.opened_at + group.scheme.ping_interval
        if group.open_hook is not None:
            group.open_hook(self, recv_ns)
        group.driver.open(self, recv_ns)

    def _on_close_frame(self, frame) -> None:
        try:
            code = frame.get_close_code()
            reason = frame.get_close_reason()
        except Exception:  # noqa: BLE001 - malformed close: picows complains itself
            code, reason = None, ""
        code_text = getattr(code, "value", code)
        self.close_frame_reason = f"closed by server ({code_text}{': ' + reason if reason else ''})"
        self.closing = self.close_frame_reason
        transport = self.transport
        try:
            if not transport.is_close_frame_sent:
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        except Exception:  # noqa: BLE001
            transport.disconnect(graceful=False)

    async def run(self) -> None:
        group = self.group
        scheme = group.scheme
        metrics = group.metrics
        first = True
        try:
            while not group.stopping:
                if not first:
                    if group.max_retries is not None and self.backoff.attempt >= group.max_retries:
                        log.error("%s conn %d: giving up after %d reconnect attempts", scheme.exchange, self.id,
                                  self.backoff.attempt)
                        break
                    delay = self.backoff.next()
                    metrics.reconnects += 1
                    log.info("%s conn %d: reconnect in %.2f s", scheme.exchange, self.id, delay)
                    if await group._sleep(delay):
                        break
                first = False
                transport = await self._connect()
                if transport is None:
                    continue
                reason = await self._wait_closed(transport)
                self.connected = False
                self.transport = None
                up = group.loop.time() - self.opened_at
                if up >= group.stable_after:
                    self.backoff.reset()
                if group.stopping and self.closing is None:
                    reason = group.stop_reason or "stopped"
                log.log(logging.INFO if group.stopping else logging.WARNING,
                        "%s conn %d: disconnected after %.1f s (%s)", scheme.exchange, self.id, up, reason)
                group.driver.close(self, reason, _time_ns())
        finally:
            self.connected = False
            self.done = True
            group._connection_done(self)

    async def _connect(self):
        group = self.group
        url = shown = self.url
        if group.scheme.token_path and _own_url(group.scheme, url) and group.scheme.needs_token(url):
            url = await self._token_url()  # (the URL carries a token: only ``shown`` is logged)
            if url is None:
                return None
            shown = redact_url(url)
        try:
            transport, _listener = await asyncio.wait_for(
                ws_connect(
                    lambda: _Listener(self),
                    url,
                    ssl_context=group.ssl_context if url.startswith("wss:") else None,
                    websocket_handshake_timeout=group.connect_timeout,
                    enable_auto_pong=True,
                    max_frame_size=group.scheme.max_frame_bytes * HARD_LIMIT_FACTOR + 65536,
                    logger_name="atomfast",
                ),
                group.connect_timeout,
            )
        except asyncio.CancelledError:
            raise
        except (OSError, WSError, asyncio.TimeoutError, ssl.SSLError, ValueError) as exc:
            msg = str(exc) or type(exc).__name__
            if isinstance(exc, asyncio.TimeoutError):
                msg = f"timed out after {group.connect_timeout:g} s"
            log.warning("%s conn %d: cannot connect to %s: %s", group.scheme.exchange, self.id, shown, msg)
            return None
        if not self.connected and not transport.is_disconnected:
            # the handshake completed but on_ws_connected did not run (cannot happen in picows 1.x+)
            self._on_connected(transport)
        return transport

    async def _token_url(self) -> str | None:
        """Before each connect to the scheme's own URL (``Scheme.token_path``): POST the token
        path (the REST override applied) and read the URL to connect to (``connect_url``). A
        failure is a "rest error" and a failed connect (None: backoff, retry). The URL and the
        answer carry the token: neither is logged, recorded or handed to the REST hooks."""
        group = self.group
        scheme = group.scheme
        target = group.rest_url(scheme.rest_url + scheme.token_path)
        try:
            payload, headers = scheme.token_request()  # (secrets: neither is logged)
            body = await rest.post(target, payload, timeout=group.connect_timeout, headers=headers)
            url, ping = scheme.connect_url(body, uuid.uuid4().hex)
            if not url.startswith(("ws://", "wss://")):
                raise ValueError(f"not a websocket URL: {redact_url(url)!r}")
        except asyncio.CancelledError:
            raise
        except rest.RestError as exc:
            detail = str(exc)
        except Exception as exc:  # noqa: BLE001 - an answer that names no URL (a scheme's message names no token)
            detail = f"POST {target}: {type(exc).__name__}: {exc}"
        else:
            if 0 < ping < (scheme.ping_interval or float("inf")):
                scheme.ping_interval = ping  # the server's own interval, when it asks for more pings
            return url
        group.metrics.errors.report("rest error", detail)
        log.warning("%s conn %d: no websocket URL: %s", scheme.exchange, self.id, detail)
        return None

    async def _wait_closed(self, transport) -> str:
        reason = ""
        try:
            await transport.wait_disconnected()
        except WSProtocolError as exc:
            code = getattr(exc, "code", None)
            detail = exc.args[1] if len(exc.args) > 1 else str(exc)
            if code == WSCloseCode.MESSAGE_TOO_BIG:
                self.group.scheme.bad_input("frame too large", str(detail), b"")
                reason = "frame too large"
            else:
                self.group.scheme.bad_input("protocol", str(detail), b"")
                reason = f"protocol error: {detail}"
        except asyncio.CancelledError:
            transport.disconnect(graceful=False)
            raise
        except Exception as exc:  # noqa: BLE001 - the connection is gone either way
            reason = f"{type(exc).__name__}: {exc}"
        return self.closing or self.close_frame_reason or reason or "connection lost"


def _own_url(scheme: "Scheme", url: str) -> bool:
    """Whether ``url`` is one of the scheme's own websocket URLs (not an ``--endpoint``)."""
    own = url.rstrip("/")
    return own == scheme.ws_url.rstrip("/") or any(own == u.rstrip("/") for u in scheme.channel_urls.values())


def redact_url(url: str) -> str:
    """``url`` without its query and fragment (where a token travels): fit for a log."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


class FeedGroup:
    """All the connections of one scheme's plan, their housekeeping, and a clean stop."""

    def __init__(
        self,
        scheme: "Scheme",
        pipeline: "Pipeline",
        *,
        url: str | None = None,
        rest_base: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retries: int | None = None,
        stable_after: float = 10.0,
        max_frames: int = 0,
        poll_interval: float = 0.1,
        connect_timeout: float = 15.0,
        raw: bool = False,
        frame_hook: Callable[[FeedConnection, bytes, int, bool], None] | None = None,
        send_hook: Callable[[FeedConnection, bytes, int], None] | None = None,
        open_hook: Callable[[FeedConnection, int], None] | None = None,
        rest_hook: Callable[[str, bytes, int], None] | None = None,
    ) -> None:
        self.scheme = scheme
        self.pipeline = pipeline
        self.metrics: Metrics = pipeline.metrics
        self.url = url or scheme.ws_url
        self.rest_base = rest_base
        self.ssl_context = ssl_context or rest.ssl_context()
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retries = max_retries
        self.stable_after = stable_after
        self.max_frames = max_frames
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self.raw = raw
        self.send_hook = send_hook
        self.open_hook = open_hook
        self.rest_hook = rest_hook
        #: raw=True: frames and connection events to the raw topic (atomfast.processor.RawTap)
        self.raw_tap = None
        if raw:
            from .processor import RawTap

            self.raw_tap = RawTap(pipeline, scheme)
        #: the one owner of every frame and scheme call (``atomfast.driver``)
        self.driver = FrameDriver(scheme, pipeline, self.raw_tap, frame_hook)
        #: hand the scheme a memoryview (valid during on_frame only) where it says it can take one
        self.pass_memoryview = (bool(getattr(scheme, "accepts_memoryview", False)) and frame_hook is None
                                and self.raw_tap is None)
        self.connections = [FeedConnection(self, i, plan) for i, plan in enumerate(scheme.plan(self.url))]
        self.stopping = False
        self.stop_reason = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._next_scheme_timer = 0.0  # loop time of the next scheme.on_timer call
        self._fetches: set[asyncio.Task] = set()


    # --- running ---------------------------------------------------------------------------------
    async def run(self) -> str:
        """Connect everything and run until ``stop()`` (or every connection gave up).

        Returns the stop reason. Emits the final ``stopped`` status; does not close the pipeline.
        """
        self.loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self.stopping:
            self._stop_event.set()
        log.info("%s: %d connection(s) to %s", self.scheme.exchange, len(self.connections), self.url)
        self._timer = self.loop.call_later(self.poll_interval, self._tick)
        self._next_scheme_timer = self.loop.time() + self.scheme.timer_interval
        for conn in self.connections:
            conn.task = self.loop.create_task(conn.run(), name=f"feed-{self.scheme.exchange}-{conn.id}")
        try:
            await asyncio.gather(*(c.task for c in self.connections), return_exceptions=True)
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            for t in list(self._fetches):
                t.cancel()
        if not self.stop_reason:
            self.stop_reason = "all connections gave up"
        stop_ns = _time_ns()
        if self.raw_tap is not None:
            try:
                self.raw_tap.stop(self.stop_reason, stop_ns, [c.id for c in self.connections])
            except Exception as exc:  # noqa: BLE001
                self.metrics.errors.report("sink error", f"raw: {type(exc).__name__}: {exc}")
        self.driver.status("", "stopped", self.stop_reason, stop_ns)
        try:
            self.pipeline.sink.poll()
        except Exception:  # noqa: BLE001
            pass
        return self.stop_reason

    def stop(self, reason: str = "stopped") -> None:
        """Close every connection and end ``run()``. Safe to call more than once, from callbacks."""
        if self.stopping:
            return
        self.stopping = True
        self.stop_reason = reason
        log.info("%s: stopping (%s)", self.scheme.exchange, reason)
        if self._stop_event is not None:
            self._stop_event.set()
        for conn in self.connections:
            if conn.connected and conn.closing is None:
                conn.closing = reason
                try:
                    conn.transport.send_close(WSCloseCode.OK)
                    conn.transport.disconnect()
                except Exception:  # noqa: BLE001
                    conn.transport.disconnect(graceful=False)
                if self.loop is not None:
                    self.loop.call_later(2.0, self._force_close, conn)
            elif conn.task is not None and not conn.done and not conn.connected:
                # connecting: cancel the attempt (sleeping ones wake up on the event)
                conn.task.cancel()

    @staticmethod
    def _force_close(conn: FeedConnection) -> None:
        if conn.connected and conn.transport is not None:
            conn.transport.disconnect(graceful=False)

    async def _sleep(self, delay: float) -> bool:
        """Sleep ``delay`` s; True when stopped meanwhile."""
        assert self._stop_event is not None
        try:
            await asyncio.wait_for(self._stop_event.wait(), delay)
        except asyncio.TimeoutError:
            pass
        return self.stopping

    def _connection_done(self, conn: FeedConnection) -> None:
        if all(c.done for c in self.connections) and self._stop_event is not None:
            self._stop_event.set()

    def _tick(self) -> None:
        loop = self.loop
        try:
            self.pipeline.sink.poll()
        except Exception as exc:
            self.metrics.errors.report("sink error", f"poll: {type(exc).__name__}: {exc}")
        scheme = self.scheme
        silence = scheme.silence_timeout
        interval = scheme.ping_interval
        now = loop.time()
        now_ns = _time_ns()
        for conn in self.connections:
            if not conn.connected or conn.closing is not None:
                continue
            if silence and (now_ns - conn.last_ns) > silence * 1e9:
                conn.reconnect(f"silent for {(now_ns - conn.last_ns) / 1e9:.1f} s", abort=True)
                continue
            if interval and now >= conn.next_ping:
                conn.next_ping = now + interval
                try:
                    msg = scheme.ping_message()
                    if msg is None:
                        conn.transport.send_ping()
                    else:
                        conn.send(msg)
                except Exception as exc:  # noqa: BLE001
                    log.warning("%s conn %d: ping failed: %s", scheme.exchange, conn.id, exc)
        timer = scheme.timer_interval
        if timer and now >= self._next_scheme_timer and not self.stopping:
            self._next_scheme_timer = now + timer
            self.driver.timer([c for c in self.connections if c.connected and c.closing is None], now_ns)
        if not self.stopping or any(not c.done for c in self.connections):
            self._timer = loop.call_later(self.poll_interval, self._tick)

    # --- REST from a scheme ------------------------------------------------------------------------
    def rest_url(self, url: str) -> str:
        """An exchange REST URL, moved onto the REST override when there is one."""
        return rest.rebase(url, self.rest_base, self.scheme.rest_url)

    def fetch(self, url: str, conn: FeedConnection | None = None) -> None:
        loop = self.loop or asyncio.get_running_loop()
        task = loop.create_task(self._fetch(url, conn))
        self._fetches.add(task)
        task.add_done_callback(self._fetches.discard)

    async def _fetch(self, url: str, conn: FeedConnection | None = None) -> None:
        try:
            body = await rest.fetch(self.rest_url(url))
        except rest.RestError as exc:
            self.metrics.errors.report("rest error", str(exc))
            self.driver.rest_error(conn, url, exc, _time_ns())
            return
        if self.stopping:
            return
        recv_ns = _time_ns()
        if self.rest_hook is not None:
            self.rest_hook(url, body, recv_ns)
        self.driver.rest(conn, url, body, recv_ns)


__all__ = ["Backoff", "FeedConnection", "FeedGroup", "redact_url"]
