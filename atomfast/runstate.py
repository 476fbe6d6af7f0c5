"""The run-state file: did the previous ``atomfast run`` end cleanly, and how far had it delivered?

A run killed by SIGKILL (or the OOM killer, a crash, a power cut) says nothing: no ``stopped``
status, no summary. So that a consumer still learns where a gap may be, ``atomfast run`` keeps a
small JSON file per (exchange, sink target) under ``<data dir>/.runstate/``:

- written atomically (a temporary file, then ``os.replace``; no fsync: the fault is the
  process's death, and the page cache outlives the process) at most once a second, and only
  when the sink's progress changed, from what the sink already counts: for Kafka the delivery
  reports served (per topic the delivered count; per partition the last delivered offset and
  that message's timestamp, i.e. its produce time: ``KafkaSink.delivery_progress``), for the
  files sink the records written in blocks and the file each topic was last written to;
- ``clean: true`` written once more after the orderly end (the pipeline closed, the sink
  flushed): SIGINT, SIGTERM, ``--duration``, ``--max-frames``.

At start, a previous state that is not clean means the previous run ended uncleanly: one
``status`` event ``unclean_end`` (symbol "") is published before the first connection, and the
same text logged once at WARNING. Its reason names the previous run (pid, start time, when it
last persisted), what the sink had confirmed by then, and that events after those may be
missing (:func:`unclean_reason` gives the exact format). The numbers are lower bounds of what
the broker holds: messages delivered after the last persist, or whose reports were not yet
served, are in Kafka too.

A missing file is a first run. An unreadable one (not JSON, partial, of another format) gives
one WARNING naming the file and why; the run goes on and writes its own. A second run of the
same exchange to the same target while the first is alive (the state file is locked with
``flock`` for a run's life; the kernel releases it when the process dies, however it dies)
keeps no state (one WARNING) instead of mixing its counts with the first's. A state directory
that cannot be created or written: one WARNING, and the run goes on without it.

The sinks without delivery accounting (stdout, null) keep no state.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("atomfast.run")

__all__ = ["FORMAT", "STATE_DIR", "RunState", "StateError", "load_state", "sink_progress", "sink_target",
           "state_path", "unclean_reason"]

#: the format of the file (``format`` key); a file of another format is unreadable
FORMAT = 1
#: under the data dir
STATE_DIR = ".runstate"
#: persist at most this often (seconds)
INTERVAL = 1.0
UNCLEAN = "unclean_end"


class StateError(ValueError):
    """A run-state file that cannot be read as one."""


# --- what to keep --------------------------------------------------------------------------------
def sink_target(sink: Any) -> tuple[str, str] | None:
    """(sink kind, target) of a sink that accounts for what it delivered, else None. The target
    says where the events went: Kafka's bootstrap servers and topic prefix, or the files' dir."""
    if callable(getattr(sink, "delivery_progress", None)):
        conf = getattr(sink, "_conf", {}) or {}
        return "kafka", f"{conf.get('bootstrap.servers', '?')} prefix {getattr(sink, 'topic_prefix', '')!r}"
    if callable(getattr(sink, "current_files", None)) and getattr(sink, "data_dir", None) is not None:
        return "files", str(Path(sink.data_dir).resolve())
    return None


def sink_progress(sink: Any) -> dict:
    """What ``sink`` has confirmed so far, as the state file keeps it."""
    if callable(getattr(sink, "delivery_progress", None)):
        p = sink.delivery_progress()
        return {
            "delivered": {t: int(n) for t, n in sorted(p.get("delivered", {}).items())},
            "failed": {t: int(n) for t, n in sorted(p.get("failed", {}).items()) if n},
            "partitions": {t: {str(k): [int(o), int(ts)] for k, (o, ts) in sorted(parts.items())}
                           for t, parts in sorted(p.get("partitions", {}).items())},
        }
    stats = sink.stats() if callable(getattr(sink, "stats", None)) else {}
    files = sink.current_files() if callable(getattr(sink, "current_files", None)) else {}
    return {"written": int(stats.get("delivered", 0) or 0),
            "files": {t: str(p) for t, p in sorted(files.items())}}


def state_path(state_dir: str | os.PathLike, exchange: str, kind: str, target: str) -> Path:
    """``<state_dir>/<exchange>.<kind>.<10 hex digits of the target's hash>.json``."""
    digest = hashlib.sha256(f"{kind} {target}".encode()).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", exchange)
    return Path(state_dir) / f"{safe}.{kind}.{digest}.json"


# --- reading -------------------------------------------------------------------------------------
def _int(d: dict, key: str) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise StateError(f"{key!r} is not a count or time: {v!r}")
    return v


