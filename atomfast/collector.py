"""The collector: one exchange feed assembled and run, websocket -> scheme/books -> Avro -> sink.

This is the runtime behind ``atomfast run`` and ``atomfast record`` (which only parse their
flags into a :class:`FeedSpec` and print) and behind a cluster node's markets
(``atomfast.control.node``, which builds specs directly). The steps, in order:

1. :func:`prepare` (no network): the settings, the exchange, the endpoints, the symbols
   (default: ``config.ini [exchange] symbols``), the limits, the scheme when it is named.
   Bad settings raise :class:`UsageError`.
2. :func:`resolve`: the scheme, asking a local simulator where needed, and the instrument
   listings over REST (``scheme.rest_url +`` each of ``instruments_paths``, or the
   ``rest_endpoint`` override; several are merged, and one not answered is left out as long as
   another answered). No listing answered, or one unreadable: :class:`StartError`.
3. :func:`validate`: symbols and channels against the scheme and the listing (:class:`UsageError`).
4. The sink (:func:`open_sink`), one :class:`~atomfast.pipeline.Pipeline` and the
   :class:`~atomfast.feed.FeedGroup` (:func:`build_feed`), run until stopped
   (:func:`execute`: SIGINT/SIGTERM, ``duration``, ``max_frames``): connections closed, a
   ``stopped`` status, the pipeline closed (the sink flushed).

:class:`Collector` holds these steps for one feed: ``prepare() -> await resolve() ->
open_sink() -> await run() -> summary()``, ``stop()`` from anywhere on the loop.

Endpoints: ``endpoint`` replaces the websocket URL. ``rest_endpoint`` replaces the REST base
(scheme and host; the exchange's path is kept when the override has none). With only
``endpoint`` and a plain ``ws://`` or loopback endpoint (a local ``atomfast simulate``), the
REST base is derived from it: ``ws://127.0.0.1:P`` -> ``http://127.0.0.1:P`` (the simulator
answers REST on its websocket port).

Which scheme (an exchange may have several, e.g. Kraken's websocket v1 and v2): ``scheme``
(class name, a part of it such as ``v1``, the scheme's ws_url or its last path part such
as ``v2``, or ``default``) decides; else the scheme whose ws_url is the endpoint; else, for a
local endpoint, the simulator is asked which URL its capture was recorded from
(``GET /_atomfast/capture``) and that URL picks the scheme; else the exchange's default scheme.

Error messages name the ``atomfast run`` flag a field comes from (``--endpoint: ...``).
"""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import signal
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from .config import Settings
    from .feed import FeedGroup
    from .metrics import Metrics
    from .pipeline import Pipeline
    from .sinks.base import Sink

# the log lines of start-up are ``atomfast run``'s, whoever assembles the feed
log = logging.getLogger("atomfast.run")

#: the stop reason of a feed whose every connection gave up (a failed run: exit 1)
GAVE_UP = "all connections gave up"

__all__ = [
    "GAVE_UP", "Collector", "FeedSpec", "Setup", "StartError", "UsageError", "build_feed", "execute", "is_local",
    "open_sink", "pick_scheme", "prepare", "quiet_picows", "resolve", "run_async", "split_list", "validate",
]


class UsageError(Exception):
    """Bad settings: one line on stderr, exit 2."""


