"""The command line's habits (issue "A product a new user can run", item 8): ``--version``,
global flags after the command too, invalid log levels refused, empty lists refused, symbol
errors that suggest the normalised form, ``consume`` that knows its topics, and a summary that
stays out of the data stream when events go to stdout."""
from __future__ import annotations

import json

import pytest

from atomfast import __version__
from atomfast.exchanges.kraken import KrakenSpotV1Scheme
from atomfast.testing import Harness, capture_instruments, fixture_path, run_cli

KRAKEN_48 = "cryptofeed/KRAKEN.ws.48.0"


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"atomfast {__version__}"


def test_log_level_before_or_after_the_command_and_refused_when_invalid(tmp_path):
    cap = tmp_path / "KRAKEN.ws.48.0"  # no listing beside it: a WARNING says symbols are guessed
    cap.write_bytes(fixture_path(KRAKEN_48).read_bytes())
    loud = run_cli("replay", cap, "--exchange", "kraken", "--sink", "null")
    after = run_cli("replay", cap, "--exchange", "kraken", "--sink", "null", "--log-level", "error")
    before = run_cli("--log-level", "ERROR", "replay", cap, "--exchange", "kraken", "--sink", "null")
    assert loud.returncode == after.returncode == before.returncode == 0
    assert "WARNING atomfast.replay: kraken: capture holds no instrument listing" in loud.stderr
    assert after.stderr == before.stderr == ""
    for args in (["--log-level", "verbose", "replay", "x", "--exchange", "kraken"],
                 ["replay", "x", "--exchange", "kraken", "--log-level", "verbose"]):
        r = run_cli(*args)
        assert r.returncode == 2
        assert "invalid log level 'verbose': one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in r.stderr


@pytest.mark.parametrize("flag, what", [("--symbols", "symbol"), ("--channels", "channel")])
def test_an_empty_list_is_an_error(flag, what):
    r = run_cli("run", "--exchange", "kraken", flag, " , ")
    assert r.returncode == 2
    assert f"argument {flag}: empty: name at least one {what}" in r.stderr


def test_unknown_symbol_suggests_the_normalised_form():
    listing = capture_instruments("cryptofeed/KRAKEN.ws.50.0", KrakenSpotV1Scheme)
    h = Harness(KrakenSpotV1Scheme, listing)
    for given, hint in (("btc-usd", "did you mean BTC-USD\\?"), ("xbt/usd", "did you mean BTC-USD\\?"),
                        ("BTC-USX", "did you mean BTC-USD")):
        h.scheme.symbols = [given]
        with pytest.raises(ValueError, match=f"unknown symbol '{given}'; {hint}"):
            h.scheme.native_symbols()
    h.scheme.symbols = ["NOPE-ZZZ"]
    with pytest.raises(ValueError) as err:
        h.scheme.native_symbols()
    assert str(err.value) == "kraken: unknown symbol 'NOPE-ZZZ'"


def test_consume_knows_its_topics(tmp_path):
    r = run_cli("consume", "foo", "--from", "files", "--data-dir", tmp_path)
    assert r.returncode == 2
    assert "unknown topic 'foo'; the topics are lob, lob_l3, trades" in r.stderr


