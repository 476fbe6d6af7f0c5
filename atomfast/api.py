"""atomfast as a library: a feed whose events go to your callbacks, per topic, typed.

::

    import atomfast

    feed = atomfast.Feed("kraken", symbols=["BTC-USD"], channels=["trades", "lob"])

    @feed.on("trades")
    def on_trade(trade: atomfast.Trade) -> None:
        print(trade.symbol, trade.price, trade.size, trade.taker_side)

    summary = feed.run_sync(duration=60)      # a plain script
    # or, inside your own asyncio program:   summary = await feed.run(duration=60)

:class:`Feed` is ``atomfast run`` (a live feed: websocket -> scheme and books, verified by
checksum or sequence -> events) or ``atomfast replay`` (``capture=``: a recorded capture, offline
and as fast as it goes) with one more sink: your callbacks. Nothing is decoded twice and no second
path builds books: the feed is the product's own :class:`~atomfast.collector.Collector` (live) or
:class:`~atomfast.replay.Replay` (capture), and a callback receives exactly the records the
pipeline writes to a sink, in the order written: typed ``NamedTuple`` events of
``atomfast.events`` (:class:`Trade`, :class:`Lob`, :class:`Spread`, :class:`Status`, ...).
The counts are therefore those of ``atomfast run``/``atomfast replay`` (``Summary.events``), and
a capture replayed here gives the same summary as ``atomfast replay`` of it.

Callbacks
    ``feed.on(topic, callback)`` or the decorator ``@feed.on(topic)``; ``"*"`` receives every
    topic. A topic is one of :data:`TOPICS` (``lob``, ``trades``, ``spread``, ``ticker``,
    ``status``, ...). Several callbacks of one topic are called in the order registered. A plain
    function is called as the frame's events are written (in a live feed: on the event loop,
    between frames, so a slow callback slows the feed). A coroutine function (``async def``) is
    awaited, one event at a time in order, by a task of the feed: the feed does not wait for it
    (live: events wait in memory while it is behind; ``Summary.max_pending`` says how far it
    fell behind); a capture waits for it (its replay runs in a worker thread and hands the
    events over in batches). Every callback runs on the thread of the feed's event loop (the
    one exception: ``run_sync()`` of a capture whose callbacks are all plain functions replays
    in the calling thread, without a loop).

A callback that raises
    is counted (``Summary.callback_errors``, per kind ``"<topic> callback <name>:
    <ExceptionType>"`` in ``Summary.callback_error_kinds``) and logged with its traceback once per
    kind (then every 1000th, on the ``atomfast.api`` logger); the feed goes on, the event's other
    callbacks are still called and the errors are not the feed's (``Summary.errors`` counts bad
    input only, as the CLI's summary does).

Sinks
    ``sink=None`` (default): the callbacks only, nothing stored. ``sink="files" | "kafka" |
    "stdout" | "null"``: also that sink, as ``--sink`` of the CLI (settings, ``data_dir``,
    ``KAFKA_BOOTSTRAP_SERVERS``...); the sink takes each batch first, the callbacks then.

Stopping
    ``duration`` (seconds), ``max_frames``, ``feed.stop()`` from anywhere on the loop (a callback
    too): connections closed, a final ``status`` event ``stopped`` (live), the sink flushed and
    closed, and ``run`` returns the :class:`Summary` (also ``feed.summary``). A capture ends at
    its end (``Summary.stopped == "end of capture"``); ``stop()`` ends it after the frame in hand.
    While a live feed runs, SIGINT and SIGTERM stop it the same way (as ``atomfast run``).

Errors
    Bad settings (an unknown exchange, symbol or channel): :class:`UsageError`; the exchange not
    reachable at start (its instrument listing): :class:`StartError`; a capture that is not one,
    or another venue's: :class:`CaptureError` (``force=True`` replays it anyway).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from os import PathLike
from typing import (TYPE_CHECKING, Any, Callable, Iterator, Literal, Mapping, Sequence, TypeVar, Union,
                    overload)

from .events import (TOPICS, Candle, FundingRate, Liquidation, Lob, LobL3, OpenInterest, Raw, Spread, Status, Ticker,
                     Trade, TradeL3)

if TYPE_CHECKING:
    from .collector import Collector
    from .metrics import Metrics
    from .replay import Replay
    from .sinks.base import Sink

__all__ = ["ALL", "BATCH", "Event", "Feed", "Summary", "Topic", "replay_capture"]

log = logging.getLogger("atomfast.api")

#: any of the typed events a callback receives
Event = Union[Lob, LobL3, Trade, TradeL3, Ticker, Spread, Candle, FundingRate, OpenInterest, Liquidation, Status, Raw]
#: the topics a callback can be registered for ("*": every topic)
Topic = Literal["lob", "lob_l3", "trades", "trades_l3", "ticker", "spread", "candle", "funding_rate",
                "open_interest", "liquidations", "status", "raw", "*"]
#: the topic name that receives every topic
ALL = "*"
#: a capture replayed inside ``await run()`` hands its events to the loop in batches of about this many
BATCH = 4096

CapturePaths = Union[str, "PathLike[str]", Sequence[Union[str, "PathLike[str]"]]]

_F = TypeVar("_F", bound=Callable[..., object])
_LobF = TypeVar("_LobF", bound=Callable[[Lob], object])
_LobL3F = TypeVar("_LobL3F", bound=Callable[[LobL3], object])
_TradeF = TypeVar("_TradeF", bound=Callable[[Trade], object])
_TradeL3F = TypeVar("_TradeL3F", bound=Callable[[TradeL3], object])
_TickerF = TypeVar("_TickerF", bound=Callable[[Ticker], object])
_SpreadF = TypeVar("_SpreadF", bound=Callable[[Spread], object])
_CandleF = TypeVar("_CandleF", bound=Callable[[Candle], object])
_FundingF = TypeVar("_FundingF", bound=Callable[[FundingRate], object])
_OpenInterestF = TypeVar("_OpenInterestF", bound=Callable[[OpenInterest], object])
_LiquidationF = TypeVar("_LiquidationF", bound=Callable[[Liquidation], object])
_StatusF = TypeVar("_StatusF", bound=Callable[[Status], object])
_RawF = TypeVar("_RawF", bound=Callable[[Raw], object])
_AnyF = TypeVar("_AnyF", bound=Callable[[Event], object])


@dataclass(frozen=True)
class Summary:
    """How a feed went: the summary ``atomfast run``/``atomfast replay`` print, plus the callbacks'."""

    exchange: str
    #: why it stopped: "duration", "max frames", "stopped" (``feed.stop()``), "SIGINT", "SIGTERM",
    #: "all connections gave up", "end of capture"
    stopped: str
    #: frames received (live) or replayed (capture)
    frames: int
    #: topic -> events written (what the callbacks of that topic were handed)
    events: dict[str, int]
    checksum_ok: int
    checksum_failed: int
    gaps: int
    resyncs: int
    #: bad input (frames the scheme refused); kinds in ``error_kinds``
    errors: int
    error_kinds: dict[str, int]
    reconnects: int
    seconds: float
    #: exceptions raised by callbacks, and per kind ("<topic> callback <name>: <ExceptionType>")
    callback_errors: int = 0
    callback_error_kinds: dict[str, int] = field(default_factory=dict)
    #: the most events waiting for async callbacks at once (live feeds)
    max_pending: int = 0
    #: receipt -> sink latency percentiles, as in the CLI's summary
    latency: dict[str, Any] = field(default_factory=dict)

    @property
    def gave_up(self) -> bool:
        """Every connection gave up (``max_retries``): a failed run."""
        return self.stopped == "all connections gave up"

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (JSON-ready)."""
        return asdict(self)

    @classmethod
    def _of(cls, exchange: str, summary: dict[str, Any], stopped: str, callback_errors: dict[str, int],
            max_pending: int) -> "Summary":
        return cls(
            exchange=exchange, stopped=stopped, frames=summary["frames"], events=dict(summary["events"]),
            checksum_ok=summary["checksum_ok"], checksum_failed=summary["checksum_failed"], gaps=summary["gaps"],
            resyncs=summary["resyncs"], errors=summary["errors"], error_kinds=dict(summary["error_kinds"]),
            reconnects=summary["reconnects"], seconds=summary["seconds"],
            callback_errors=sum(callback_errors.values()), callback_error_kinds=dict(callback_errors),
            max_pending=max_pending, latency=summary.get("latency", {}),
        )


def _is_async(callback: Callable[..., object]) -> bool:
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None))  # noqa: B004 - an object with an async __call__


def _name(callback: Callable[..., object]) -> str:
    return getattr(callback, "__qualname__", None) or getattr(callback, "__name__", None) or type(callback).__name__


class _Callbacks:
    """One run's callbacks, per topic ('*' merged in, in registration order), and their errors."""

    def __init__(self, registered: Sequence[tuple[str, Callable[..., object]]]) -> None:
        #: topic -> [(callback, is_async)]
        self.table: dict[str, list[tuple[Callable[..., object], bool]]] = {}
        for topic in TOPICS:
            subs = [(cb, _is_async(cb)) for t, cb in registered if t == topic or t == ALL]
            if subs:
                self.table[topic] = subs
        self.sync: dict[str, list[Callable[..., object]]] = {
            t: [cb for cb, a in subs if not a] for t, subs in self.table.items() if any(not a for _, a in subs)}
        self.async_: dict[str, list[Callable[..., object]]] = {
            t: [cb for cb, a in subs if a] for t, subs in self.table.items() if any(a for _, a in subs)}
        self.errors: dict[str, int] = {}

    @property
    def any_async(self) -> bool:
        return bool(self.async_)

    def failed(self, topic: str, callback: Callable[..., object], exc: BaseException) -> None:
        kind = f"{topic} callback {_name(callback)}: {type(exc).__name__}"
        n = self.errors[kind] = self.errors.get(kind, 0) + 1
        if n == 1:
            log.error("%s: %s (the feed goes on; each kind is logged once, every one is counted in "
                      "Summary.callback_errors)", kind, exc, exc_info=exc)
        elif n % 1000 == 0:
            log.error("%s: %s (%d so far)", kind, exc, n)

    def call_sync(self, topic: str, records: Sequence[Event]) -> None:
        subs = self.sync.get(topic)
        if not subs:
            return
        for record in records:
            for cb in subs:
                try:
                    cb(record)
                except Exception as exc:  # noqa: BLE001 - a callback's error is the user's: counted, the feed goes on
                    self.failed(topic, cb, exc)

    async def call_all(self, topic: str, records: Sequence[Event]) -> None:
        """Every callback of ``topic`` (sync called, async awaited) for each record, in order."""
        subs = self.table.get(topic)
        if not subs:
            return
        for record in records:
            for cb, is_async in subs:
                try:
                    result = cb(record)
                    if is_async:
                        await result  # type: ignore[misc]
                except Exception as exc:  # noqa: BLE001
                    self.failed(topic, cb, exc)


