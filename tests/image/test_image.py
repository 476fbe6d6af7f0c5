"""The Docker image, built from the repository's unchanged ``Dockerfile`` and run here.

No Docker engine runs on these machines and no image registry answers: ``tools/image/build.py``
makes stand-ins for the official base images (debootstrap + buildah, cached in local
containers-storage) and builds the image with ``buildah bud --isolation chroot --network host``
(reused while the build context is unchanged). The containers run as ``docker run --network host``
would: the image's entrypoint, user (atomfast, uid 10001) and working directory (its home, which
holds no config.ini: the symbols are the package's own defaults).

* ``replay`` of a recorded capture mounted read-only: the exact summary of the host's replay.
* ``run --exchange kraken`` with no ``--symbols`` against ``atomfast simulate`` on the host, into
  the test session's Kafka broker; every event the run counted is read back from the topics.
  Its ``--metrics-host 0.0.0.0 --metrics-port P`` endpoint answers a client on ANOTHER network
  host (a network namespace made for the test, through a veth pair), as a published container
  port would be reached; and compose.yaml's healthcheck command, run in the image, passes.

Needs root, buildah and debootstrap (``.ci/run`` installs them); without them the tests skip,
and fail under CI. First build on a new machine: ~1 min for the stand-ins, ~1.5 min for the image.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from atomfast.testing import ROOT, SimProcess, cli_summary, fixture_path, fixtures_dir, in_ci, read_topics

pytestmark = pytest.mark.image

KRAKEN = "cryptofeed/KRAKEN.ws.50.0"
#: `atomfast replay ../shared/fixtures/cryptofeed/KRAKEN.ws.50.0 --exchange kraken` on the host
KRAKEN_REPLAY = {"frames": 2481, "events": {"lob": 6855, "spread": 460, "status": 13}, "checksum_ok": 2437,
                 "checksum_failed": 0, "gaps": 0, "resyncs": 0, "errors": 0, "error_kinds": {}, "reconnects": 0}


def _build_tool():
    spec = importlib.util.spec_from_file_location("atomfast_tools_image_build", ROOT / "tools" / "image" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _build_tool()


@pytest.fixture(scope="module")
def image() -> str:
    """atomfast:test, built here (or the cached build of the same context)."""
    problems = build.missing_tools()
    if problems:
        message = "the image test needs root, buildah and debootstrap: " + "; ".join(problems)
        if in_ci():
            pytest.fail(message + " (.ci/run installs them)")
        pytest.skip(message)
    t0 = time.monotonic()
    try:
        tag = build.ensure_image()
    except build.ImageError as exc:
        pytest.fail(f"building the image failed: {exc}")
    print(f"image {tag} ready in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return tag


def in_image(tag: str, args: list[str], *, mounts=(), env=None, timeout: float = 120,
             entrypoint: bool = True) -> subprocess.CompletedProcess:
    proc = build.run(args, tag=tag, mounts=mounts, env=env, entrypoint=entrypoint, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        build.cleanup(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _summary_of(text: str) -> dict:
    for line in reversed(text.splitlines()):
        line = line.removeprefix("summary: ")
        if line.startswith("{") and '"checksum_ok"' in line:
            return json.loads(line)
    raise AssertionError(f"no summary in the output:\n{text[-3000:]}")


def test_replay_a_capture_in_the_image(image):
    fixtures = fixtures_dir().resolve()
    fixture_path(KRAKEN)  # present (or skip / fail under CI)
    r = in_image(image, ["replay", f"/fixtures/{KRAKEN}", "--exchange", "kraken", "--sink", "null"],
                 mounts=[(str(fixtures), "/fixtures")])
    assert r.returncode == 0, r.stderr[-3000:]
    summary = _summary_of(r.stdout + "\n" + r.stderr)
    assert {k: summary[k] for k in KRAKEN_REPLAY} == KRAKEN_REPLAY


def test_the_entrypoint_is_this_checkouts_atomfast(image):
    """The entrypoint is the installed atomfast, with this checkout's flags."""
    r = in_image(image, ["--version"])
    assert r.returncode == 0 and r.stdout.startswith("atomfast "), (r.stdout, r.stderr)
    r = in_image(image, ["run", "--exchange", "kraken", "--help"])
    assert r.returncode == 0 and "--metrics-host" in r.stdout, r.stderr[-2000:]


# ------------------------------------------------------------------------------------------------
# another network host: a network namespace joined to this one by a veth pair


