#!/usr/bin/env python3
"""A real Schema Registry speaking the Confluent REST API, without Docker: Apicurio Registry.

Apicurio Registry 2.6 (Apache-2.0; Red Hat's registry) serves the Confluent Schema Registry
API at ``/apis/ccompat/v7``; atomfast, ``atomfast consume`` and Confluent's own clients
(``confluent_kafka.schema_registry.SchemaRegistryClient``) talk to it as to Confluent's. Its
distribution is published on Maven Central:

    io.apicurio:apicurio-registry-app:2.6.13.Final, classifier ``all``, type ``tar.gz`` (142 MB)

which holds ``apicurio-registry-app-2.6.13.Final-runner.jar`` and its ``lib/``; it runs on
Java 17 with the in-memory storage (H2). (Apicurio 3.x needs Java 21; Confluent's registry is
not on Maven Central; Karapace is not on PyPI: this is what can be fetched here.)

Used by the tests (``tests/test_registry.py``) and by hand::

    python tools/registry/registry.py start [--port N]     # prints SCHEMA_REGISTRY_URL=...
    python tools/registry/registry.py status
    python tools/registry/registry.py stop

and from Python::

    registry = ApicurioRegistry(workdir)
    registry.start()     # -> "http://127.0.0.1:PORT/apis/ccompat/v7" once it answers
    registry.url
    registry.stop()

The archive is downloaded once into ``tools/registry/lib/`` (git-ignored), checked against
the SHA-1 that Maven Central publishes beside it and the one pinned here, and unpacked.
"""
from __future__ import annotations

import argparse
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
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIB = HERE / "lib"
DEFAULT_WORKDIR = HERE / "run"
HOST = "127.0.0.1"

VERSION = "2.6.13.Final"
ARTIFACT = f"apicurio-registry-app-{VERSION}-all.tar.gz"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
URL = f"{MAVEN_CENTRAL}/io/apicurio/apicurio-registry-app/{VERSION}/{ARTIFACT}"
SHA1 = "28b56c85372e66e9ebcf569a31ad6b643e2bf33e"  # as published on Maven Central (.sha1)
RUNNER = f"apicurio-registry-app-{VERSION}-runner.jar"
CCOMPAT = "/apis/ccompat/v7"

log = logging.getLogger("atomfast.tools.registry")


class RegistryToolError(RuntimeError):
    """The registry could not be fetched, started or stopped; the message says why."""


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise RegistryToolError("java is not on PATH (and JAVA_HOME is unset): Apicurio Registry needs Java 17+")
    return java