class _CallbackSink:
    """The sink the pipeline writes to: the inner sink (if any) takes each write first, then the
    callbacks get the same records. Modes: ``inline`` (every callback called in ``write``: a
    plain script's replay), ``live`` (sync callbacks in ``write`` on the loop, async ones queued
    to a task), ``thread`` (a replay in a worker thread: writes batched and handed to the loop,
    the thread waiting until the callbacks are done)."""

    #: the callbacks read records: the pipeline must hand them, whatever the inner sink needs
    #: (not looked up on the inner sink, as other attributes are; nor its ``write_rows``)
    records_needed = True

    def __init__(self, callbacks: _Callbacks, inner: "Sink | None", mode: str,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.callbacks = callbacks
        self.inner = inner
        self.framing = inner.framing if inner is not None else None
        self.mode = mode
        self.loop = loop
        # live: what async callbacks still have to see
        self.queue: deque[tuple[str, Sequence[Event], list[Callable[..., object]]]] = deque()
        self.pending = 0
        self.max_pending = 0
        self.wake: asyncio.Event | None = None
        # thread: the writes not handed over yet
        self.batch: list[tuple[str, Sequence[Event]]] = []
        self.batched = 0
        self.cancelled = False
        self._closed = False

    def __getattr__(self, name: str) -> Any:  # schema_ids, data_dir, delivery_progress...: the inner sink's
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def write(self, topic: str, records: Sequence[Event], keys: Sequence[bytes],
              values: Sequence[bytes] | None) -> None:
        if self.inner is not None:
            self.inner.write(topic, records, keys, values)
        if topic not in self.callbacks.table:
            return
        mode = self.mode
        if mode == "thread":
            self.batch.append((topic, records))
            self.batched += len(records)
            if self.batched >= BATCH:
                self.hand_over()
            return
        self.callbacks.call_sync(topic, records)
        if mode == "inline":
            return
        subs = self.callbacks.async_.get(topic)
        if subs:
            self.queue.append((topic, records, subs))
            self.pending += len(records)
            if self.pending > self.max_pending:
                self.max_pending = self.pending
            if self.wake is not None:
                self.wake.set()

    # --- live: the task that awaits the async callbacks ------------------------------------------
    async def drain(self) -> None:
        """Await the async callbacks of what was written, in order, until cancelled; returns when
        the queue is empty and the sink closed."""
        self.wake = wake = asyncio.Event()
        callbacks = self.callbacks
        while True:
            while not self.queue:
                if self._closed:
                    return
                wake.clear()
                await wake.wait()
            topic, records, subs = self.queue.popleft()
            for record in records:
                for cb in subs:
                    try:
                        await cb(record)  # type: ignore[misc]
                    except Exception as exc:  # noqa: BLE001
                        callbacks.failed(topic, cb, exc)
                self.pending -= 1

    # --- thread: hand a batch to the loop and wait for it ----------------------------------------
    def hand_over(self) -> None:
        batch, self.batch, self.batched = self.batch, [], 0
        if not batch or self.cancelled or self.loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._deliver(batch), self.loop).result()
        except (concurrent.futures.CancelledError, asyncio.CancelledError, RuntimeError):
            if not self.cancelled:  # the run was cancelled (its loop closing): the worker just ends
                raise

    async def _deliver(self, batch: list[tuple[str, Sequence[Event]]]) -> None:
        for topic, records in batch:
            if self.cancelled:
                return
            await self.callbacks.call_all(topic, records)

    # --- the rest of the sink interface -----------------------------------------------------------
    def poll(self) -> None:
        if self.inner is not None:
            self.inner.poll()

    def flush(self, timeout: float = 30.0) -> int:
        if self.mode == "thread":
            self.hand_over()
        return self.inner.flush(timeout) if self.inner is not None else 0

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self.mode == "thread":
                self.hand_over()
        finally:
            self._closed = True
            if self.wake is not None:
                self.wake.set()
            if self.inner is not None:
                self.inner.close()

    def stats(self) -> dict[str, Any]:
        stats = dict(self.inner.stats() or {}) if self.inner is not None else {"queue": 0}
        stats["callback_pending"] = self.pending
        return stats