def _counts(d: Any, what: str) -> dict[str, int]:
    if not isinstance(d, dict) or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                                          and v >= 0 for k, v in d.items()):
        raise StateError(f"{what!r} is not a map of topic -> count")
    return d


def check_state(state: Any) -> dict:
    """``state`` if it is a run state this version reads, else StateError saying why."""
    if not isinstance(state, dict):
        raise StateError(f"not a JSON object but {type(state).__name__}")
    if state.get("format") != FORMAT:
        raise StateError(f"format {state.get('format')!r}, not {FORMAT}")
    for key in ("exchange", "sink", "target"):
        if not isinstance(state.get(key), str):
            raise StateError(f"{key!r} is missing or not a string")
    if not isinstance(state.get("clean"), bool):
        raise StateError("'clean' is missing or not true/false")
    for key in ("pid", "started_ns", "persisted_ns"):
        _int(state, key)
    if state["sink"] == "kafka":
        _counts(state.get("delivered"), "delivered")
        _counts(state.get("failed", {}), "failed")
        parts = state.get("partitions")
        if not isinstance(parts, dict):
            raise StateError("'partitions' is missing")
        for topic, pmap in parts.items():
            if not isinstance(pmap, dict):
                raise StateError(f"'partitions' of {topic!r} is not a map")
            for p, v in pmap.items():
                if not (p.isdigit() and isinstance(v, list) and len(v) == 2
                        and all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
                    raise StateError(f"partition {p!r} of {topic!r} is not [offset, time]")
    elif state["sink"] == "files":
        _int(state, "written")
        files = state.get("files")
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise StateError("'files' is missing or not a map of topic -> path")
    else:
        raise StateError(f"unknown sink {state['sink']!r}")
    return state


def load_state(path: str | os.PathLike) -> dict | None:
    """The state in ``path``; None when there is none; StateError when it is unreadable."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read it: {exc.strerror or exc}") from None
    if not data.strip():
        raise StateError("it is empty")
    try:
        state = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateError(f"not JSON ({exc})") from None
    return check_state(state)


# --- the status reason ---------------------------------------------------------------------------
def iso(ns_or_ms: int, unit: str = "ns") -> str:
    """UTC time with milliseconds: ``2024-05-01T10:00:05.123Z``."""
    ms = ns_or_ms // 1_000_000 if unit == "ns" else ns_or_ms
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def unclean_reason(state: dict) -> str:
    """The ``unclean_end`` status reason of a previous run's (not clean) state. Kafka::

        previous run (pid 4242 on host1, started 2024-05-01T10:00:00.123Z) ended without a clean
        stop; its state was last saved 2024-05-01T10:00:05.456Z; delivered by then (confirmed
        by the broker): e2e.lob 1200 [p0 offset 599 at 2024-05-01T10:00:05.401Z, p1 offset 600
        at 2024-05-01T10:00:05.399Z]; e2e.status 7 [p0 offset 6 at ...]; failed: e2e.lob 2;
        events after these offsets and times may be missing

    (one line; ``pN offset O at T``: partition N's last delivered offset and that message's
    produce time; ``failed: ...`` only when some failed). Files::

        ...; written by then: 1200 records in all, the last files: lob data/lob/x.avro,
        status data/status/y.avro; events after these may be missing
    """
    host = f" on {state['host']}" if isinstance(state.get("host"), str) and state["host"] else ""
    head = (f"previous run (pid {state['pid']}{host}, started {iso(state['started_ns'])}) ended without a clean "
            f"stop; its state was last saved {iso(state['persisted_ns'])}")
    if state["sink"] == "kafka":
        topics = []
        for topic, n in state["delivered"].items():
            parts = state["partitions"].get(topic, {})
            where = ", ".join(f"p{p} offset {o} at {iso(ts, 'ms')}"
                              for p, (o, ts) in sorted(parts.items(), key=lambda kv: int(kv[0])))
            topics.append(f"{topic} {n} [{where}]")
        body = "; ".join(topics) if topics else "nothing"
        failed = state.get("failed") or {}
        tail = ("; failed: " + ", ".join(f"{t} {n}" for t, n in failed.items())) if failed else ""
        return (f"{head}; delivered by then (confirmed by the broker): {body}{tail}; "
                "events after these offsets and times may be missing")
    files = ", ".join(f"{t} {p}" for t, p in state["files"].items()) or "none"
    return (f"{head}; written by then: {state['written']} records in all, the last files: {files}; "
            "events after these may be missing")


# --- one run's state -----------------------------------------------------------------------------
class RunState:
    """The state file of this run: :meth:`open` (lock, read the previous state), :meth:`begin`
    (the ``unclean_end`` status if due, the first write, the timer), :meth:`end` (clean)."""

    def __init__(self, path: Path, exchange: str, kind: str, target: str, sink: Any, lock_fd: int) -> None:
        self.path = path
        self.exchange = exchange
        self.kind = kind
        self.target = target
        self.sink = sink
        self._lock_fd = lock_fd
        self._tmp = path.with_name(path.name + ".tmp")
        self.started_ns = time.time_ns()
        self.previous: dict | None = None
        self._last: dict | None = None
        self._timer: Any = None
        self._failing = False

    @classmethod
    def open(cls, exchange: str, sink: Any, state_dir: str | os.PathLike) -> "RunState | None":
        """This run's state for ``exchange`` to ``sink`` under ``state_dir``, with the previous
        run's (``previous``, None if there was none or it was unreadable); None when no state
        is kept (a sink without accounting, another live run, a directory that cannot be made).
        Never raises for a file problem: one WARNING."""
        found = sink_target(sink)
        if found is None:
            return None
        kind, target = found
        path = state_path(state_dir, exchange, kind, target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.warning("%s: no run state is kept: cannot use %s (%s); an unclean end of this run will "
                        "not be reported at the next start", exchange, path.parent, exc.strerror or exc)
            return None
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            log.warning("%s: another atomfast run to the same %s sink (%s) holds %s: this run keeps no run "
                        "state", exchange, kind, target, path)
            return None
        self = cls(path, exchange, kind, target, sink, fd)
        try:
            prev = load_state(path)
            if prev is not None and prev["exchange"] != exchange:
                raise StateError(f"it is the state of exchange {prev['exchange']!r}")
            self.previous = prev
        except StateError as exc:
            log.warning("%s: the run state file %s is unreadable (%s): whether the previous run ended cleanly "
                        "cannot be told; it is replaced by this run's", exchange, path, exc)
        return self

    @property
    def unclean(self) -> bool:
        return self.previous is not None and not self.previous["clean"]

    def begin(self, pipeline: Any = None, loop: Any = None) -> str | None:
        """Say an unclean end of the previous run (a ``status`` through ``pipeline``, a WARNING),
        write this run's first state, and persist every :data:`INTERVAL` s on ``loop``. Returns
        the reason said, if any."""
        reason = None
        if self.unclean:
            assert self.previous is not None
            reason = unclean_reason(self.previous)
            log.warning("%s: %s: %s", self.exchange, UNCLEAN, reason)
            if pipeline is not None:
                from .events import Status

                now = time.time_ns()
                pipeline.emit("status", Status(self.exchange, "", UNCLEAN, reason, now // 1_000_000, now // 1000))
                pipeline.end_frame()
        self.persist(force=True)
        if loop is not None:
            self._timer = loop.call_later(INTERVAL, self._tick, loop)
        return reason

    def _tick(self, loop: Any) -> None:
        self.persist()
        self._timer = loop.call_later(INTERVAL, self._tick, loop)

    def state(self, clean: bool = False) -> dict:
        return {
            "format": FORMAT, "exchange": self.exchange, "sink": self.kind, "target": self.target,
            "pid": os.getpid(), "host": socket.gethostname(), "started_ns": self.started_ns,
            "persisted_ns": time.time_ns(), "clean": clean, **sink_progress(self.sink),
        }

    def persist(self, force: bool = False, clean: bool = False) -> bool:
        """Write the state if the sink's progress changed (or ``force``); True if written."""
        try:
            state = self.state(clean)
        except Exception as exc:  # noqa: BLE001 - the sink's accounting must not stop the feed
            return self._failed(f"cannot read the sink's progress: {type(exc).__name__}: {exc}")
        if "files" in state and self._last is not None:  # a closed file stays the topic's last
            state["files"] = {**self._last.get("files", {}), **state["files"]}
        same = self._last is not None and all(
            state.get(k) == self._last.get(k) for k in ("delivered", "failed", "partitions", "written", "files"))
        if same and not force:
            return False
        try:
            with open(self._tmp, "w", encoding="utf-8") as f:
                json.dump(state, f, separators=(",", ":"))
                if clean:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
        except OSError as exc:
            return self._failed(f"cannot write {self.path}: {exc.strerror or exc}")
        if self._failing:
            self._failing = False
            log.warning("%s: the run state file %s is written again", self.exchange, self.path)
        self._last = state
        return True

    def _failed(self, why: str) -> bool:
        if not self._failing:
            self._failing = True
            log.warning("%s: run state: %s (said once; an unclean end would be reported with the last "
                        "state saved)", self.exchange, why)
        return False

    def end(self, clean: bool) -> None:
        """Stop the timer; with ``clean`` (the sink closed in order) write the final counts and
        ``clean: true``; release the lock. Idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lock_fd < 0:
            return
        try:
            if clean:
                self.persist(force=True, clean=True)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1
