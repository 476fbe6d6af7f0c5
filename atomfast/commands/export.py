"""`atomfast export TOPIC [--from files|kafka] --format parquet --out DIR`: the lake as
Hive-partitioned Parquet (``DIR/<topic>/exchange=<x>/date=<YYYY-MM-DD>/part-<run>-<n>.parquet``),
incrementally: each run exports only what is new since the last one (``atomfast/export.py``).

One JSON summary line on stdout at the end: ``{"topic": ..., "source": ..., "records": N,
"files": N, "partitions": [...], ...}``. Exit codes: 0 exported (or nothing new), 1 the source
or the output failed (nothing to export, an unreadable source file, Kafka unreachable), 2 the
command line or the settings (an unknown topic lists the known ones).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

log = logging.getLogger("atomfast.export")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..export import FORMATS, SOURCES

    p.add_argument("topic", help="event type / topic: lob, trades, ticker, spread, status, ...")
    p.add_argument("--from", dest="source", choices=SOURCES, default=None,
                   help="read the files sink's Avro files or Kafka (default: kafka when "
                        "KAFKA_BOOTSTRAP_SERVERS is set, else files)")
    p.add_argument("--format", choices=FORMATS, default="parquet", help="output format (parquet)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="the Parquet lake: the topic goes to DIR/<topic>/exchange=.../date=.../")
    p.add_argument("--data-dir", default=None, help="files sink directory (default: the settings' data dir)")
    p.add_argument("--prefix", default=None, help="Kafka topic prefix (default: KAFKA_TOPIC_PREFIX)")
    p.add_argument("--compression", default="zstd", choices=("zstd", "snappy", "gzip", "lz4", "none"),
                   help="Parquet compression (default zstd)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="Kafka: give up after S seconds without a message before the end offsets (default 30)")


def main(args: argparse.Namespace) -> int:
    from ..config import SettingsError, load_settings
    from ..export import ExportError, export

    topic = args.topic.strip()
    try:
        settings = load_settings({"data_dir": args.data_dir, "kafka_topic_prefix": args.prefix})
    except SettingsError as exc:
        print(f"atomfast export: {exc}", file=sys.stderr)
        return 2
    source = args.source or ("kafka" if settings.kafka_bootstrap_servers else "files")
    try:
        result = export(topic, args.out, source=source, data_dir=args.data_dir or settings.data_dir,
                        settings=settings, compression=args.compression, timeout=args.timeout)
    except ExportError as exc:
        print(f"atomfast export: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"atomfast export: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    summary = result.summary()
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    if result.problems:
        first = result.problems[0]
        more = f" (and {len(result.problems) - 1} more, above)" if len(result.problems) > 1 else ""
        print(f"atomfast export: {first}{more}", file=sys.stderr)
        return 1
    if result.records:
        log.info("exported %d %s events into %d file(s) under %s", result.records, topic, len(result.files),
                 result.out)
    else:
        log.info("%s: nothing new since the last export (run %d)", result.out, result.run)
    return 0