@contextlib.contextmanager
def other_host():
    """(address of this host as the other host sees it, run(argv) inside the other host)."""
    tag = uuid.uuid4().hex[:6]
    ns, here, there = f"afimg-{tag}", f"afi{tag}a", f"afi{tag}b"
    third = int(tag[:2], 16)
    fourth = (int(tag[2:4], 16) % 63) * 4
    host_addr, peer_addr = f"10.213.{third}.{fourth + 1}", f"10.213.{third}.{fourth + 2}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    try:
        ip("netns", "add", ns)
        ip("link", "add", here, "type", "veth", "peer", "name", there)
        ip("link", "set", there, "netns", ns)
        ip("addr", "add", f"{host_addr}/30", "dev", here)
        ip("link", "set", here, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{peer_addr}/30", "dev", there)
        ip("netns", "exec", ns, "ip", "link", "set", there, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
    except (OSError, subprocess.CalledProcessError) as exc:
        subprocess.run(["ip", "link", "del", here], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        detail = getattr(exc, "stderr", "") or exc
        pytest.fail(f"cannot make a network namespace for the other host (iproute2, root): {detail}")

    def run(argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)

    try:
        yield host_addr, run
    finally:
        subprocess.run(["ip", "link", "del", here], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _compose_healthcheck() -> list[str]:
    """The atomfast service's healthcheck `test` in compose.yaml (a flow list: JSON)."""
    text = (ROOT / "compose.yaml").read_text()
    service = text[text.index("\n  atomfast:"):]
    m = re.search(r"\n    healthcheck:\n(?:      #.*\n)*      test: (\[.*\])\n", service)
    assert m, "compose.yaml: the atomfast service has no healthcheck test"
    test = json.loads(m.group(1))
    assert test[0] == "CMD", test
    return test[1:]


@pytest.mark.kafka
def test_run_in_the_image_into_kafka(image, kafka_bootstrap):
    prefix = f"image-{uuid.uuid4().hex[:8]}."
    port = _free_port()
    health = _compose_healthcheck()
    assert "http://127.0.0.1:9108/metrics" in " ".join(health), health
    health = [a.replace(":9108/", f":{port}/") for a in health]
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
    frames = KRAKEN_REPLAY["frames"]
    with other_host() as (host_addr, elsewhere), SimProcess(fixture_path(KRAKEN), "--rate", "200") as sim:
        proc = build.run(["run", "--exchange", "kraken", "--endpoint", sim.url, "--sink", "kafka", "--no-status",
                          "--max-frames", str(frames), "--duration", "120",
                          "--metrics-port", str(port), "--metrics-host", "0.0.0.0"],
                         tag=image, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # while it runs (~12 s at 200 frames/s): the metrics from the other host, then the
            # compose healthcheck in a second container of the image
            url = f"http://{host_addr}:{port}/metrics"
            fetch = [sys.executable, "-c", f"import urllib.request; print(urllib.request.urlopen({url!r}, "
                                           f"timeout=3).read().decode())"]
            deadline = time.monotonic() + 60
            seen = None
            while time.monotonic() < deadline and proc.poll() is None:
                got = elsewhere(fetch)
                # the book's first events, not just the first frames (subscription answers and
                # statuses come first): the lob counter appears with the first lob event written
                if got.returncode == 0 and re.search(r'^atomfast_events_total\{[^}]*topic="lob"[^}]*\} [1-9]',
                                                     got.stdout, re.M):
                    seen = got.stdout
                    break
                time.sleep(0.2)
            if seen is None:
                if proc.poll() is None:
                    proc.kill()
                out, err = proc.communicate()
                pytest.fail(f"{url} never answered from the other host: {got.stderr[-1000:]}\n"
                            f"the run (exit {proc.returncode}): {err[-3000:]}")
            assert re.search(r'^atomfast_events_total\{[^}]*topic="lob"[^}]*\} \d', seen, re.M), seen
            checked = in_image(image, health, timeout=30, entrypoint=False)
            assert checked.returncode == 0, f"compose healthcheck failed: {checked.stderr[-2000:]}"
            out, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                out, err = proc.communicate()
            build.cleanup(proc)
    assert proc.returncode == 0, err[-3000:]
    summary = cli_summary(err)
    assert summary["frames"] == frames
    for key in ("checksum_ok", "checksum_failed", "gaps", "resyncs", "errors"):
        assert summary[key] == KRAKEN_REPLAY[key], (key, summary)
    events = summary["events"]
    assert events["lob"] == KRAKEN_REPLAY["events"]["lob"] and events["spread"] == KRAKEN_REPLAY["events"]["spread"]
    read = read_topics(kafka_bootstrap, [prefix + topic for topic in events])
    assert {topic: len(read[prefix + topic]) for topic in events} == events