def test_replay_to_stdout_keeps_the_summary_out_of_the_events(tmp_path):
    r = run_cli("replay", fixture_path(KRAKEN_48), "--exchange", "kraken", "--sink", "stdout",
                "--summary", tmp_path / "summary.json")
    assert r.returncode == 0
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert {ln["topic"] for ln in lines} == {"status", "trades"} and len(lines) == 21
    said = [ln for ln in r.stderr.splitlines() if ln.startswith("summary: ")]
    assert len(said) == 1
    summary = json.loads(said[0][len("summary: "):])
    assert (summary["frames"], summary["events"]) == (49, {"status": 11, "trades": 10})
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_config_names_the_settings_file_from_any_directory(tmp_path):
    """``--config PATH`` (or ATOMFAST_CONFIG) names the settings file; a named file must exist;
    with none, the exchange's built-in default symbols are used from any directory (what the
    feed subscribes, as ``record`` writes it down)."""
    from atomfast.capture import SENT, open_capture
    from atomfast.testing import SimProcess

    ini = tmp_path / "my.ini"
    ini.write_text("[kraken]\nsymbols = ETH-USD\n")
    missing = run_cli("--config", tmp_path / "nope.ini", "replay", fixture_path(KRAKEN_48), "--exchange", "kraken")
    assert missing.returncode == 2
    assert f"the config file {tmp_path / 'nope.ini'} does not exist (--config / ATOMFAST_CONFIG)" in missing.stderr

    def subscribed(*args, env=None) -> set[str]:
        out = tmp_path / f"rec{len(list(tmp_path.iterdir()))}.txt"
        r = run_cli("record", "--exchange", "kraken", "--endpoint", sim.url, "--out", out, "--channels", "trades",
                    "--max-frames", 3, *args, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        pairs = set()
        for f in open_capture(out).frames():
            if f.kind == SENT:
                pairs |= set(json.loads(f.data)["pair"])
        return pairs

    import os

    with SimProcess(fixture_path("cryptofeed/KRAKEN.ws.50.0"), "--pace", "fast") as sim:
        assert subscribed() == {"XBT/USD", "ETH/USD"}  # KrakenSpotV1Scheme's default_symbols
        assert subscribed("--config", ini) == {"ETH/USD"}
        assert subscribed(env={**os.environ, "ATOMFAST_CONFIG": str(ini)}) == {"ETH/USD"}


def test_start_waits_for_the_network(tmp_path):
    """No network at start: the listing is asked again with the backoff (a WARNING each time)
    until it answers; then the feed starts and its first status says how long it waited.
    ``--max-retries`` bounds the wait; SIGTERM during it ends with one line, no traceback."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    from atomfast.testing import ROOT, SimProcess, child_env

    with socket.socket() as s:  # a port nobody listens on yet: the simulator comes up there later
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}"
    bounded = run_cli("run", "--exchange", "kraken", "--scheme", "v1", "--endpoint", url, "--max-retries", 2,
                      "--backoff", 0.01, timeout=60)
    assert bounded.returncode == 1 and "Traceback" not in bounded.stderr
    assert bounded.stderr.count("waiting for the network: attempt") == 2
    assert "cannot fetch the instrument listing" in bounded.stderr.splitlines()[-1]

    proc = subprocess.Popen([sys.executable, "-m", "atomfast.cli", "run", "--exchange", "kraken", "--scheme", "v1",
                             "--endpoint", url, "--backoff", "0.2", "--sink", "stdout", "--max-frames", "50"],
                            cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # a few failed attempts
    with SimProcess(fixture_path("cryptofeed/KRAKEN.ws.50.0"), "--pace", "fast", "--port", port):
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-2000:]
    assert "waiting for the network: attempt 1" in err and "Traceback" not in err
    statuses = [json.loads(ln) for ln in out.splitlines() if json.loads(ln)["topic"] == "status"]
    first = statuses[0]
    assert (first["symbol"], first["status"]) == ("", "disconnected")
    assert first["reason"].startswith("waited ") and "for the network at start" in first["reason"]
    assert statuses[1]["status"] == "connected"

    proc = subprocess.Popen([sys.executable, "-m", "atomfast.cli", "run", "--exchange", "kraken", "--scheme", "v1",
                             "--endpoint", url, "--backoff", "5"], cwd=ROOT, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "Traceback" not in err
    assert "stopped while waiting for the network" in err.splitlines()[-1]


def test_a_kafka_sink_waiting_for_its_broker_keeps_duration_and_signals(tmp_path):
    """``run --sink kafka`` with no broker at KAFKA_BOOTSTRAP_SERVERS: a WARNING says what the
    client meets while it waits (up to 30 s), and ``--duration`` or SIGINT end the wait with one
    line, no traceback (they used to be ignored for those 30 s)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from atomfast.testing import ROOT, SimProcess, child_env

    with socket.socket() as s:  # a port nobody listens on: no broker
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": dead}
    with SimProcess(fixture_path("cryptofeed/KRAKEN.ws.50.0"), "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", "kraken", "--endpoint", sim.url, "--sink", "kafka", "--duration", 5,
                    "--data-dir", tmp_path, env=env, timeout=60)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert f"kafka: no broker answers at {dead} yet" in r.stderr
        assert r.stderr.splitlines()[-1] == ("atomfast run: --duration 5 s passed while the kafka sink was opening "
                                             "(waiting for its broker?); nothing was collected")

        proc = subprocess.Popen([sys.executable, "-m", "atomfast.cli", "run", "--exchange", "kraken", "--endpoint",
                                 sim.url, "--sink", "kafka", "--data-dir", str(tmp_path)], cwd=ROOT,
                                env=child_env(base=env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4.0)  # the listing fetched, the sink waiting
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("atomfast run: stopped while the kafka sink was opening")
