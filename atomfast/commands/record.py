"""`atomfast record --exchange NAME --out FILE [...]`: raw frames with ns receive times.

Like ``run`` (same connection plan, subscriptions, pings, watchdog, reconnects), but what is
written is the traffic itself, in atomfast's record format (``atomfast.capture.RecordWriter``;
gzip when FILE ends in .gz): every connection's ``open``, the messages sent, every received frame
with its ``time.time_ns()`` receive time, and the REST answers (the instrument listings, and any
snapshot a scheme fetched). The scheme still sees each frame, so that its protocol duties (a
server-level ping to answer, a snapshot to fetch, a resync) are carried out as in a live run,
but its events are discarded: nothing normalised is written. ``replay`` and ``simulate`` read the
file back. Recorded through a local endpoint (``--endpoint ws://127.0.0.1:P``, a simulator), the
``open`` lines name the scheme's own URL (so replay picks the same scheme), not the local one.
"""
from __future__ import annotations

import argparse
import sys
import time

from ..collector import Collector, StartError, UsageError, is_local, quiet_picows, run_async
from . import add_feed_arguments, feed_spec, print_summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_feed_arguments(p)
    p.add_argument("--out", required=True, metavar="FILE", help="capture file to write (.gz: gzip)")
    p.add_argument("--no-status", action="store_true", help="no live status line / periodic status log")


class DiscardSink:
    """Events of a recording go nowhere (no encoding either); poll() flushes the capture file."""

    framing = None

    def __init__(self, writer) -> None:
        self.writer = writer
        self.events = 0
        self._last_flush = time.monotonic()

    def write(self, topic, records, keys, values) -> None:
        self.events += len(records)

    def poll(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= 1.0:
            self._last_flush = now
            self.writer.fh.flush()

    def flush(self, timeout: float = 30.0) -> int:
        self.writer.fh.flush()
        return 0

    def close(self) -> None:
        self.writer.fh.flush()

    def stats(self) -> dict:
        return {"queue": 0}


def main(args: argparse.Namespace) -> int:
    quiet_picows()
    collector = Collector(feed_spec(args), "record")
    try:
        collector.prepare()
    except UsageError as exc:
        print(f"atomfast record: {exc}", file=sys.stderr)
        return 2
    return run_async(_main(collector, args))


async def _main(collector: Collector, args: argparse.Namespace) -> int:
    from ..capture import RecordWriter

    try:
        setup = await collector.resolve()
    except UsageError as exc:
        print(f"atomfast record: {exc}", file=sys.stderr)
        return 2
    except StartError as exc:
        print(f"atomfast record: {exc}", file=sys.stderr)
        return 1
    try:
        writer = RecordWriter(args.out, setup.exchange)
    except OSError as exc:
        print(f"atomfast record: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        for url, body in setup.listings:  # every instrument listing fetched
            writer.rest(time.time_ns(), url, body)

        # Through a local endpoint (a simulator) the recording names the exchange's own URL, so
        # that replay and simulate pick the scheme that was spoken.
        scheme_url = setup.scheme_cls.ws_url

        def on_open(conn, ts_ns: int) -> None:
            writer.open(ts_ns, conn.id, scheme_url if is_local(conn.url) else conn.url)

        redact = setup.scheme_cls.redact

        def on_send(conn, data: bytes, ts_ns: int) -> None:
            writer.sent(ts_ns, conn.id, redact(data))  # credentials never reach a recording

        def on_frame(conn, data, ts_ns: int, binary: bool) -> None:
            writer.recv(ts_ns, conn.id, bytes(data), binary)

        def on_rest(url: str, body: bytes, ts_ns: int) -> None:
            writer.rest(ts_ns, url, body)

        hooks = {"open_hook": on_open, "send_hook": on_send, "frame_hook": on_frame, "rest_hook": on_rest}
        try:
            await collector.run(DiscardSink(writer), hooks=hooks)
        except UsageError as exc:
            print(f"atomfast record: {exc}", file=sys.stderr)
            return 2
    finally:
        writer.close()
    print_summary(collector.summary())
    return 1 if collector.gave_up else 0
