"""The README's "Try it offline" block, run as written: the simulator in the background, the
collector against it, then what it wrote, read back. The commands are taken from the README
itself (the ```sh block under "## Try it offline"), so the README cannot drift from what works."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from atomfast.testing import ROOT, child_env, fixture_path


def readme_block(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, f"no sh block under {heading}"
    return [ln for ln in block.group(1).splitlines() if ln.strip()]


def atomfast_argv(line: str) -> list[str]:
    words = shlex.split(line)
    assert words[0] == "atomfast"
    return [sys.executable, "-m", "atomfast.cli", *words[1:]]


def test_try_it_offline_block_runs_as_written(tmp_path):
    fixture_path("cryptofeed/KRAKEN.ws.50.0")  # the block reads ../shared/fixtures
    lines = readme_block("Try it offline")
    assert len(lines) == 3 and lines[0].endswith(" &")
    env = child_env({"ATOMFAST_DATA_DIR": str(tmp_path / "data")})  # the user's ./data, kept out of the clone
    sim = subprocess.Popen(atomfast_argv(lines[0][:-2]), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        line = sim.stdout.readline()
        if not line.startswith("listening "):
            pytest.fail(f"simulate did not start (port 18999 taken?): {line!r} {sim.stderr.read()[-2000:]}")
        run = subprocess.run(atomfast_argv(lines[1]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=30)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    summary = json.loads([ln for ln in run.stderr.splitlines() if ln.startswith("summary: ")][-1][9:])
    assert summary["stopped"] == "duration" and summary["frames"] > 500
    assert summary["checksum_failed"] == 0 and summary["checksum_ok"] > 400 and summary["events"]["lob"] > 0
    consume = subprocess.run(atomfast_argv(lines[2]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert consume.returncode == 0, consume.stderr[-2000:]
    printed = [json.loads(ln) for ln in consume.stdout.splitlines()]
    assert len(printed) == 3 and {p["topic"] for p in printed} == {"lob"}
    assert all(p["exchange"] == "kraken" and p["side"] in ("buy", "sell") for p in printed)
    assert os.listdir(tmp_path / "data" / "lob")