class _Stop:
    """One run's stop request (the reason; None while it runs)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason


def _paths(capture: CapturePaths) -> list[str]:
    if isinstance(capture, (str, PathLike)):
        return [str(capture)]
    return [str(p) for p in capture]


class Feed:
    """One exchange's feed, live or from a capture, whose events go to callbacks per topic.

    ``exchange``: the name ``atomfast run --exchange`` takes (``kraken``, ``binance``, ...).
    Live: ``symbols`` (normalised, ``BTC-USD``; default: the exchange's defaults), ``channels``
    (``lob``, ``trades``, ...; default: the scheme's), ``endpoint`` (a websocket URL replacing
    the exchange's, e.g. a local ``atomfast simulate``), ``rest_endpoint``, ``scheme``,
    ``max_retries``, ``backoff``, ``metrics_port``: as ``atomfast run``'s flags.
    ``capture``: a recorded capture (one path, or one per recorded connection) replayed as
    ``atomfast replay CAPTURE --exchange EXCHANGE`` does (``force``: as ``--force``).
    Both: ``sink`` (None: the callbacks only; ``files``, ``kafka``, ``stdout``, ``null``),
    ``data_dir`` (files sink), ``max_frames``, ``duration`` (live; ``run(duration=)`` overrides).
    """

    def __init__(
        self,
        exchange: str,
        *,
        symbols: Sequence[str] | str = (),
        channels: Sequence[str] | str = (),
        endpoint: str | None = None,
        rest_endpoint: str | None = None,
        scheme: str | None = None,
        capture: CapturePaths | None = None,
        force: bool = False,
        sink: str | None = None,
        data_dir: str | None = None,
        max_frames: int = 0,
        duration: float | None = None,
        max_retries: int | None = None,
        backoff: float = 0.5,
        metrics_port: int | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbols = symbols
        self.channels = channels
        self.endpoint = endpoint
        self.rest_endpoint = rest_endpoint
        self.scheme = scheme
        self.capture: list[str] | None = _paths(capture) if capture is not None else None
        if self.capture is not None and not self.capture:
            raise ValueError("capture: no file given")
        if self.capture is not None and duration is not None:
            raise ValueError("duration: a capture is replayed to its end as fast as it goes (use max_frames)")
        self.force = force
        self.sink = sink
        self.data_dir = data_dir
        self.max_frames = max_frames
        self.duration = duration
        self.max_retries = max_retries
        self.backoff = backoff
        self.metrics_port = metrics_port
        self._callbacks: list[tuple[str, Callable[..., object]]] = []
        #: a stop asked before run(): the next run stops at once
        self._pending_stop: str | None = None
        #: the current run's stop request
        self._stop = _Stop()
        self._running = False
        self._collector: Collector | None = None
        self._replay: Replay | None = None
        self._summary: Summary | None = None

    def __repr__(self) -> str:
        source = f"capture={self.capture!r}" if self.capture is not None else f"endpoint={self.endpoint!r}"
        return f"Feed({self.exchange!r}, {source}, callbacks={len(self._callbacks)})"

    # --- callbacks ---------------------------------------------------------------------------------
    @overload
    def on(self, topic: Literal["lob"], callback: _LobF) -> _LobF: ...
    @overload
    def on(self, topic: Literal["lob"], callback: None = None) -> Callable[[_LobF], _LobF]: ...
    @overload
    def on(self, topic: Literal["lob_l3"], callback: _LobL3F) -> _LobL3F: ...
    @overload
    def on(self, topic: Literal["lob_l3"], callback: None = None) -> Callable[[_LobL3F], _LobL3F]: ...
    @overload
    def on(self, topic: Literal["trades"], callback: _TradeF) -> _TradeF: ...
    @overload
    def on(self, topic: Literal["trades"], callback: None = None) -> Callable[[_TradeF], _TradeF]: ...
    @overload
    def on(self, topic: Literal["trades_l3"], callback: _TradeL3F) -> _TradeL3F: ...
    @overload
    def on(self, topic: Literal["trades_l3"], callback: None = None) -> Callable[[_TradeL3F], _TradeL3F]: ...
    @overload
    def on(self, topic: Literal["ticker"], callback: _TickerF) -> _TickerF: ...
    @overload
    def on(self, topic: Literal["ticker"], callback: None = None) -> Callable[[_TickerF], _TickerF]: ...
    @overload
    def on(self, topic: Literal["spread"], callback: _SpreadF) -> _SpreadF: ...
    @overload
    def on(self, topic: Literal["spread"], callback: None = None) -> Callable[[_SpreadF], _SpreadF]: ...
    @overload
    def on(self, topic: Literal["candle"], callback: _CandleF) -> _CandleF: ...
    @overload
    def on(self, topic: Literal["candle"], callback: None = None) -> Callable[[_CandleF], _CandleF]: ...
    @overload
    def on(self, topic: Literal["funding_rate"], callback: _FundingF) -> _FundingF: ...
    @overload
    def on(self, topic: Literal["funding_rate"], callback: None = None) -> Callable[[_FundingF], _FundingF]: ...
    @overload
    def on(self, topic: Literal["open_interest"], callback: _OpenInterestF) -> _OpenInterestF: ...
    @overload
    def on(self, topic: Literal["open_interest"],
           callback: None = None) -> Callable[[_OpenInterestF], _OpenInterestF]: ...
    @overload
    def on(self, topic: Literal["liquidations"], callback: _LiquidationF) -> _LiquidationF: ...
    @overload
    def on(self, topic: Literal["liquidations"], callback: None = None) -> Callable[[_LiquidationF], _LiquidationF]: ...
    @overload
    def on(self, topic: Literal["status"], callback: _StatusF) -> _StatusF: ...
    @overload
    def on(self, topic: Literal["status"], callback: None = None) -> Callable[[_StatusF], _StatusF]: ...
    @overload
    def on(self, topic: Literal["raw"], callback: _RawF) -> _RawF: ...
    @overload
    def on(self, topic: Literal["raw"], callback: None = None) -> Callable[[_RawF], _RawF]: ...
    @overload
    def on(self, topic: Literal["*"], callback: _AnyF) -> _AnyF: ...
    @overload
    def on(self, topic: Literal["*"], callback: None = None) -> Callable[[_AnyF], _AnyF]: ...

    def on(self, topic: str, callback: Callable[..., object] | None = None) -> Any:
        """Call ``callback(event)`` for every event of ``topic`` (``"*"``: of every topic); returns
        ``callback``. Without ``callback``, a decorator: ``@feed.on("trades")``. A coroutine
        function is awaited. Register before ``run``."""
        if topic != ALL and topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r}; known: {', '.join(TOPICS)} or '*' (all)")
        if self._running:
            raise RuntimeError("register callbacks before run()")

        def register(cb: _F) -> _F:
            if not callable(cb):
                raise TypeError(f"{topic} callback: {cb!r} is not callable")
            self._callbacks.append((topic, cb))
            return cb

        return register if callback is None else register(callback)

    # --- running -----------------------------------------------------------------------------------
    async def run(self, duration: float | None = None) -> Summary:
        """Run inside the running event loop until stopped (``duration``, ``max_frames``,
        ``stop()``, SIGINT/SIGTERM; a capture: its end) and return the :class:`Summary`. The sink,
        if any, is flushed and closed; every async callback has been awaited."""
        if self.capture is not None and duration is not None:
            raise ValueError("duration: a capture is replayed to its end as fast as it goes (use max_frames)")
        self._begin()
        try:
            if self.capture is not None:
                return await self._run_capture()
            return await self._run_live(duration)
        finally:
            self._end()

    def run_sync(self, duration: float | None = None) -> Summary:
        """:meth:`run` for a plain script: runs its own event loop (uvloop) until stopped. A capture
        whose callbacks are all plain functions is replayed right here, without a loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("Feed.run_sync() inside a running event loop: use `await feed.run()`")
        if self.capture is not None and duration is not None:
            raise ValueError("duration: a capture is replayed to its end as fast as it goes (use max_frames)")
        if self.capture is not None and not _Callbacks(self._callbacks).any_async:
            self._begin()
            try:
                return self._replay_here(_Callbacks(self._callbacks), "inline", None)
            finally:
                self._end()
        from .collector import run_async

        summary: Summary = run_async(self.run(duration))
        return summary

    def stop(self, reason: str = "stopped") -> None:
        """End the run: a live feed closes its connections (a final ``stopped`` status), a capture
        stops after the frame in hand. Before ``run``: the run stops at once. Safe to call more
        than once and from a callback."""
        if not self._running:
            self._pending_stop = self._pending_stop or reason
            return
        if self._stop.reason is None:
            self._stop.reason = reason
        if self._collector is not None:
            self._collector.stop(reason)

    @property
    def summary(self) -> Summary | None:
        """The last run's summary (None before a run has ended)."""
        return self._summary

    @property
    def metrics(self) -> "Metrics | None":
        """The running (or last) run's counters, live: frames, events, checksums, errors..."""
        if self._collector is not None:
            return self._collector.metrics
        if self._replay is not None:
            return self._replay.metrics
        return None

    def _begin(self) -> None:
        if self._running:
            raise RuntimeError("this feed is already running")
        self._running = True
        self._summary = None
        self._stop = _Stop(self._pending_stop)
        self._pending_stop = None

    def _end(self) -> None:
        self._running = False

    # --- live --------------------------------------------------------------------------------------
    async def _run_live(self, duration: float | None) -> Summary:
        from .collector import Collector, FeedSpec, UsageError

        spec = FeedSpec(
            self.exchange, symbols=self.symbols, channels=self.channels, endpoint=self.endpoint,
            rest_endpoint=self.rest_endpoint, scheme=self.scheme, sink=self.sink, data_dir=self.data_dir,
            duration=duration if duration is not None else self.duration, max_frames=self.max_frames,
            max_retries=self.max_retries, backoff=self.backoff, metrics_port=self.metrics_port, status=False,
        )
        if isinstance(self.symbols, str) and not self.symbols.strip():
            raise UsageError("symbols: empty")
        collector = self._collector = Collector(spec, command="api")
        self._replay = None
        if self._stop.reason is not None:
            collector.stop(self._stop.reason)
        await collector.resolve()
        inner = collector.open_sink() if self.sink is not None else None
        callbacks = _Callbacks(self._callbacks)
        adapter = _CallbackSink(callbacks, inner, "live", asyncio.get_running_loop())
        drainer = asyncio.get_running_loop().create_task(adapter.drain(), name=f"atomfast-callbacks-{self.exchange}") \
            if callbacks.any_async else None
        try:
            reason = await collector.run(sink=adapter)  # type: ignore[arg-type]
            adapter.close()  # the pipeline closed it already: this only makes sure the drain ends
            if drainer is not None:
                await drainer
        finally:
            if drainer is not None and not drainer.done():
                drainer.cancel()
        self._summary = Summary._of(self.exchange, collector.summary(), reason, callbacks.errors, adapter.max_pending)
        return self._summary

    # --- capture -----------------------------------------------------------------------------------
    async def _run_capture(self) -> Summary:
        loop = asyncio.get_running_loop()
        callbacks = _Callbacks(self._callbacks)
        adapter_box: list[_CallbackSink] = []
        try:
            return await loop.run_in_executor(None, self._replay_here, callbacks, "thread", loop, adapter_box)
        except BaseException:
            # cancelled (or failed): the worker stops after the frame in hand, no callback is called
            self._stop.reason = self._stop.reason or "cancelled"
            for adapter in adapter_box:
                adapter.cancelled = True
            raise

    def _replay_here(self, callbacks: _Callbacks, mode: str, loop: asyncio.AbstractEventLoop | None,
                     adapter_box: list[_CallbackSink] | None = None) -> Summary:
        """The capture through ``atomfast.replay.Replay`` (as ``atomfast replay``: same checks,
        scheme, books and verification) into the callbacks (and the sink)."""
        from .capture import open_capture
        from .collector import open_sink
        from .config import load_settings
        from .metrics import Metrics
        from .replay import Replay

        assert self.capture is not None
        self._collector = None
        metrics = Metrics()
        capture = open_capture(*self.capture)
        inner = None
        if self.sink is not None:
            inner = open_sink(self.sink, load_settings({"data_dir": self.data_dir}), metrics, data_dir=self.data_dir)
        adapter = _CallbackSink(callbacks, inner, mode, loop)
        if adapter_box is not None:
            adapter_box.append(adapter)
        try:
            replay = self._replay = Replay(capture, self.exchange, adapter, metrics, force=self.force)
        except BaseException:
            if inner is not None:
                inner.close()
            raise
        frames, stop = capture.frames, self._stop
        capture.frames = lambda: _until_stopped(frames(), stop)  # type: ignore[method-assign]
        started = time.perf_counter()
        replay.run(self.max_frames)
        seconds = time.perf_counter() - started
        if stop.reason is not None:
            stopped = stop.reason
        elif self.max_frames and metrics.frames >= self.max_frames:
            stopped = "max frames"
        else:
            stopped = "end of capture"
        self._summary = Summary._of(self.exchange, metrics.summary(seconds), stopped, callbacks.errors,
                                    adapter.max_pending)
        return self._summary


def _until_stopped(frames: Iterator[Any], stop: _Stop) -> Iterator[Any]:
    for frame in frames:
        if stop.reason is not None:
            return
        yield frame


def replay_capture(
    capture: CapturePaths,
    exchange: str,
    on: Mapping[str, Callable[..., object] | Sequence[Callable[..., object]]] | None = None,
    *,
    sink: str | None = None,
    data_dir: str | None = None,
    force: bool = False,
    max_frames: int = 0,
) -> Summary:
    """Replay a capture into callbacks, as a plain call: ``atomfast.replay_capture("KRAKEN.ws.50.0",
    "kraken", on={"lob": on_lob, "trades": [a, b]})`` returns the :class:`Summary` (the same
    counts as ``atomfast replay``). ``Feed(exchange, capture=...)`` is the same with decorators
    and ``await feed.run()``."""
    feed = Feed(exchange, capture=capture, sink=sink, data_dir=data_dir, force=force, max_frames=max_frames)
    for topic, callbacks in (on or {}).items():
        for cb in ([callbacks] if callable(callbacks) else callbacks):
            feed.on(topic, cb)  # type: ignore[call-overload]
    return feed.run_sync()
