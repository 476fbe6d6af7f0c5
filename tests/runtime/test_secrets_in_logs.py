"""Secrets never reach a log (DESIGN.md: Settings; issue 14, item 5).

Every secret setting is set to a unique marker: KAFKA_SASL_KEY / KAFKA_SASL_SECRET,
SCHEMA_REGISTRY_API_KEY / SCHEMA_REGISTRY_API_SECRET, credentials inside SCHEMA_REGISTRY_URL, the
control token ATOMFAST_RPC_TOKEN, Coinbase's API key, secret and passphrase. Real commands run at
DEBUG (every logger, librdkafka's lines included) into the failures that print settings: a broker
that is not there, a broker that does not speak SASL, a registry that is not there, wrong control
tokens, a signed subscription. Every line of stdout, stderr and every file the run writes beside
them is searched for every marker (and for its base64 form, as in an HTTP Basic header): none
may appear.
"""
from __future__ import annotations

import base64
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from atomfast.testing import ROOT, SimProcess, fixture_path, serve_env

RUN_FOR = 6  # s each `run` collects (bounded by --duration); nothing is timed


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _markers() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "KAFKA_SASL_KEY": f"sasl-key-{tag}",
        "KAFKA_SASL_SECRET": f"sasl-secret-{tag}",
        "SCHEMA_REGISTRY_API_KEY": f"registry-key-{tag}",
        "SCHEMA_REGISTRY_API_SECRET": f"registry-secret-{tag}",
        "ATOMFAST_RPC_TOKEN": f"rpc-token-{tag}",
        "COINBASE_API_KEY": f"coinbase-key-{tag}",
        "COINBASE_API_SECRET": base64.b64encode(f"coinbase-secret-{tag}".encode()).decode(),
        "COINBASE_API_PASSPHRASE": f"coinbase-pass-{tag}",
        "URL_USER": f"url-user-{tag}",
        "URL_PASSWORD": f"url-password-{tag}",
    }


def _needles(markers: dict[str, str]) -> dict[str, str]:
    out = dict(markers)
    out["COINBASE_API_SECRET (decoded)"] = base64.b64decode(markers["COINBASE_API_SECRET"]).decode()
    out["registry Basic auth"] = base64.b64encode(
        f"{markers['SCHEMA_REGISTRY_API_KEY']}:{markers['SCHEMA_REGISTRY_API_SECRET']}".encode()).decode()
    out["URL Basic auth"] = base64.b64encode(f"{markers['URL_USER']}:{markers['URL_PASSWORD']}".encode()).decode()
    return out


def _env(markers: dict[str, str], bootstrap: str, registry: str, **extra: str) -> dict:
    env = serve_env(bootstrap, f"sec-{uuid.uuid4().hex[:6]}.")
    env.update({k: v for k, v in markers.items() if not k.startswith("URL_")})
    env["SCHEMA_REGISTRY_URL"] = registry
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _grep(texts: dict[str, str], markers: dict[str, str]) -> list[str]:
    """(where, secret name, line) of every line holding a marker."""
    found = []
    for where, text in texts.items():
        for n, line in enumerate(text.splitlines(), 1):
            for name, needle in _needles(markers).items():
                if needle in line:
                    found.append(f"{where}:{n}: {name}: {line[:300]}")
    return found


