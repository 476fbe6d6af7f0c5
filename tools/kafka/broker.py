#!/usr/bin/env python3
"""A real, single-node Kafka broker (KRaft, combined broker + controller) without Docker.

Used by the test-suite (``tests/conftest.py``) and by hand::

    python tools/kafka/broker.py start [--workdir DIR] [--port N] [--fresh]
    python tools/kafka/broker.py status
    python tools/kafka/broker.py stop

and from Python::

    broker = KafkaBroker(workdir, port=None)
    broker.start()            # -> "127.0.0.1:PORT" once it answers metadata requests
    broker.bootstrap          # "127.0.0.1:PORT"
    broker.stop()             # SIGTERM (controlled shutdown), wait, then SIGKILL
    broker.kill()             # SIGKILL at once (a crash)
    broker.restart()          # stop + start, same data dir and same ports

The jars come from Maven Central through ``tools/kafka/pom.xml`` and are cached in
``tools/kafka/lib`` (git-ignored); they are (re)resolved with
``mvn -q -B -f tools/kafka/pom.xml dependency:copy-dependencies`` when that directory is missing
or stale (it records the sha256 of the pom it was resolved from; a changed pom re-resolves). The broker needs Java 17+ on PATH (or JAVA_HOME), Maven only for the
first run, and confluent-kafka for the readiness probe.

Layout of a work directory::

    broker.json          ports and cluster id (kept, so that a restart reuses them)
    server.properties    the broker's configuration
    log4j2.properties    logging: everything to stdout, which goes to logs/server.log
    data/                the log dirs (KRaft metadata and topic data)
    logs/server.log      the broker's output (the tail is quoted when something fails)
    broker.pid           pid of the running broker (for `stop`/`status` from another process)
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LIB = HERE / "lib"
DEFAULT_WORKDIR = HERE / "run"
HOST = "127.0.0.1"
NODE_ID = 1
# Marker written into lib/ after a successful resolution: the sha256 of the pom it came from.
_LIB_MARKER = ".resolved-from-pom.sha256"

log = logging.getLogger("atomfast.tools.kafka")


class BrokerError(RuntimeError):
    """The broker could not be resolved, started or stopped; the message says why."""


# --------------------------------------------------------------------------------------------
# jars


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _lib_is_current(lib: Path) -> bool:
    marker = lib / _LIB_MARKER
    if not marker.is_file():
        return False
    if marker.read_text().strip() != _pom_digest():
        return False
    return any(lib.glob("kafka_2.13-*.jar"))


def resolve_jars(lib: Path = LIB) -> Path:
    """Make sure ``lib`` holds the broker's classpath; run Maven when it is missing or stale."""
    if _lib_is_current(lib):
        return lib
    lock_dir = DEFAULT_WORKDIR
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".resolve.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several test processes may start at once
        if _lib_is_current(lib):
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                f"{lib} is missing or stale and Maven (mvn) is not on PATH: install Maven 3.6+ "
                f"or run `mvn -B -f {POM} dependency:copy-dependencies` somewhere that has it"
            )
        if lib.exists():
            shutil.rmtree(lib)
        cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies"]
        log.info("resolving the Kafka broker's jars (~45 MB, once): %s", " ".join(cmd))
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip().splitlines()
            raise BrokerError(
                f"Maven could not resolve the Kafka broker jars (exit {proc.returncode}); "
                f"command: {' '.join(cmd)}\n" + "\n".join(out[-40:])
            )
        if not any(lib.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"Maven succeeded but {lib} holds no kafka_2.13 jar")
        (lib / _LIB_MARKER).write_text(_pom_digest() + "\n")
        log.info("resolved the Kafka jars into %s in %.1fs", lib, time.monotonic() - t0)
    return lib


def _kafka_version(lib: Path) -> str:
    jars = sorted(lib.glob("kafka_2.13-*.jar"))
    return jars[0].name[len("kafka_2.13-") : -len(".jar")] if jars else "?"


def _storage_tool_class(lib: Path) -> str:
    """kafka.tools.StorageTool (core, Scala; 3.x and 4.x) or org.apache.kafka.tools.StorageTool."""
    import zipfile

    for jar in sorted(lib.glob("*.jar")):
        try:
            names = set(zipfile.ZipFile(jar).namelist())
        except zipfile.BadZipFile:
            continue
        for cls in ("kafka.tools.StorageTool", "org.apache.kafka.tools.StorageTool"):
            if cls.replace(".", "/") + ".class" in names:
                return cls
    raise BrokerError(f"no StorageTool class in the jars of {lib}")


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH (and JAVA_HOME is unset): Kafka needs Java 17+")
    return java