class StartError(Exception):
    """The exchange cannot be reached at start-up: one line on stderr, exit 1. ``retryable``:
    the network did not answer (a later attempt may succeed), not an answer that cannot be read."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class FeedSpec:
    """What to collect, from where, to where, and until when: ``atomfast run``'s flags."""

    exchange: str
    #: normalised symbols (BTC-USD); empty: config.ini ``[exchange] symbols``
    symbols: Sequence[str] = ()
    #: channels (lob, trades, ticker, ...); empty: the scheme's
    channels: Sequence[str] = ()
    #: websocket URL replacing the exchange's (ws://127.0.0.1:P for a simulator)
    endpoint: str | None = None
    #: REST base URL replacing the exchange's (default: derived from a local endpoint)
    rest_endpoint: str | None = None
    #: which of the exchange's schemes: class name, part of it (v1), its ws URL, or default
    scheme: str | None = None
    #: files, kafka, stdout, null; None: kafka when KAFKA_BOOTSTRAP_SERVERS is set, else files
    sink: str | None = None
    #: files sink directory (default: the settings' data dir)
    data_dir: str | None = None
    #: also publish every received frame, untouched, to the raw topic
    raw: bool = False
    #: stop after this many seconds
    duration: float | None = None
    #: stop after N received frames (0: no limit)
    max_frames: int = 0
    #: give a connection up after N reconnect attempts in a row (None: never)
    max_retries: int | None = None
    #: reconnect backoff base in seconds (doubles each attempt, full jitter, 30 s cap)
    backoff: float = 0.5
    #: serve Prometheus metrics on http://METRICS_HOST:PORT/metrics
    metrics_port: int | None = None
    #: the address the metrics endpoint binds (0.0.0.0: every interface, e.g. in a container)
    metrics_host: str = "127.0.0.1"
    #: a live status line on a terminal (a log line every 10 s otherwise)
    status: bool = True
    #: keep the run-state file (``atomfast.runstate``): say at start that the previous run to
    #: the same sink ended uncleanly, and how far it had delivered (``atomfast run``)
    run_state: bool = False
    #: fail at once when the exchange cannot be reached at start (default: wait for the network,
    #: retrying with the reconnect backoff, up to ``max_retries`` attempts)
    fail_fast: bool = False


@dataclass
class Setup:
    """A feed made concrete: settings, endpoints, symbols and channels (``prepare``), then the
    scheme and the instrument listing (``resolve``)."""

    command: str
    exchange: str
    settings: Any
    symbols: list[str]
    channels: list[str]
    endpoint: str | None
    rest_base: str | None
    scheme_cls: Any = None
    instruments: dict = field(default_factory=dict)
    #: every instrument listing fetched: (the exchange's url, body), in ``instruments_paths`` order
    listings: list = field(default_factory=list)
    #: the first of ``listings``
    instruments_url: str = ""
    instruments_body: bytes = b""
    #: what kept the feed from starting at once (the network unreachable): said as a status
    #: ``disconnected`` (symbol "") when the feed starts
    start_waits: list = field(default_factory=list)


def split_list(text: str | Sequence[str] | None) -> list[str]:
    """``"A, B,"`` (or a sequence of names) -> ``["A", "B"]``."""
    if not text:
        return []
    items = text.split(",") if isinstance(text, str) else text
    return [t.strip() for t in items if t and t.strip()]


