"""`atomfast run --exchange NAME ...`: websocket -> scheme/books -> Avro -> sink, until stopped.

Start-up: settings; the scheme; the instrument listings over REST (``scheme.rest_url +`` each of
``instruments_paths``, or the ``--rest-endpoint`` override; several are merged, and one not
answered is left out as long as another answered); symbol/channel validation; the sink
(``make_sink``); the feed on uvloop. Bad settings (unknown exchange, symbol, channel, scheme,
sink, bad URL): one line on stderr, exit 2. No REST listing answered, or one unreadable: one
line, exit 1.
SIGINT/SIGTERM, ``--duration`` or ``--max-frames``: connections closed, ``stopped`` status,
pipeline closed (the sink flushed), a ``summary: {json}`` line on stderr, exit 0.

Endpoints: ``--endpoint URL`` replaces the websocket URL. ``--rest-endpoint URL`` replaces the
REST base (scheme and host; the exchange's path is kept when the override has none). With only
``--endpoint`` and a plain ``ws://`` or loopback endpoint (a local ``atomfast simulate``), the
REST base is derived from it: ``ws://127.0.0.1:P`` -> ``http://127.0.0.1:P`` (the simulator
answers REST on its websocket port).

Which scheme (an exchange may have several, e.g. Kraken's websocket v1 and v2): ``--scheme NAME``
(class name, a part of it such as ``v1``, the scheme's ws_url or its last path part such
as ``v2``, or ``default``) decides; else the scheme
whose ws_url is the endpoint; else, for a local endpoint, the simulator is asked which URL its
capture was recorded from (``GET /_atomfast/capture``) and that URL picks the scheme; else the
exchange's default scheme.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger("atomfast.run")

SINKS = ("files", "kafka", "stdout", "null")


class UsageError(Exception):
    """Bad settings: one line on stderr, exit 2."""


class StartError(Exception):
    """The exchange cannot be reached at start-up: one line on stderr, exit 1."""


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exchange", required=True, help="exchange name (kraken, kraken-futures, ...)")
    p.add_argument("--symbols", default=None,
                   help="comma-separated normalised symbols (BTC-USD,ETH-USD); default: config.ini [exchange] symbols")
    p.add_argument("--channels", default=None, help="comma-separated channels (lob,trades,ticker,...); default: the scheme's")
    p.add_argument("--endpoint", default=None, help="websocket URL replacing the exchange's (ws://127.0.0.1:P for a simulator)")
    p.add_argument("--rest-endpoint", default=None,
                   help="REST base URL replacing the exchange's (default: derived from a local --endpoint)")
    p.add_argument("--scheme", default=None,
                   help="which of the exchange's schemes to speak: class name, part of it (v1), its ws URL, or default")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("--max-frames", type=int, default=0, metavar="N", help="stop after N received frames")
    p.add_argument("--max-retries", type=int, default=None, metavar="N",
                   help="give a connection up after N reconnect attempts in a row (default: forever)")
    p.add_argument("--backoff", type=float, default=0.5, metavar="SECONDS",
                   help="reconnect backoff base (doubles each attempt, full jitter, 30 s cap; default 0.5)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--sink", choices=SINKS, default=None,
                   help="where events go (default: kafka when KAFKA_BOOTSTRAP_SERVERS is set, else files)")
    p.add_argument("--data-dir", default=None, help="files sink directory (default: settings' data dir)")
    p.add_argument("--raw", action="store_true", help="also publish every received frame, untouched, to the raw topic")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics")
    p.add_argument("--no-status", action="store_true", help="no live status line / periodic status log")


# --- shared by run and record ---------------------------------------------------------------
@dataclass
class Setup:
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


def _split(text: str | None) -> list[str]:
    if not text:
        return []
    return [t.strip() for t in text.split(",") if t.strip()]


def is_local(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def prepare(args: argparse.Namespace, command: str) -> Setup:
    """Everything that needs no network; UsageError on bad settings."""
    from ..config import SettingsError, load_settings
    from ..exchanges import schemes
    from ..rest import check_url, rest_base_for

    try:
        settings = load_settings({"data_dir": getattr(args, "data_dir", None)})
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    exchange = args.exchange.strip().lower()
    table = schemes()
    if exchange not in table:
        raise UsageError(f"unknown exchange {args.exchange!r}; known: {', '.join(sorted(table)) or '(none)'}")
    endpoint = args.endpoint
    if endpoint:
        try:
            check_url(endpoint, ("ws", "wss"))
        except ValueError as exc:
            raise UsageError(f"--endpoint: {exc}") from None
    rest_base = args.rest_endpoint
    if rest_base:
        try:
            check_url(rest_base, ("http", "https"))
        except ValueError as exc:
            raise UsageError(f"--rest-endpoint: {exc}") from None
    elif endpoint and (endpoint.startswith("ws://") or is_local(endpoint)):
        rest_base = rest_base_for(endpoint)
    symbols = _split(args.symbols) or settings.symbols_for(exchange)
    if not symbols:
        raise UsageError(f"no symbols for {exchange}: give --symbols or a [{exchange}] section with symbols in config.ini")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be > 0")
    if args.max_frames < 0:
        raise UsageError("--max-frames must be >= 0")
    if args.max_retries is not None and args.max_retries < 0:
        raise UsageError("--max-retries must be >= 0")
    if args.backoff < 0:
        raise UsageError("--backoff must be >= 0")
    setup = Setup(command, exchange, settings, symbols, _split(args.channels), endpoint, rest_base)
    if args.scheme:
        setup.scheme_cls = pick_scheme(exchange, args.scheme)
    elif endpoint:
        setup.scheme_cls = _scheme_by_url(exchange, endpoint)
    return setup


def pick_scheme(exchange: str, name: str):
    """The scheme of ``exchange`` called ``name``: its class name, its ws_url, ``default``, or a
    part of the class name / the last part of the ws_url path that names one scheme only
    (Kraken: ``v1`` -> KrakenSpotV1Scheme, ``v2`` -> KrakenSpotScheme at wss://ws.kraken.com/v2)."""
    from ..exchanges import schemes

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
    from ..exchanges import schemes

    norm = url.rstrip("/")
    for s in schemes()[exchange]:
        if s.ws_url.rstrip("/") == norm:
            return s
    return None


async def resolve(setup: Setup) -> None:
    """The scheme (asking a local simulator where needed) and the instrument listing."""
    from ..exchanges import scheme_for
    from ..rest import RestError, fetch, rebase
    from ..simulator import INFO_PATH

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
        answers = await asyncio.gather(*(fetch(url) for url in urls), return_exceptions=True)
        failed = []
        for url, answer in zip(urls, answers):
            if isinstance(answer, RestError):
                failed.append(answer)
                if len(urls) > 1:
                    log.warning("%s: instrument listing left out: %s", setup.exchange, answer)
            elif isinstance(answer, BaseException):
                raise answer
        if len(failed) == len(urls):
            raise StartError(f"cannot fetch the instrument listing: {failed[0]}")
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


def validate(setup: Setup) -> None:
    """Symbols and channels against the scheme and the listing (UsageError)."""
    from ..metrics import Metrics

    try:
        probe = setup.scheme_cls(lambda _t, _r: None, Metrics(), setup.instruments, setup.symbols, setup.channels)
        plans = probe.plan(setup.endpoint)
    except KeyError as exc:
        raise UsageError(str(exc.args[0]) if exc.args else repr(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not plans:
        raise UsageError(f"{setup.exchange}: nothing to subscribe")


async def execute(
    setup: Setup,
    args: argparse.Namespace,
    sink: Any,
    metrics: Any,
    *,
    raw: bool = False,
    hooks: dict[str, Callable] | None = None,
    status: bool = True,
    metrics_port: int | None = None,
    on_started: Callable[[Any], None] | None = None,
) -> tuple[str, Any]:
    """Run the feed until stopped; returns (stop reason, FeedGroup). Closes the pipeline."""
    from ..feed import FeedGroup
    from ..pipeline import Pipeline
    from ..status_line import MetricsServer, StatusLine, prometheus_text

    loop = asyncio.get_running_loop()
    pipeline = Pipeline(sink, metrics)
    scheme = setup.scheme_cls(pipeline.emit, metrics, setup.instruments, setup.symbols, setup.channels)
    group = FeedGroup(
        scheme,
        pipeline,
        url=setup.endpoint,
        rest_base=setup.rest_base,
        backoff_base=args.backoff,
        max_retries=args.max_retries,
        max_frames=args.max_frames,
        raw=raw,
        **(hooks or {}),
    )
    server = None
    line = None
    try:
        if metrics_port is not None:
            server = MetricsServer(lambda: prometheus_text(metrics, sink, scheme), "127.0.0.1", metrics_port)
            try:
                await server.start()
            except OSError as exc:
                raise UsageError(f"--metrics-port {metrics_port}: {exc.strerror or exc}") from None
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, group.stop, signal.Signals(sig).name)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
                pass
        if args.duration:
            loop.call_later(args.duration, group.stop, "duration")
        if status:
            line = StatusLine(metrics, sink, scheme, label=setup.exchange).start(loop)
        if on_started is not None:
            on_started(group)
        reason = await group.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
        if line is not None:
            line.stop()
        if server is not None:
            await server.close()
        pipeline.close()
    return reason, group


def run_async(coro) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(coro)
    return uvloop.run(coro)


def quiet_picows() -> None:
    logging.getLogger("picows").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))