def _run(cmd: list[str], env: dict, cwd: Path, timeout: float = 120.0, interrupt_after: float | None = None):
    """stdout, stderr of one command (SIGINT after ``interrupt_after`` s, as Ctrl-C would)."""
    proc = subprocess.Popen([sys.executable, "-m", "atomfast.cli", "--log-level", "DEBUG", *cmd], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        if interrupt_after is not None:
            try:
                out, err = proc.communicate(timeout=interrupt_after)
                return out, err
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def _files(d: Path) -> dict[str, str]:
    """Every text file written under ``d`` (logs, data files read as bytes, decoded loosely)."""
    out = {}
    for p in d.rglob("*"):
        if p.is_file():
            out[str(p.relative_to(d))] = p.read_bytes().decode("utf-8", "replace")
    return out


@pytest.fixture
def sim():
    s = SimProcess(fixture_path("cryptofeed/KRAKEN.ws.50.0"), "--loop")
    try:
        yield s
    finally:
        s.close()


def _assert_clean(texts: dict[str, str], markers: dict[str, str]) -> None:
    assert sum(len(t.splitlines()) for t in texts.values()) > 0
    leaks = _grep(texts, markers)
    assert leaks == [], "\n".join(leaks)


def test_run_with_credentials_against_a_missing_broker_and_registry(sim, tmp_path):
    """`run --sink kafka` at DEBUG, the broker and the registry unreachable (credentials in the
    registry URL too): the errors name hosts, never a key, secret or password."""
    markers = _markers()
    dead = _free_port()
    registry = f"http://{markers['URL_USER']}:{markers['URL_PASSWORD']}@127.0.0.1:{_free_port()}"
    env = _env(markers, f"127.0.0.1:{dead}", registry)
    out, err = _run(["run", "--exchange", "kraken", "--endpoint", sim.url, "--sink", "kafka", "--duration",
                     str(RUN_FOR), "--data-dir", str(tmp_path / "data")], env, tmp_path, interrupt_after=RUN_FOR + 30)
    texts = {"stdout": out, "stderr": err, **_files(tmp_path)}
    assert f"127.0.0.1:{dead}" in err or "127.0.0.1" in err, err[-2000:]  # the failure was reported
    _assert_clean(texts, markers)


def test_run_with_sasl_against_a_broker_without_sasl(kafka_bootstrap, sim, tmp_path):
    """SASL_SSL to a plaintext broker: librdkafka's handshake errors, at DEBUG, carry no
    credential."""
    markers = _markers()
    env = _env(markers, kafka_bootstrap, "")
    env.pop("SCHEMA_REGISTRY_URL")
    out, err = _run(["run", "--exchange", "kraken", "--endpoint", sim.url, "--sink", "kafka", "--duration",
                     str(RUN_FOR)], env, tmp_path, interrupt_after=RUN_FOR + 30)
    _assert_clean({"stdout": out, "stderr": err, **_files(tmp_path)}, markers)


@pytest.mark.parametrize("setup", ["no broker", "broker without SASL", "no registry"])
def test_serve_with_credentials_that_cannot_connect(kafka_bootstrap, tmp_path, setup):
    """`serve` at DEBUG: the cluster's own Kafka clients (not the sink's) against a broker that
    is not there or does not speak SASL, and the sink against a registry that is not there
    (credentials in its URL): serve says why it cannot serve, with no credential."""
    markers = _markers()
    registry = f"http://{markers['URL_USER']}:{markers['URL_PASSWORD']}@127.0.0.1:{_free_port()}"
    broker = f"127.0.0.1:{_free_port()}" if setup == "no broker" else kafka_bootstrap
    env = _env(markers, broker, registry)
    args = ["serve", "--port", "0", "--hostname", "sec", "--cluster", f"sec{uuid.uuid4().hex[:6]}"]
    if setup != "no registry":
        env.pop("SCHEMA_REGISTRY_URL")
        args += ["--sink", "null"]
    out, err = _run(args, env, tmp_path, timeout=120, interrupt_after=90)
    assert err.strip(), out  # it said why it could not serve
    _assert_clean({"stdout": out, "stderr": err, **_files(tmp_path)}, markers)


def test_serve_with_a_token_refusing_wrong_ones(kafka_bootstrap, tmp_path):
    """`serve` at DEBUG with the token and the registry's credentials set, refusing calls that
    carry other markers as tokens: neither the token nor the wrong ones appear."""
    grpc = pytest.importorskip("grpc")
    from atomfast.control import level4_pb2 as pb
    from atomfast.control import level4_pb2_grpc as pb_grpc

    markers = _markers()
    registry = f"http://{markers['URL_USER']}:{markers['URL_PASSWORD']}@127.0.0.1:{_free_port()}"
    env = _env(markers, kafka_bootstrap, registry)
    for name in ("KAFKA_SASL_KEY", "KAFKA_SASL_SECRET"):  # the test broker has no SASL: serve must reach it
        env.pop(name)
    guess = f"guess-{markers['ATOMFAST_RPC_TOKEN']}x"
    markers["a wrong token"] = guess
    proc = subprocess.Popen([sys.executable, "-m", "atomfast.cli", "--log-level", "DEBUG", "serve", "--port", "0",
                             "--hostname", "sec", "--cluster", f"sec{uuid.uuid4().hex[:6]}", "--sink", "null"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=open(tmp_path / "serve.err", "w"),
                            text=True)
    out = ""
    try:
        deadline = time.monotonic() + 90
        line = ""
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            out += line
            if line.startswith("listening "):
                break
        assert line.startswith("listening "), (out, (tmp_path / "serve.err").read_text()[-3000:])
        address = line.split()[1]
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.ControlStub(channel)
            for metadata in (None, [("authorization", f"Bearer {guess}")], [("x-atomfast-token", guess)]):
                with pytest.raises(grpc.RpcError) as e:
                    stub.ListNodes(pb.ListNodesRequest(), timeout=30, metadata=metadata)
                assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
            auth = [("authorization", f"Bearer {markers['ATOMFAST_RPC_TOKEN']}")]
            assert [n.name for n in stub.ListNodes(pb.ListNodesRequest(), timeout=30, metadata=auth).nodes] == ["sec"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        out += rest or ""
    texts = {"stdout": out, **_files(tmp_path)}
    assert "unauthenticated call" in texts["serve.err"]
    _assert_clean(texts, markers)


def test_ctl_with_a_token_against_no_server(tmp_path):
    markers = _markers()
    env = _env(markers, "127.0.0.1:9", "")
    out, err = _run(["ctl", "--server", f"127.0.0.1:{_free_port()}", "--timeout", "3", "nodes"], env, tmp_path)
    assert "UNAVAILABLE" in err
    _assert_clean({"stdout": out, "stderr": err}, markers)


def test_signed_coinbase_subscription_at_debug(tmp_path):
    """Coinbase's signed level-3 subscription at DEBUG, against the recorded Coinbase session."""
    markers = _markers()
    sim = SimProcess(fixture_path("cryptofeed/COINBASE.ws.28.0"), "--loop")
    try:
        env = _env(markers, "", "")
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL"):
            env.pop(name)
        out, err = _run(["run", "--exchange", "coinbase", "--endpoint", sim.url, "--channels", "lob,lob_l3",
                         "--sink", "stdout", "--duration", str(RUN_FOR)], env, tmp_path, interrupt_after=RUN_FOR + 30)
    finally:
        sim.close()
    _assert_clean({"stdout": out, "stderr": err, **_files(tmp_path)}, markers)


@pytest.mark.parametrize("bad", ["KAFKA_SASL_MECHANISM=NOPE", "RPC_PORT=x", "KAFKA_SASL_KEY="])
def test_settings_errors_name_the_setting_not_the_secret(tmp_path, bad):
    """A bad setting beside the secrets (or a key missing its secret): the message names the
    setting and shows no secret."""
    markers = _markers()
    name, _, value = bad.partition("=")
    env = _env(markers, "127.0.0.1:9", "", **{name: value})
    if name == "KAFKA_SASL_KEY":
        env.pop(name)
    out, err = _run(["run", "--exchange", "kraken", "--sink", "kafka", "--duration", "1"], env, tmp_path, timeout=60)
    assert err.strip()
    _assert_clean({"stdout": out, "stderr": err}, markers)
    assert name in err, err[-2000:]