# --------------------------------------------------------------------------------------------
# configuration


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM does
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _cluster_id() -> str:
    """A Kafka Uuid in its base64 form (url-safe, unpadded, not starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    """A one-node KRaft cluster (every name checked against Kafka 4.3's KafkaConfig)."""
    props = {
        # KRaft, combined mode, static single-voter quorum.
        "process.roles": "broker,controller",
        "node.id": NODE_ID,
        "controller.quorum.voters": f"{NODE_ID}@{HOST}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        # One node: every internal topic with one replica, min ISR 1.
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "default.replication.factor": 1,
        "min.insync.replicas": 1,
        "num.partitions": 1,
        # atomfast creates its topics itself.
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": 0,
        # Small machine (2 cores): few threads; faster shutdown of a test broker.
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        "log.cleaner.threads": 1,
        "controlled.shutdown.enable": "true",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


LOG4J2 = """\
# The broker's log: everything on stdout, which broker.py sends to logs/server.log.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
"""


# --------------------------------------------------------------------------------------------
# the broker


class KafkaBroker:
    """One broker process in ``workdir``. Ports are picked once and kept across restarts."""

    def __init__(
        self,
        workdir: str | os.PathLike = DEFAULT_WORKDIR,
        port: int | None = None,
        *,
        controller_port: int | None = None,
        heap: str = "512m",
        start_timeout: float = 120.0,
        stop_timeout: float = 30.0,
        lib: str | os.PathLike = LIB,
        die_with_parent: bool = True,
    ):
        """``die_with_parent``: the broker gets SIGTERM when the thread that started it exits
        (Linux, through ``setpriv --pdeathsig``), so that a killed test run leaves no broker
        behind; the CLI turns it off, its broker outlives the command."""
        self.workdir = Path(workdir).resolve()
        self.die_with_parent = die_with_parent
        self.lib = Path(lib)
        self.heap = heap
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.data_dir = self.workdir / "data"
        self.log_file = self.workdir / "logs" / "server.log"
        self.config_file = self.workdir / "server.properties"
        self._state_file = self.workdir / "broker.json"
        self._pid_file = self.workdir / "broker.pid"
        self._proc: subprocess.Popen | None = None
        state = self._load_state()
        if port is not None and state.get("port") not in (None, port):
            raise BrokerError(
                f"{self.workdir} belongs to a broker on port {state['port']}, not {port}; "
                "use another workdir (or --fresh)"
            )
        self.port: int = port or state.get("port") or 0
        self.controller_port: int = controller_port or state.get("controller_port") or 0
        self.cluster_id: str = state.get("cluster_id") or ""

    # -- properties

    @property
    def bootstrap(self) -> str:
        if not self.port:
            raise BrokerError("the broker has no port yet: call start() first")
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        pid = self._read_pid()
        return pid if pid is not None and self._is_our_process(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"KafkaBroker({str(self.workdir)!r}, port={self.port or None}, {state})"

    def __enter__(self) -> "KafkaBroker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- life cycle

    def start(self, timeout: float | None = None) -> str:
        """Start (formatting the storage on first use) and wait until it serves metadata."""
        if self.is_running():
            self.wait_ready(timeout)
            return self.bootstrap
        t0 = time.monotonic()
        resolve_jars(self.lib)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._prepare_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()
        for port in (self.port, self.controller_port):
            if not _port_is_free(port):
                raise BrokerError(
                    f"port {HOST}:{port} of the broker in {self.workdir} is taken by another "
                    "process (a broker still running from an earlier session?)"
                )
        wrapper = []
        if self.die_with_parent and sys.platform == "linux" and shutil.which("setpriv"):
            wrapper = [shutil.which("setpriv"), "--pdeathsig", "TERM", "--"]
        cmd = wrapper + [
            _java(),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            "-cp",
            str(self.lib / "*"),
            "kafka.Kafka",
            str(self.config_file),
        ]
        with open(self.log_file, "ab") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(cmd)}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not killed by a Ctrl-C meant for pytest
            )
        self._pid_file.write_text(f"{self._proc.pid}\n")
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        log.debug("Kafka broker %s ready at %s in %.1fs", _kafka_version(self.lib), self.bootstrap,
                  time.monotonic() - t0)
        return self.bootstrap

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the broker answers a metadata request listing itself."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": _SILENT})
        last_error = "no answer yet"
        while True:
            if not self.is_running():
                raise BrokerError(
                    f"the Kafka broker in {self.workdir} exited during start-up "
                    f"(exit code {self._exit_code()}); last lines of {self.log_file}:\n"
                    + self.log_tail()
                )
            try:
                md = admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                if NODE_ID in md.brokers:
                    return
                last_error = f"metadata lists brokers {sorted(md.brokers)}"
            except KafkaException as e:
                last_error = str(e.args[0] if e.args else e)
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"the Kafka broker at {self.bootstrap} did not answer metadata requests "
                    f"within {timeout:.0f}s ({last_error}); last lines of {self.log_file}:\n"
                    + self.log_tail()
                )
            time.sleep(0.2)

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM (Kafka's controlled shutdown), wait up to ``timeout``, then SIGKILL."""
        timeout = self.stop_timeout if timeout is None else timeout
        pid = self.pid
        if pid is None:
            self._forget()
            return
        self._signal(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout):
            log.warning("Kafka broker pid %d ignored SIGTERM for %.0fs: killing it", pid, timeout)
            self._signal(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 10.0):
                raise BrokerError(f"the Kafka broker pid {pid} survived SIGKILL")
        self._forget()

    def kill(self) -> None:
        """SIGKILL: the broker dies as in a crash (the data dir then needs log recovery)."""
        pid = self.pid
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
        self._forget()

    def restart(self, timeout: float | None = None) -> str:
        """Stop and start again on the same data dir and the same ports."""
        self.stop()
        return self.start(timeout)

    def wipe(self) -> None:
        """Stop and delete the work directory (data, logs, ports)."""
        self.stop()
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.port = self.controller_port = 0
        self.cluster_id = ""

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])

    # -- internals

    def _load_state(self) -> dict:
        try:
            return json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _prepare_config(self) -> None:
        if not self.port:
            self.port = free_port()
        if not self.controller_port:
            self.controller_port = free_port()
            while self.controller_port == self.port:
                self.controller_port = free_port()
        if not self.cluster_id:
            self.cluster_id = _cluster_id()
        self._state_file.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "controller_port": self.controller_port,
                    "cluster_id": self.cluster_id,
                    "kafka_version": _kafka_version(self.lib),
                },
                indent=1,
            )
            + "\n"
        )
        self.config_file.write_text(
            server_properties(self.port, self.controller_port, self.data_dir)
        )
        (self.workdir / "log4j2.properties").write_text(LOG4J2)

    def _format_storage(self) -> None:
        cmd = [
            _java(),
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            str(self.lib / "*"),
            _storage_tool_class(self.lib),
            "format",
            "--config",
            str(self.config_file),
            "--cluster-id",
            self.cluster_id,
            "--ignore-formatted",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.workdir)
        with open(self.log_file, "a") as out:
            out.write(f"\n==== format: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0:
            raise BrokerError(
                f"formatting the KRaft storage in {self.data_dir} failed (exit {proc.returncode}):\n"
                + "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
            )

    def _read_pid(self) -> int | None:
        try:
            return int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_our_process(self, pid: int) -> bool:
        """True when pid is alive and is a kafka.Kafka run on this workdir's config."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):
                return False
            return True  # no /proc (macOS): trust the pid file
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return False
        except (OSError, IndexError):
            pass
        return b"kafka.Kafka" in cmdline and str(self.config_file).encode() in cmdline

    def _signal(self, pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._is_our_process(pid):
                return True
            time.sleep(0.1)
        return False

    def _exit_code(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def _forget(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.wait(0)
        with contextlib.suppress(FileNotFoundError):
            self._pid_file.unlink()


class _Silent:
    """A 'logger' for librdkafka that drops its lines (connection refused while starting)."""

    def log(self, *args, **kwargs) -> None:
        pass


_SILENT = _Silent()


# --------------------------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python tools/kafka/broker.py",
        description="A local single-node Kafka broker (KRaft) for atomfast's tests.",
    )
    p.add_argument("command", choices=["start", "stop", "status", "kill", "restart"])
    p.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="default: %(default)s")
    p.add_argument("--port", type=int, default=None, help="client port (default: a free one, then kept)")
    p.add_argument("--heap", default="512m")
    p.add_argument("--timeout", type=float, default=120.0, help="start-up timeout in seconds")
    p.add_argument("--fresh", action="store_true", help="start: wipe the workdir's data first")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    opts = dict(heap=a.heap, start_timeout=a.timeout, die_with_parent=False)
    broker = KafkaBroker(a.workdir, None if a.fresh else a.port, **opts)
    try:
        if a.command == "start":
            if a.fresh:
                broker.wipe()
                broker = KafkaBroker(a.workdir, a.port, **opts)
            if broker.is_running():
                print(f"already running: pid {broker.pid}, bootstrap {broker.bootstrap}")
                return 0
            t0 = time.monotonic()
            broker.start()
            print(f"started: pid {broker.pid}, bootstrap {broker.bootstrap} "
                  f"(Kafka {_kafka_version(broker.lib)}, {time.monotonic() - t0:.1f}s); "
                  f"export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}")
            # The process outlives us; `stop` finds it through the pid file.
            broker._proc = None
        elif a.command == "stop":
            was = broker.pid
            broker.stop()
            print(f"stopped pid {was}" if was else "not running")
        elif a.command == "kill":
            was = broker.pid
            broker.kill()
            print(f"killed pid {was}" if was else "not running")
        elif a.command == "restart":
            broker.restart()
            print(f"restarted: pid {broker.pid}, bootstrap {broker.bootstrap}")
            broker._proc = None
        else:
            if broker.is_running():
                print(f"running: pid {broker.pid}, bootstrap {broker.bootstrap}, workdir {broker.workdir}")
            else:
                print(f"not running (workdir {broker.workdir})")
                return 3
    except BrokerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