def print_summary(command: str, reason: str, metrics: Any, started: float) -> None:
    summary = metrics.summary(time.monotonic() - started)
    summary["stopped"] = reason
    print(f"summary: {json.dumps(summary, separators=(',', ':'))}", file=sys.stderr, flush=True)


# --- run ---------------------------------------------------------------------------------------
def main(args: argparse.Namespace) -> int:
    quiet_picows()
    try:
        setup = prepare(args, "run")
    except UsageError as exc:
        print(f"atomfast run: {exc}", file=sys.stderr)
        return 2
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        print("atomfast run: --metrics-port must be 0..65535", file=sys.stderr)
        return 2
    return run_async(_main(setup, args))


async def _main(setup: Setup, args: argparse.Namespace) -> int:
    from ..config import SettingsError
    from ..metrics import Metrics

    started = time.monotonic()
    metrics = Metrics()
    try:
        await resolve(setup)
        validate(setup)
        if args.sink == "null":
            from ..sinks.null import NullSink

            sink = NullSink()
        else:
            from ..sinks import default_sink_name, make_sink

            if args.raw and (args.sink or default_sink_name(setup.settings)) == "files":
                raise UsageError("--raw needs --sink kafka or stdout: the files sink holds Avro records only")
            try:
                sink = make_sink(args.sink, setup.settings, metrics, data_dir=args.data_dir)
            except (SettingsError, ValueError) as exc:
                raise UsageError(str(exc)) from None
            except OSError as exc:
                raise UsageError(f"--sink {args.sink}: {exc}") from None
        reason, group = await execute(setup, args, sink, metrics, raw=args.raw, status=not args.no_status,
                                      metrics_port=args.metrics_port)
    except UsageError as exc:
        print(f"atomfast run: {exc}", file=sys.stderr)
        return 2
    except StartError as exc:
        print(f"atomfast run: {exc}", file=sys.stderr)
        return 1
    print_summary("run", reason, metrics, started)
    return 1 if reason == "all connections gave up" else 0