def resolve(lib: Path = LIB, timeout: float = 900.0) -> Path:
    """The unpacked distribution in ``lib`` (downloaded and verified once). Returns the runner jar."""
    runner = lib / RUNNER
    if runner.is_file() and (lib / "lib").is_dir():
        return runner
    lib.mkdir(parents=True, exist_ok=True)
    with open(lib / ".resolve.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several test processes may start at once
        if runner.is_file() and (lib / "lib").is_dir():
            return runner
        archive = lib / ARTIFACT
        if not archive.is_file() or _sha1(archive) != SHA1:
            published = _get(URL + ".sha1", 60).decode().split()[0].strip()
            if published != SHA1:
                raise RegistryToolError(f"Maven Central publishes SHA-1 {published} for {ARTIFACT}, "
                                        f"not the pinned {SHA1}: refusing it")
            log.info("downloading Apicurio Registry %s (142 MB, once) from %s", VERSION, URL)
            t0 = time.monotonic()
            partial = archive.with_suffix(".part")
            with urllib.request.urlopen(URL, timeout=timeout) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
            digest = _sha1(partial)
            if digest != SHA1:
                partial.unlink()
                raise RegistryToolError(f"{URL}: SHA-1 {digest}, expected {SHA1}")
            partial.rename(archive)
            log.info("downloaded in %.0fs", time.monotonic() - t0)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                target = (lib / member.name).resolve()
                if not str(target).startswith(str(lib.resolve())):
                    raise RegistryToolError(f"{ARTIFACT}: member {member.name!r} escapes the directory")
            tar.extractall(lib)
        archive.unlink()  # the unpacked tree is what runs; keep the disk use to one copy
        if not runner.is_file():
            raise RegistryToolError(f"{ARTIFACT} holds no {RUNNER}")
    return runner


def _get(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryToolError(f"cannot fetch {url}: {exc}") from None


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ApicurioRegistry:
    """One registry process (in-memory storage) in ``workdir``, on ``port`` (a free one)."""

    def __init__(self, workdir: str | os.PathLike = DEFAULT_WORKDIR, port: int | None = None, *,
                 heap: str = "384m", start_timeout: float = 180.0, lib: str | os.PathLike = LIB,
                 die_with_parent: bool = True) -> None:
        self.workdir = Path(workdir).resolve()
        self.lib = Path(lib)
        self.heap = heap
        self.start_timeout = start_timeout
        self.die_with_parent = die_with_parent
        self.log_file = self.workdir / "registry.log"
        self._state_file = self.workdir / "registry.json"
        self._proc: subprocess.Popen | None = None
        state = self._load_state()
        self.port: int = port or state.get("port") or 0

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """SCHEMA_REGISTRY_URL: the base of its Confluent-compatible API."""
        return self.base + CCOMPAT

    @property
    def pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        pid = self._load_state().get("pid")
        if pid and _alive(pid):
            return pid
        return None

    def is_running(self) -> bool:
        return self.pid is not None

    def __enter__(self) -> "ApicurioRegistry":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float | None = None) -> str:
        if self.is_running():
            self.wait_ready(timeout)
            return self.url
        runner = resolve(self.lib)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        wrapper = []
        if self.die_with_parent and sys.platform == "linux" and shutil.which("setpriv"):
            wrapper = [shutil.which("setpriv"), "--pdeathsig", "TERM", "--"]
        cmd = wrapper + [
            _java(), f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dquarkus.http.port={self.port}", f"-Dquarkus.http.host={HOST}",
            "-Dquarkus.log.level=WARN", "-Dquarkus.log.category.\"io.quarkus\".level=INFO",
            "-jar", str(runner),
        ]
        with open(self.log_file, "ab") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(cmd)}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self._state_file.write_text(json.dumps({"port": self.port, "pid": self._proc.pid}) + "\n")
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        last = "no answer yet"
        while True:
            if not self.is_running():
                raise RegistryToolError(f"Apicurio Registry exited during start-up; last lines of "
                                        f"{self.log_file}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/subjects", timeout=2) as response:
                    json.loads(response.read())
                    return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise RegistryToolError(f"Apicurio Registry at {self.url} did not answer within "
                                        f"{timeout or self.start_timeout:.0f}s ({last}); last lines of "
                                        f"{self.log_file}:\n{self.log_tail()}")
            time.sleep(0.3)

    def stop(self, timeout: float = 20.0) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.1)
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.wait(5)
        self._proc = None

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return _alive(pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"

    def _load_state(self) -> dict:
        try:
            return json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/registry/registry.py",
                                description="A local Schema Registry (Apicurio, Confluent API) for atomfast.")
    p.add_argument("command", choices=["start", "stop", "status", "fetch"])
    p.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="default: %(default)s")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default: a free one, then kept)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    registry = ApicurioRegistry(a.workdir, a.port, die_with_parent=False)
    try:
        if a.command == "fetch":
            print(resolve())
        elif a.command == "start":
            if registry.is_running():
                print(f"already running: pid {registry.pid}; export SCHEMA_REGISTRY_URL={registry.url}")
                return 0
            t0 = time.monotonic()
            registry.start()
            print(f"started: pid {registry.pid} (Apicurio Registry {VERSION}, {time.monotonic() - t0:.1f}s); "
                  f"export SCHEMA_REGISTRY_URL={registry.url}")
            registry._proc = None  # outlives us; `stop` finds it through registry.json
        elif a.command == "stop":
            was = registry.pid
            registry.stop()
            print(f"stopped pid {was}" if was else "not running")
        else:
            if registry.is_running():
                print(f"running: pid {registry.pid}, SCHEMA_REGISTRY_URL={registry.url}")
            else:
                print("not running")
                return 3
    except RegistryToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
