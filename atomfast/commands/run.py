"""`atomfast run --exchange NAME ...`: websocket -> scheme/books -> Avro -> sink, until stopped.

The flags are a :class:`~atomfast.collector.FeedSpec`; ``atomfast.collector.Collector`` does the
work (settings, the scheme, the instrument listings over REST, symbol/channel validation, the
sink, the feed on uvloop; see its module doc for endpoints and how the scheme is chosen). Bad
settings (unknown exchange, symbol, channel, scheme, sink, bad URL): one line on stderr, exit 2.
No REST listing answered, or one unreadable: one line, exit 1.
SIGINT/SIGTERM, ``--duration`` or ``--max-frames``: connections closed, ``stopped`` status,
pipeline closed (the sink flushed), a ``summary: {json}`` line on stderr, exit 0 (1 when every
connection gave up, ``--max-retries``).
"""
from __future__ import annotations

import argparse
import sys

from ..collector import Collector, FeedSpec, Setup, StartError, UsageError, quiet_picows, resolve, run_async
from ..collector import execute as _execute
from . import add_feed_arguments, feed_spec, print_summary

SINKS = ("files", "kafka", "stdout", "null")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_feed_arguments(p, exchanges=True)
    p.add_argument("--sink", choices=SINKS, default=None,
                   help="where events go (default: kafka when KAFKA_BOOTSTRAP_SERVERS is set, else files)")
    p.add_argument("--data-dir", default=None, help="files sink directory (default: settings' data dir)")
    p.add_argument("--raw", action="store_true", help="also publish every received frame, untouched, to the raw topic")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics (HOST: --metrics-host)")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                   help="address of the metrics endpoint (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--no-status", action="store_true", help="no live status line / periodic status log")
    p.add_argument("--topic-profile", choices=("atomfast", "level4"), default=None,
                   help="Kafka layout (default KAFKA_TOPIC_PROFILE, else atomfast). level4's layout is keyed by "
                        "market ids, which only the control plane knows: atomfast serve publishes it, run refuses it")


def main(args: argparse.Namespace) -> int:
    quiet_picows()
    if getattr(args, "topic_profile", None) == "level4":
        print("atomfast run: --topic-profile level4 keys every record by the market's numeric id, which only the "
              "control plane knows: run the markets with atomfast serve --topic-profile level4 and StartMarket "
              "(atomfast ctl start ID EXCHANGE SYMBOL)", file=sys.stderr)
        return 2
    try:
        exchanges = exchanges_of(args)
    except UsageError as exc:
        print(f"atomfast run: {exc}", file=sys.stderr)
        return 2
    collectors = []
    for exchange in exchanges:
        spec = feed_spec(args)
        spec.exchange = exchange
        spec.run_state = True  # an unclean end of the previous run is said at start (atomfast.runstate)
        collector = Collector(spec, "run")
        try:
            collector.prepare()
        except UsageError as exc:
            print(f"atomfast run: {exc}", file=sys.stderr)
            return 2
        if getattr(args, "topic_profile", None):  # the flag over KAFKA_TOPIC_PROFILE
            collector.setup.settings.kafka_topic_profile = args.topic_profile
        problem = _profile_problem(collector)
        if problem:
            print(f"atomfast run: {problem}", file=sys.stderr)
            return 2
        collectors.append(collector)
    if len(collectors) == 1:
        return run_async(_main(collectors[0]))
    return run_async(_main_many(collectors))


def _profile_problem(collector: Collector) -> str | None:
    """KAFKA_TOPIC_PROFILE=level4 with the kafka sink: refused before anything connects (the
    sink would refuse it too: no market ids outside ``atomfast serve``)."""
    from ..config import SettingsError
    from ..sinks import default_sink_name
    from ..sinks.level4 import topic_profile

    settings = collector.setup.settings
    if (collector.spec.sink or default_sink_name(settings)) != "kafka":
        return None
    try:
        from ..sinks import _make_kafka

        if topic_profile(settings) == "level4":
            _make_kafka(settings, None)  # raises the one clear error
    except SettingsError as exc:
        return str(exc)
    return None


def exchanges_of(args: argparse.Namespace) -> list[str]:
    """``--exchange a,b`` or, without it, the settings' ATOMFAST_EXCHANGES; ``--symbols`` names
    the markets of one exchange only (several take theirs from their config sections)."""
    from ..collector import split_list
    from ..config import SettingsError, load_settings

    exchanges = split_list(args.exchange)
    if not exchanges:
        try:
            exchanges = split_list(load_settings({}).exchanges)
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
    if not exchanges:
        raise UsageError("name the exchange(s): --exchange kraken[,binance-futures,...] or ATOMFAST_EXCHANGES")
    if len(set(exchanges)) != len(exchanges):
        raise UsageError(f"--exchange names an exchange twice: {','.join(exchanges)}")
    if len(exchanges) > 1:
        for flag in ("symbols", "channels", "endpoint", "rest_endpoint", "scheme"):
            if getattr(args, flag, None):
                raise UsageError(f"--{flag.replace('_', '-')} is per exchange: with several exchanges, give each "
                                 f"its [exchange] section in the config file (symbols = ..., channels = ...)")
    return exchanges


async def _main(collector: Collector) -> int:
    try:
        await collector.resolve()
        await collector.open_sink_waiting()
        await collector.run()
    except UsageError as exc:
        print(f"atomfast run: {exc}", file=sys.stderr)
        return 2
    except StartError as exc:
        print(f"atomfast run: {exc}", file=sys.stderr)
        return 1
    print_summary(collector.summary())
    return 1 if collector.gave_up else 0


async def _main_many(collectors: list[Collector]) -> int:
    """Several exchanges in one process: one sink, one status line, one metrics endpoint; the
    summary line holds each exchange's summary and their sums."""
    from ..collector import execute_many

    try:
        for c in collectors:
            await c.resolve()
        sink = await collectors[0].open_sink_waiting()
        await execute_many(collectors, sink, collectors[0].spec)
    except UsageError as exc:
        print(f"atomfast run: {exc}", file=sys.stderr)
        return 2
    except StartError as exc:
        print(f"atomfast run: {exc}", file=sys.stderr)
        return 1
    print_summary(merged_summary({c.setup.exchange: c.summary() for c in collectors}))
    return 1 if any(c.gave_up for c in collectors) else 0


def merged_summary(per: dict[str, dict]) -> dict:
    """The counts of several exchanges' summaries added up, and each one under ``exchanges``."""
    out: dict = {"frames": 0, "events": {}, "checksum_ok": 0, "checksum_failed": 0, "gaps": 0, "resyncs": 0,
                 "errors": 0, "reconnects": 0}
    for summary in per.values():
        for key in ("frames", "checksum_ok", "checksum_failed", "gaps", "resyncs", "errors", "reconnects"):
            out[key] += summary.get(key, 0)
        for topic, n in summary.get("events", {}).items():
            out["events"][topic] = out["events"].get(topic, 0) + n
    out["events"] = dict(sorted(out["events"].items()))
    out["stopped"] = ",".join(sorted({s.get("stopped", "") for s in per.values()} - {""}))
    out["exchanges"] = per
    return out


# --- the collector's names as this module had them (callers written before atomfast.collector) --
__all__ = ["Setup", "StartError", "UsageError", "add_arguments", "execute", "main", "resolve"]


async def execute(setup: Setup, args: argparse.Namespace, sink, metrics, *, raw: bool = False, hooks=None,
                  status: bool = True, metrics_port: int | None = None, on_started=None):
    """``atomfast.collector.execute`` with ``args`` (backoff, max_retries, max_frames, duration)."""
    spec = FeedSpec(setup.exchange, duration=args.duration, max_frames=args.max_frames,
                    max_retries=args.max_retries, backoff=args.backoff, raw=raw, metrics_port=metrics_port,
                    status=status)
    return await _execute(setup, spec, sink, metrics, hooks=hooks, on_started=on_started)
