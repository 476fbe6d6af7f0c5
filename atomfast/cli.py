"""The ``atomfast`` command line. Each command lives in ``atomfast/commands/<name>.py`` with
``add_arguments(parser)`` and ``main(args) -> int``; modules are imported only when used.

Command names and flags are a contract (DESIGN.md: Command line).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMANDS = {
    "run": "collect from an exchange: websocket -> books -> Avro -> sink",
    "replay": "push a recorded capture through scheme, book and encoder, offline; JSON summary last",
    "simulate": "serve a capture as a local exchange (websocket + recorded REST answers)",
    "record": "record raw frames (with ns receive times) from an exchange to a capture file",
    "consume": "decode Avro to JSON lines, from Kafka or the files sink",
    "export": "the lake as Hive-partitioned Parquet (exchange=/date=), incrementally",
    "process": "raw topic -> normalised topics, as L3 Atom's stream processor",
    "serve": "gRPC control server (level4's Control service) and cluster node",
    "ctl": "client of the control server: start, stop, list, nodes, online",
}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"invalid log level {text!r}: one of {', '.join(LOG_LEVELS)}")
    return level


def _add_global_flags(parser: argparse.ArgumentParser, default) -> None:
    """The global flags, before the command and (with ``default`` SUPPRESS, so a later one wins
    only when given) after it too."""
    parser.add_argument("--log-level", type=_log_level, default=default,
                        help="DEBUG, INFO, WARNING, ERROR, CRITICAL (default INFO)")
    parser.add_argument("--config", default=None if default is not argparse.SUPPRESS else default, metavar="PATH",
                        help="settings file (default: $ATOMFAST_CONFIG, else ./config.ini if present; "
                             "every exchange's default symbols are built in)")


def _version() -> str:
    from . import __version__

    return f"atomfast {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atomfast",
        description="Fast, verified cryptocurrency market-data collector.",
    )
    parser.add_argument("--version", action="version", version=_version())
    _add_global_flags(parser, "INFO")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _add_global_flags(p, argparse.SUPPRESS)
        try:
            module = importlib.import_module(f"atomfast.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"atomfast.commands.{name}":
                raise
            sub._choices_actions = [a for a in sub._choices_actions if a.dest != name]
            p.set_defaults(_unavailable=name)
            continue
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if getattr(args, "_unavailable", None):
        print(f"atomfast {args._unavailable}: not available in this build", file=sys.stderr)
        return 2
    if args.config is not None:  # every load_settings of the command reads it
        os.environ["ATOMFAST_CONFIG"] = args.config
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args._main(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