def is_local(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- 1. prepare ----------------------------------------------------------------------------------
def prepare(spec: FeedSpec, command: str = "run") -> Setup:
    """Everything that needs no network; UsageError on bad settings."""
    from .config import SettingsError, load_settings
    from .exchanges import schemes
    from .rest import check_url, rest_base_for

    try:
        settings = load_settings({"data_dir": spec.data_dir})
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    exchange = spec.exchange.strip().lower()
    table = schemes()
    if exchange not in table:
        raise UsageError(f"unknown exchange {spec.exchange!r}; known: {', '.join(sorted(table)) or '(none)'}")
    endpoint = spec.endpoint or settings.endpoints.get(exchange)
    if endpoint:
        try:
            check_url(endpoint, ("ws", "wss"))
        except ValueError as exc:
            raise UsageError(f"--endpoint: {exc}") from None
    rest_base = spec.rest_endpoint
    if rest_base:
        try:
            check_url(rest_base, ("http", "https"))
        except ValueError as exc:
            raise UsageError(f"--rest-endpoint: {exc}") from None
    elif endpoint and (endpoint.startswith("ws://") or is_local(endpoint)):
        rest_base = rest_base_for(endpoint)
    symbols = split_list(spec.symbols) or settings.symbols_for(exchange) or list(table[exchange][0].default_symbols)
    if not symbols:
        raise UsageError(f"no symbols for {exchange}: give --symbols or a [{exchange}] section with symbols in config.ini")
    if spec.duration is not None and spec.duration <= 0:
        raise UsageError("--duration must be > 0")
    if spec.max_frames < 0:
        raise UsageError("--max-frames must be >= 0")
    if spec.max_retries is not None and spec.max_retries < 0:
        raise UsageError("--max-retries must be >= 0")
    if spec.backoff < 0:
        raise UsageError("--backoff must be >= 0")
    channels = split_list(spec.channels) or settings.channels_for(exchange)
    setup = Setup(command, exchange, settings, symbols, channels, endpoint, rest_base)
    if spec.scheme:
        setup.scheme_cls = pick_scheme(exchange, spec.scheme)
    elif endpoint:
        setup.scheme_cls = _scheme_by_url(exchange, endpoint)
    if spec.metrics_port is not None and not 0 <= spec.metrics_port <= 65535:
        raise UsageError("--metrics-port must be 0..65535")
    return setup


def pick_scheme(exchange: str, name: str):
    """The scheme of ``exchange`` called ``name``: its class name, its ws_url, ``default``, or a
    part of the class name / the last part of the ws_url path that names one scheme only
    (Kraken: ``v1`` -> KrakenSpotV1Scheme, ``v2`` -> KrakenSpotScheme at wss://ws.kraken.com/v2)."""
    from .exchanges import schemes

    options = schemes()[exchange]
    want = name.strip().lower()
    for match in (
        lambda s: s.__name__.lower() == want,
        lambda s: s.ws_url.rstrip("/").lower() == want.rstrip("/"),
        lambda s: want == "default" and s.is_default,
        lambda s: want in s.__name__.lower() or s.ws_url.rstrip("/").lower().endswith("/" + want),
    ):
        found = [s for s in options if match(s)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            break
    choices = ", ".join(f"{s.__name__} ({s.ws_url})" for s in options)
    raise UsageError(f"{exchange}: no single scheme matches --scheme {name!r}; choose one of {choices}")


def _scheme_by_url(exchange: str, url: str):
    from .exchanges import schemes

    norm = url.rstrip("/")
    for s in schemes()[exchange]:
        if s.ws_url.rstrip("/") == norm:
            return s
    return None


# --- 2. resolve ----------------------------------------------------------------------------------
async def resolve(setup: Setup) -> None:
    """The scheme (asking a local simulator where needed) and the instrument listing."""
    from .exchanges import scheme_for
    from .rest import RestError, fetch, post, rebase
    from .simulator import INFO_PATH

    if setup.scheme_cls is None:
        if setup.endpoint and setup.rest_base and is_local(setup.endpoint):
            try:
                info = json.loads(await fetch(setup.rest_base.rstrip("/") + INFO_PATH, timeout=5.0))
                urls = [u for u in info.get("urls", []) if u]
                if urls:
                    setup.scheme_cls = _scheme_by_url(setup.exchange, urls[0])
                    if setup.scheme_cls is not None:
                        log.info("%s: the simulator replays %s: scheme %s", setup.exchange, urls[0],
                                 setup.scheme_cls.__name__)
            except (RestError, ValueError, AttributeError):
                pass
        if setup.scheme_cls is None:
            setup.scheme_cls = scheme_for(setup.exchange)
    cls = setup.scheme_cls
    if cls.instruments_paths:
        originals = [cls.rest_url + path for path in cls.instruments_paths]
        urls = [rebase(original, setup.rest_base, cls.rest_url) for original in originals]
        # a listing declared ``Post(path, body)`` is POSTed (kit.endpoints), the others GET
        routes = cls.rest_endpoint.routes
        bodies = routes.instrument_bodies if routes.instrument_paths == cls.instruments_paths else ()
        answers = await asyncio.gather(
            *(fetch(url) if i >= len(bodies) or bodies[i] is None else post(url, bodies[i])
              for i, url in enumerate(urls)), return_exceptions=True)
        failed = []
        for url, answer in zip(urls, answers):
            if isinstance(answer, RestError):
                failed.append(answer)
                if len(urls) > 1:
                    log.warning("%s: instrument listing left out: %s", setup.exchange, answer)
            elif isinstance(answer, BaseException):
                raise answer
        if len(failed) == len(urls):
            raise StartError(f"cannot fetch the instrument listing: {failed[0]}", retryable=True)
        instruments: dict = {}
        for original, url, body in zip(originals, urls, answers):
            if isinstance(body, BaseException):
                continue
            try:
                instruments.update(cls.parse_instruments(body))
            except Exception as exc:  # noqa: BLE001 - any parse failure is one clear line
                raise StartError(f"cannot read the instrument listing from {url}: {type(exc).__name__}: {exc}") from None
            setup.listings.append((original, body))
        setup.instruments = instruments
        setup.instruments_url, setup.instruments_body = setup.listings[0]
        log.info("%s: %d instruments from %s", setup.exchange, len(setup.instruments),
                 ", ".join(url for url, body in zip(urls, answers) if not isinstance(body, BaseException)))


# --- 3. validate ---------------------------------------------------------------------------------
def validate(setup: Setup) -> None:
    """Symbols and channels against the scheme and the listing (UsageError)."""
    from .metrics import Metrics

    try:
        probe = setup.scheme_cls(lambda _t, _r: None, Metrics(), setup.instruments, setup.symbols, setup.channels)
        plans = probe.plan(setup.endpoint)
    except KeyError as exc:
        raise UsageError(str(exc.args[0]) if exc.args else repr(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not plans:
        raise UsageError(f"{setup.exchange}: nothing to subscribe")


# --- 4. sink, feed, run --------------------------------------------------------------------------
def _stop_signals(loop: asyncio.AbstractEventLoop, handler: Callable[..., object], named: bool = False) -> list[int]:
    """SIGINT and SIGTERM call ``handler`` (with the signal's name, ``named``); returns the
    signals whose handlers were set (none off the main thread), to remove them afterwards."""
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, handler, *((signal.Signals(sig).name,) if named else ()))
            handled.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
            pass
    return handled


def _close_late_sink(done: "asyncio.Future") -> None:
    """A sink that opened after its wait was given up: closed at once, unused."""
    if not done.cancelled() and done.exception() is None:
        done.result().close()


# --- 4. sink, feed, run --------------------------------------------------------------------------
def open_sink(name: str | None, settings: "Settings", metrics: "Metrics | None" = None,
              data_dir: str | None = None) -> "Sink":
    """The sink called ``name`` (None: kafka when KAFKA_BOOTSTRAP_SERVERS is configured, else
    files). Raises what ``atomfast.sinks.make_sink`` raises (SettingsError, ValueError, OSError)."""
    if name == "null":
        from .sinks.null import NullSink

        return NullSink()
    from .sinks import make_sink

    return make_sink(name, settings, metrics, data_dir=data_dir)


def build_feed(
    setup: Setup,
    spec: FeedSpec,
    pipeline: "Pipeline",
    *,
    emit: Callable[[str, tuple], None] | None = None,
    hooks: dict[str, Callable] | None = None,
) -> "FeedGroup":
    """The scheme of ``setup`` writing to ``emit`` (default: the pipeline's), and its FeedGroup
    with ``spec``'s reconnect policy, frame limit and raw tap. ``hooks``: FeedGroup's
    ``frame_hook``, ``send_hook``, ``open_hook``, ``rest_hook``."""
    from .feed import FeedGroup

    scheme = setup.scheme_cls(pipeline.emit if emit is None else emit, pipeline.metrics, setup.instruments,
                              setup.symbols, setup.channels)
    return FeedGroup(
        scheme,
        pipeline,
        url=setup.endpoint,
        rest_base=setup.rest_base,
        backoff_base=spec.backoff,
        max_retries=spec.max_retries,
        max_frames=spec.max_frames,
        raw=spec.raw,
        **(hooks or {}),
    )


async def execute(
    setup: Setup,
    spec: FeedSpec,
    sink: "Sink",
    metrics: "Metrics",
    *,
    hooks: dict[str, Callable] | None = None,
    on_started: Callable[["FeedGroup"], None] | None = None,
    manage: bool = True,
) -> tuple[str, "FeedGroup"]:
    """Run the feed until stopped (SIGINT/SIGTERM, ``spec.duration``, ``spec.max_frames``, every
    connection given up); returns (stop reason, FeedGroup). Closes the pipeline (the sink).
    ``manage=False``: one feed of several (``execute_many``), which owns the signals, the
    duration, the status line and the metrics endpoint."""
    from .pipeline import Pipeline
    from .status_line import MetricsServer, Source, StatusLine, prometheus_text

    loop = asyncio.get_running_loop()
    pipeline = Pipeline(sink, metrics)
    group = build_feed(setup, spec, pipeline, hooks=hooks)
    state = None
    if spec.run_state:
        from pathlib import Path

        from .runstate import STATE_DIR, RunState

        state = RunState.open(setup.exchange, sink, Path(spec.data_dir or setup.settings.data_dir) / STATE_DIR)
    scheme = group.scheme
    server = None
    line = None
    try:
        if state is not None:
            state.begin(pipeline, loop)
        if setup.start_waits:
            from .events import Status

            now_us = time.time_ns() // 1000
            pipeline.emit("status", Status(setup.exchange, "", "disconnected", setup.start_waits[-1], now_us // 1000,
                                           now_us))
            pipeline.end_frame()
        source = Source(setup.exchange, metrics, scheme, group)
        if manage and spec.metrics_port is not None:
            server = await start_metrics(spec, lambda: prometheus_text(sink=sink, sources=[source]))
        if manage:
            _stop_signals(loop, group.stop, named=True)
        if manage and spec.duration:
            loop.call_later(spec.duration, group.stop, "duration")
        if manage and spec.status:
            line = StatusLine(sink=sink, sources=[source]).start(loop)
        if on_started is not None:
            on_started(group)
        reason = await group.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM) if manage else ():
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
        if line is not None:
            line.stop()
        if server is not None:
            await server.close()
        closed = False
        try:
            pipeline.close()
            closed = True
        finally:
            if state is not None:
                state.end(clean=closed)
    return reason, group


async def start_metrics(spec: FeedSpec, render: Callable[[], str]):
    """The Prometheus endpoint on ``--metrics-host``:``--metrics-port`` (UsageError if it cannot bind)."""
    from .status_line import MetricsServer

    server = MetricsServer(render, spec.metrics_host, spec.metrics_port)
    try:
        await server.start()
    except OSError as exc:
        raise UsageError(f"--metrics-host {spec.metrics_host} --metrics-port {spec.metrics_port}: "
                         f"{exc.strerror or exc}") from None
    return server


class SharedSink:
    """One sink written by several feeds' pipelines (``execute_many``): every write and question
    goes to it; it is closed when the last pipeline closes."""

    def __init__(self, sink: "Sink", users: int) -> None:
        self._sink = sink
        self._users = users

    def __getattr__(self, name: str):
        return getattr(self._sink, name)

    def write(self, topic, records, keys, values) -> None:
        self._sink.write(topic, records, keys, values)

    def close(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._sink.close()


async def execute_many(collectors: "list[Collector]", sink: "Sink", spec: FeedSpec) -> list[str]:
    """Several exchanges in one process (``run --exchange a,b``): each collector's feed on its
    own pipeline into one shared sink; one status line summing them, one metrics endpoint with
    an ``exchange`` label, SIGINT/SIGTERM and ``spec.duration`` stop them all. Returns each
    feed's stop reason."""
    from .status_line import Source, StatusLine, prometheus_text

    loop = asyncio.get_running_loop()
    shared = SharedSink(sink, len(collectors))
    sources = [Source(c.setup.exchange, c.metrics) for c in collectors]
    stopping: list[str] = []

    def started(i: int, group: "FeedGroup") -> None:
        sources[i].scheme, sources[i].group = group.scheme, group
        collectors[i].group = group
        if stopping:
            group.stop(stopping[0])

    def stop_all(reason: str) -> None:
        stopping.append(reason)
        for c in collectors:
            c.stop(reason)

    server = None
    line = None
    handled = []
    try:
        if spec.metrics_port is not None:
            server = await start_metrics(spec, lambda: prometheus_text(sink=sink, sources=sources))
        handled = _stop_signals(loop, stop_all, named=True)
        if spec.duration:
            loop.call_later(spec.duration, stop_all, "duration")
        if spec.status:
            line = StatusLine(sink=sink, sources=sources).start(loop)
        results = await asyncio.gather(*(
            execute(c.setup, c.spec, shared, c.metrics, on_started=functools.partial(started, i), manage=False)
            for i, c in enumerate(collectors)))
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        if line is not None:
            line.stop()
        if server is not None:
            await server.close()
    reasons = []
    for c, (reason, group) in zip(collectors, results):
        c.reason, c.group = reason, group
        reasons.append(reason)
    return reasons


class Collector:
    """One feed from its spec to its summary:

    ``prepare()`` (no network; UsageError) -> ``await resolve()`` (scheme, listing, symbols and
    channels checked; StartError, UsageError) -> ``open_sink()`` (UsageError) -> ``await run()``
    (until stopped; returns the stop reason) -> ``summary()``. ``run()`` does the steps not done
    yet, so ``await Collector(FeedSpec("kraken")).run()`` is a whole ``atomfast run``.
    """

    def __init__(self, spec: FeedSpec, command: str = "run", metrics: "Metrics | None" = None) -> None:
        from .metrics import Metrics

        self.spec = spec
        self.command = command
        self.metrics: Metrics = metrics if metrics is not None else Metrics()
        self.setup: Setup | None = None
        self.sink: Sink | None = None
        self.group: FeedGroup | None = None
        #: why the feed stopped ("" while it runs)
        self.reason = ""
        self.started = time.monotonic()
        self._resolved = False
        self._stop: str | None = None

    def prepare(self) -> Setup:
        """Settings, exchange, endpoints, symbols, limits; no network (UsageError)."""
        self.setup = prepare(self.spec, self.command)
        return self.setup

    async def resolve(self) -> Setup:
        """The scheme and the instrument listing (StartError), then the symbols and channels
        checked against them (UsageError). The summary's clock starts here."""
        setup = self.setup if self.setup is not None else self.prepare()
        self.started = time.monotonic()
        await self._resolve_waiting(setup)
        validate(setup)
        self._resolved = True
        return setup

    async def _resolve_waiting(self, setup: Setup) -> None:
        """``resolve``, waiting for the network: an unreachable listing is asked again with the
        reconnect backoff (doubling, full jitter, 30 s cap), a WARNING each time, until it answers,
        ``max_retries`` attempts fail, SIGINT/SIGTERM, or at once with ``fail_fast``."""
        import random

        spec = self.spec
        attempt = 0
        first = time.monotonic()
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        handled = []
        try:
            while True:
                try:
                    await resolve(setup)
                    if attempt:
                        note = (f"waited {time.monotonic() - first:.1f} s for the network at start "
                                f"({attempt} failed attempt{'s' if attempt > 1 else ''}): {setup.start_waits[-1]}")
                        setup.start_waits.append(note)
                        log.info("%s: %s", setup.exchange, note)
                    return
                except StartError as exc:
                    attempt += 1
                    if (not exc.retryable or spec.fail_fast or self._stop is not None
                            or (spec.max_retries is not None and attempt > spec.max_retries)):
                        raise
                    setup.start_waits.append(str(exc))
                    delay = min(30.0, spec.backoff * 2 ** min(attempt - 1, 16)) * random.uniform(0.5, 1.0)
                    log.warning("%s: %s; waiting for the network: attempt %d, next in %.1f s (--fail-fast to stop "
                                "at once)", setup.exchange, exc, attempt, delay)
                    if not handled:
                        handled = _stop_signals(loop, stopped.set)
                    try:
                        await asyncio.wait_for(stopped.wait(), delay)
                    except asyncio.TimeoutError:
                        continue
                    raise StartError(f"stopped while waiting for the network: {exc}") from None
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    def open_sink(self) -> "Sink":
        """The spec's sink, made with the settings (UsageError)."""
        from .config import SettingsError

        spec = self.spec
        setup = self.setup if self.setup is not None else self.prepare()
        if spec.sink != "null":
            from .sinks import default_sink_name

            if spec.raw and (spec.sink or default_sink_name(setup.settings)) == "files":
                raise UsageError("--raw needs --sink kafka or stdout: the files sink holds Avro records only")
        try:
            self.sink = open_sink(spec.sink, setup.settings, self.metrics, data_dir=spec.data_dir)
        except (SettingsError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"--sink {spec.sink}: {exc}") from None
        return self.sink

    async def open_sink_waiting(self) -> "Sink":
        """``open_sink()`` on a thread of its own, so that the loop keeps its signals while a sink
        waits (the Kafka sink for its broker, up to 30 s): SIGINT/SIGTERM and ``duration`` end
        the wait with a StartError; the abandoned thread is a daemon."""
        import threading

        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def settle(result: Any, exc: BaseException | None) -> None:
            if done.done():
                return
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(result)

        def target() -> None:
            try:
                result = self.open_sink()
            except BaseException as exc:  # noqa: BLE001 - handed to the loop
                loop.call_soon_threadsafe(settle, None, exc)
            else:
                loop.call_soon_threadsafe(settle, result, None)

        stopped = asyncio.Event()
        handled = _stop_signals(loop, stopped.set)
        threading.Thread(target=target, name="atomfast-open-sink", daemon=True).start()
        stop = asyncio.ensure_future(stopped.wait())
        try:
            finished, _ = await asyncio.wait({done, stop}, timeout=self.spec.duration,
                                             return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            for sig in handled:
                loop.remove_signal_handler(sig)
        if done in finished:
            return done.result()
        done.add_done_callback(_close_late_sink)
        why = "stopped" if stopped.is_set() else f"--duration {self.spec.duration:g} s passed"
        raise StartError(f"{why} while the {self.spec.sink or 'default'} sink was opening (waiting for its "
                         "broker?); nothing was collected")

    async def run(self, sink: "Sink | None" = None, *, hooks: dict[str, Callable] | None = None) -> str:
        """Run until stopped and return the stop reason; ``sink`` overrides the spec's. The
        pipeline (the sink) is closed at the end."""
        if not self._resolved:
            await self.resolve()
        assert self.setup is not None
        if sink is not None:
            self.sink = sink
        elif self.sink is None:
            self.open_sink()
        assert self.sink is not None
        self.reason, self.group = await execute(self.setup, self.spec, self.sink, self.metrics, hooks=hooks,
                                                on_started=self._started)
        return self.reason

    def _started(self, group: "FeedGroup") -> None:
        self.group = group
        if self._stop is not None:
            group.stop(self._stop)

    def stop(self, reason: str = "stopped") -> None:
        """End ``run()`` (connections closed, ``stopped`` status); before it starts: at once."""
        if self.group is not None:
            self.group.stop(reason)
        elif self._stop is None:
            self._stop = reason

    @property
    def gave_up(self) -> bool:
        """Every connection gave up (max_retries): a failed run."""
        return self.reason == GAVE_UP

    def summary(self) -> dict:
        """The metrics' summary (frames, events per topic, checksums, gaps, resyncs, errors,
        seconds, ...) and ``stopped``: the stop reason."""
        summary = self.metrics.summary(time.monotonic() - self.started)
        summary["stopped"] = self.reason
        return summary


# --- the event loop ------------------------------------------------------------------------------
def run_async(coro) -> Any:
    """``coro`` to completion on uvloop (asyncio's loop where uvloop is missing)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(coro)
    return uvloop.run(coro)


def quiet_picows() -> None:
    logging.getLogger("picows").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
