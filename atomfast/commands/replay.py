"""`atomfast replay CAPTURE --exchange NAME [--sink ...]`: ends with one JSON summary line.

A capture is evidence: one that is not ``NAME``'s (recorded from another venue's host, or whose
frames are another venue's) is refused unless ``--force``; a file that is no capture is refused
with its name; the exit code is 1 when the capture held no frame or when every frame failed to
decode (the summary is printed all the same), 2 when nothing could be replayed."""
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
    p.add_argument("--summary", default=None, metavar="FILE",
                   help="write the JSON summary to FILE (with --sink stdout it goes to stderr, not among the events)")
    p.add_argument("--force", action="store_true",
                   help="replay a capture that looks like another venue's as this exchange anyway")


def outcome(summary: dict, names: str, exchange: str) -> str:
    """Why a finished replay failed ("" if it did not): no frame read, or every frame refused."""
    frames = summary["frames"]
    if frames == 0:
        return f"{names} holds no frame to replay"
    data = sum(n for topic, n in summary["events"].items() if topic != "status")
    if data == 0 and summary["errors"] >= frames:
        return f"every one of the {frames} frames of {names} failed to decode as {exchange} (warnings above)"
    return ""


def main(args: argparse.Namespace) -> int:
    from ..capture import open_capture
    from ..collector import open_sink
    from ..config import SettingsError, load_settings
    from ..exchanges import scheme_for
    from ..metrics import Metrics
    from ..replay import Replay, check_venue

    metrics = Metrics()
    names = ", ".join(args.capture)
    try:
        capture = open_capture(*args.capture)
        scheme_cls = scheme_for(args.exchange, capture.urls[0] if capture.urls else None)
        if not args.force:
            check_venue(capture, args.exchange, scheme_cls)
        settings = load_settings({"data_dir": args.data_dir})
        sink = open_sink(args.sink, settings, metrics, data_dir=args.data_dir)
        replay = Replay(capture, args.exchange, sink, metrics, scheme_cls, raw=args.raw, force=True)
        replay.run(args.max_frames)
    except (SettingsError, ValueError, OSError) as exc:
        print(f"atomfast replay: {exc}", file=sys.stderr)
        return 2
    summary = metrics.summary(replay.seconds)
    line = msgspec.json.encode(summary)
    if args.summary:
        try:
            with open(args.summary, "wb") as fh:
                fh.write(line + b"\n")
        except OSError as exc:
            print(f"atomfast replay: cannot write the summary to {args.summary}: {exc.strerror}", file=sys.stderr)
            return 2
    if args.sink == "stdout":  # the events are the data stream: the summary goes with the messages
        print(f"summary: {line.decode()}", file=sys.stderr, flush=True)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(line + b"\n")
        sys.stdout.flush()
    failed = outcome(summary, names, args.exchange)
    if failed:
        print(f"atomfast replay: {failed}", file=sys.stderr)
        return 1
    return 0
