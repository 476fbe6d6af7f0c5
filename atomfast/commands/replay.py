"""`atomfast replay CAPTURE --exchange NAME [--sink ...]`: ends with one JSON summary line."""
from __future__ import annotations

import argparse
import sys

import msgspec

SINKS = ("files", "kafka", "stdout", "null")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("capture", nargs="+", help="capture file(s): one per recorded connection")
    p.add_argument("--exchange", required=True, help="exchange name (kraken, kraken-futures, ...)")
    p.add_argument("--sink", choices=SINKS, default=None,
                   help="where events go (default: kafka when KAFKA_BOOTSTRAP_SERVERS is set, else files); "
                        "null encodes and discards")
    p.add_argument("--data-dir", default=None, help="files sink directory (default: settings' data dir)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N received frames")
    p.add_argument("--raw", action="store_true",
                   help="also publish what the scheme is handed to the raw topic (as run --raw)")


def main(args: argparse.Namespace) -> int:
    from ..collector import open_sink
    from ..config import SettingsError, load_settings
    from ..metrics import Metrics
    from ..replay import replay_capture

    metrics = Metrics()
    try:
        settings = load_settings({"data_dir": args.data_dir})
        sink = open_sink(args.sink, settings, metrics, data_dir=args.data_dir)
        replay = replay_capture(args.capture, args.exchange, sink, metrics, args.max_frames, raw=args.raw)
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"atomfast replay: {exc}", file=sys.stderr)
        return 2
    summary = metrics.summary(replay.seconds)
    sys.stdout.flush()
    sys.stdout.buffer.write(msgspec.json.encode(summary) + b"\n")
    sys.stdout.flush()
    return 0
