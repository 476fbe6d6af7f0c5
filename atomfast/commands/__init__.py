"""The command line's commands, one module each (``atomfast/cli.py`` loads them): they parse
flags, call the runtime (``atomfast.collector`` and the others) and print. What several of them
share on that side lives here: the flags of a feed (``run``, ``record``) and the summary line."""
from __future__ import annotations

import argparse
import json
import sys

from ..collector import FeedSpec, split_list


def names(what: str):
    """An argparse type: a comma-separated list that names at least one ``what``."""
    def parse(text: str) -> str:
        if not split_list(text):
            raise argparse.ArgumentTypeError(f"empty: name at least one {what} (or leave the flag out)")
        return text

    return parse


def add_feed_arguments(p: argparse.ArgumentParser, exchanges: bool = False) -> None:
    """The flags of one feed (``run``, ``record``): the fields of a FeedSpec. ``exchanges``:
    ``--exchange`` may name several (comma-separated) or none (the settings' ATOMFAST_EXCHANGES)."""
    if exchanges:
        p.add_argument("--exchange", default=None,
                       help="exchange name(s), comma-separated (kraken,binance-futures); default: ATOMFAST_EXCHANGES")
    else:
        p.add_argument("--exchange", required=True, help="exchange name (kraken, kraken-futures, ...)")
    p.add_argument("--symbols", default=None, type=names("symbol"),
                   help="comma-separated normalised symbols (BTC-USD,ETH-USD); default: config.ini [exchange] symbols")
    p.add_argument("--channels", default=None, type=names("channel"), help="comma-separated channels (lob,trades,ticker,...); default: the scheme's")
    p.add_argument("--endpoint", default=None, help="websocket URL replacing the exchange's (ws://127.0.0.1:P for a simulator)")
    p.add_argument("--rest-endpoint", default=None,
                   help="REST base URL replacing the exchange's (default: derived from a local --endpoint)")
    p.add_argument("--scheme", default=None,
                   help="which of the exchange's schemes to speak: class name, part of it (v1), its ws URL, or default")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("--max-frames", type=int, default=0, metavar="N", help="stop after N received frames")
    p.add_argument("--max-retries", type=int, default=None, metavar="N",
                   help="give a connection up after N reconnect attempts in a row (default: forever)")
    p.add_argument("--fail-fast", action="store_true",
                   help="exit at once when the exchange cannot be reached at start (default: wait for the network, "
                        "retrying with the backoff, up to --max-retries attempts)")
    p.add_argument("--backoff", type=float, default=0.5, metavar="SECONDS",
                   help="reconnect backoff base (doubles each attempt, full jitter, 30 s cap; default 0.5)")


def feed_spec(args: argparse.Namespace) -> FeedSpec:
    """The FeedSpec of parsed ``add_feed_arguments`` flags (plus ``run``'s sink flags, if any)."""
    return FeedSpec(
        exchange=args.exchange or "",
        symbols=split_list(args.symbols),
        channels=split_list(args.channels),
        endpoint=args.endpoint,
        rest_endpoint=args.rest_endpoint,
        scheme=args.scheme,
        sink=getattr(args, "sink", None),
        data_dir=getattr(args, "data_dir", None),
        raw=bool(getattr(args, "raw", False)),
        duration=args.duration,
        max_frames=args.max_frames,
        max_retries=args.max_retries,
        backoff=args.backoff,
        fail_fast=bool(getattr(args, "fail_fast", False)),
        metrics_port=getattr(args, "metrics_port", None),
        metrics_host=getattr(args, "metrics_host", None) or "127.0.0.1",
        status=not getattr(args, "no_status", False),
    )


def print_summary(summary: dict) -> None:
    """``summary: {json}`` on stderr: the last line of ``run`` and ``record``."""
    print(f"summary: {json.dumps(summary, separators=(',', ':'))}", file=sys.stderr, flush=True)
