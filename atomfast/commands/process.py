"""`atomfast process`: the raw topic -> the normalised topics, as L3 Atom's stream processor.

Consumes ``<KAFKA_TOPIC_PREFIX>raw`` (what ``atomfast run --raw`` publishes) in a consumer
group and produces ``lob``, ``trades``, ... exactly as inline normalisation does (the same
keys and value bytes for the same frames): start as many workers as there are partitions of
``raw`` to share them; a worker that dies is replaced by the group's rebalance. Offsets are
committed only after the outputs are delivered (at-least-once: see ``atomfast.processor``).

``--output-prefix`` puts the outputs under another prefix than the input (e.g. to run beside a
collector that normalises inline). With SCHEMA_REGISTRY_URL the output schemas are registered
and values are Confluent-framed, as ``run`` does. Ends with a JSON summary on stderr
(``summary: {...}``): consumed, rebuilt (records replayed to rebuild state after a
rebalance), events per topic, commits, ...
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time

log = logging.getLogger("atomfast.process")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--group", default="atomfast-process", help="consumer group id (default: %(default)s)")
    p.add_argument("--prefix", default=None, help="prefix of the raw topic read (default: KAFKA_TOPIC_PREFIX)")
    p.add_argument("--output-prefix", default=None,
                   help="prefix of the topics written (default: the same as --prefix)")
    p.add_argument("--batch", type=int, default=2000, metavar="N",
                   help="raw records per batch: outputs flushed and offsets committed after each (default 2000)")
    p.add_argument("--idle-timeout", type=float, default=None, metavar="S",
                   help="stop after S seconds without a raw record, counted once partitions are assigned "
                        "(default: run until SIGINT/SIGTERM)")
    p.add_argument("--session-timeout", type=float, default=10.0, metavar="S",
                   help="consumer group session timeout: how soon a dead worker's partitions move (default 10)")
    p.add_argument("--evict-after", type=float, default=600.0, metavar="S",
                   help="forget a connection after S seconds of stream time without a record "
                        "(a collector that died without saying so; default 600)")


def main(args: argparse.Namespace) -> int:
    from ..config import SettingsError, load_settings
    from ..metrics import Metrics
    from ..processor import Processor, ProcessorError, ProcessorOptions

    if args.batch < 1:
        print("atomfast process: --batch must be >= 1", file=sys.stderr)
        return 2
    try:
        settings = load_settings({"kafka_topic_prefix": args.prefix})
    except SettingsError as exc:
        print(f"atomfast process: {exc}", file=sys.stderr)
        return 2
    if not settings.kafka_bootstrap_servers:
        print("atomfast process: needs KAFKA_BOOTSTRAP_SERVERS (or KAFKA_ENDPOINTS)", file=sys.stderr)
        return 2
    prefix = settings.kafka_topic_prefix
    options = ProcessorOptions(
        group=args.group,
        input_prefix=prefix,
        output_prefix=prefix if args.output_prefix is None else args.output_prefix,
        batch=args.batch,
        idle_timeout=args.idle_timeout,
        session_timeout_ms=int(args.session_timeout * 1000),
        evict_after=args.evict_after,
    )
    metrics = Metrics()
    started = time.monotonic()
    try:
        processor = Processor(settings, options, metrics)
    except (SettingsError, ValueError) as exc:
        print(f"atomfast process: {exc}", file=sys.stderr)
        return 2
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda signum, _f: processor.stop(signal.Signals(signum).name))
    log.info("process: %s -> %s* (group %s)", processor.topic, options.output_prefix or "", options.group)
    code = 0
    try:
        processor.run()
    except ProcessorError as exc:
        log.error("process: %s", exc)
        processor.stop_reason = str(exc)
        code = 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = processor.summary()
    summary["seconds"] = round(time.monotonic() - started, 3)
    print(f"summary: {json.dumps(summary, separators=(',', ':'))}", file=sys.stderr, flush=True)
    return code
