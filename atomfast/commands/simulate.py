"""`atomfast simulate CAPTURE [CAPTURE...] --port P`: serve a capture as a local exchange.

Websocket and the recorded REST answers on the same port (plain HTTP GET is answered by the
websocket server's upgrade handler); ``--rest-port R`` adds a second listener. Prints
``listening ws://HOST:P rest http://HOST:R`` on stdout once ready. See atomfast/simulator.py.

``--faults SPEC`` makes it misbehave on purpose (drops, stalls, garbage, truncated, duplicated and
reordered frames, slow or failing REST, refused connections), the same way for the same
``--seed``; each injected fault is logged (INFO ``fault <kind> ...``) and, with ``--fault-log
FILE``, written there as a JSON line. The grammar is ``atomfast simulate --help``'s (and
``atomfast.simulator.FAULT_GRAMMAR``); a bad spec is one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..simulator import FAULT_GRAMMAR

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "--faults " + FAULT_GRAMMAR + "\n\nexample: --faults drop-every=400,stall=3@1000,garbage=0.01,truncate=0.01," \
        "duplicate=0.005,reorder=0.005,rest-delay=2,rest-status=429:2,refuse=1.5 --seed 7"
    p.add_argument("capture", nargs="+", help="capture file(s): cryptofeed X.ws.N.0 (REST companions found beside it) or atomfast record files")
    p.add_argument("--port", type=int, required=True, help="websocket (and REST) port; 0 picks a free one")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--rest-port", type=int, default=None,
                   help="also answer REST on this port (REST is always served on --port too)")
    p.add_argument("--pace", choices=("recorded", "fast"), default="recorded",
                   help="recorded: the recorded gaps between frames; fast: as fast as the socket takes them")
    p.add_argument("--rate", type=float, default=0.0, metavar="FRAMES_PER_S",
                   help="play at a fixed rate per connection instead of --pace (for latency benchmarks)")
    p.add_argument("--loop", action="store_true", help="start the capture over when it ends")
    p.add_argument("--close-after", type=int, default=0, metavar="N",
                   help="drop each client connection after N frames (reconnect tests)")
    p.add_argument("--resume", action="store_true",
                   help="a reconnecting client continues where the previous one stopped (default: from the start)")
    p.add_argument("--faults", default="", metavar="SPEC",
                   help="misbehave on purpose: comma-separated name=value faults (grammar below)")
    p.add_argument("--seed", type=int, default=0, help="seed of the faults' random choices (default 0)")
    p.add_argument("--fault-log", default=None, metavar="FILE",
                   help="append each injected fault to FILE as a JSON line")


def main(args: argparse.Namespace) -> int:
    from ..simulator import FaultPlan, FaultSpecError, Simulator

    if not 0 <= args.port <= 65535 or (args.rest_port is not None and not 0 <= args.rest_port <= 65535):
        print("atomfast simulate: ports must be 0..65535", file=sys.stderr)
        return 2
    if args.close_after < 0:
        print("atomfast simulate: --close-after must be >= 0", file=sys.stderr)
        return 2
    try:
        faults = FaultPlan.parse(args.faults)
    except FaultSpecError as exc:
        print(f"atomfast simulate: --faults: {exc}", file=sys.stderr)
        return 2
    try:
        sim = Simulator(args.capture, args.host, args.port, args.pace, args.loop, args.close_after, args.resume,
                        args.rest_port, args.rate, faults=faults, seed=args.seed, fault_log=args.fault_log)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"atomfast simulate: {exc}", file=sys.stderr)
        return 2
    if not sim.recordings:
        print(f"atomfast simulate: no websocket connection in {', '.join(args.capture)}", file=sys.stderr)
        return 2
    logging.getLogger("picows").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        return runner(_serve(sim))
    except OSError as exc:
        print(f"atomfast simulate: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1


async def _serve(sim) -> int:
    await sim.start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, done.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    frames = sum(len(rc.frames) for rc in sim.recordings)
    logging.getLogger("atomfast.simulator").info(
        "%d recorded connection(s), %d frames, %d REST answer(s); pace %s; faults %s (seed %d)",
        len(sim.recordings), frames, len(sim.rest), sim.pace, sim.faults.describe(), sim.seed)
    print(f"listening {sim.url} rest {sim.rest_url}", flush=True)
    await done.wait()
    await sim.close()
    if sim.faults:
        logging.getLogger("atomfast.simulator").info(
            "faults injected: %s", json.dumps(dict(sorted(sim.fault_counts.items()))))
    return 0
