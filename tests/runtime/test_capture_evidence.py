"""Captures are evidence: what ``replay`` (and ``simulate``) do with a capture that is cut short,
holds lines that are no frames, belongs to another venue or is no capture at all, and the
settings files and directories a user can get wrong. Every case: one clear message naming the
file (and the line), a counted error, the right exit code, never a traceback."""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from atomfast.capture import BAD_LINE, RECV, TRUNCATED, CaptureError, open_capture
from atomfast.metrics import Metrics
from atomfast.replay import replay_capture
from atomfast.sinks.null import NullSink
from atomfast.testing import ROOT, SimProcess, child_env, fixture_path, run_cli

KRAKEN_50 = "cryptofeed/KRAKEN.ws.50.0"
KRAKEN_48 = "cryptofeed/KRAKEN.ws.48.0"
HB_SPOT = "hftbacktest/spot/btcusdt_20240808.gz"
BITSTAMP = "cryptofeed/BITSTAMP.ws.1.0"


def replay(path, exchange: str, **kw) -> Metrics:
    metrics = Metrics()
    replay_capture([path], exchange, NullSink(framing=None), metrics, **kw)
    return metrics


def no_traceback(r) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr[-3000:]


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def complete_lines(data: bytes) -> list[bytes]:
    """The whole lines an incomplete gzip stream holds (zlib directly: an independent reader)."""
    text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    return text.split(b"\n")[:-1]


# --- a capture cut short -------------------------------------------------------------------------


def test_truncated_gzip_replays_up_to_the_break(tmp_path):
    head = b"".join(gzip.open(fixture_path(HB_SPOT)).readlines()[:3000])
    whole = gzip.compress(head)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    lines = complete_lines(cut.read_bytes())
    recv = [ln for ln in lines if not ln.split(b" ", 1)[1].startswith(b'{"lastUpdateId"')]
    r = run_cli("replay", cut, "--exchange", "binance", "--sink", "null")
    no_traceback(r)
    assert r.returncode == 0
    summary = last_json(r.stdout)
    # every whole line it holds, and the last, partial one (the gzip reader yields what it
    # decompressed before the stream ended: cut short, it is not delivered)
    assert summary["frames"] in (len(recv), len(recv) + 1)
    assert summary["error_kinds"] == {TRUNCATED: 1}
    warnings = [ln for ln in r.stderr.splitlines() if TRUNCATED in ln]
    assert len(warnings) == 1 and str(cut) in warnings[0] and "line" in warnings[0]


def test_text_capture_cut_in_the_middle_of_a_line(tmp_path):
    original = fixture_path(KRAKEN_50).read_bytes()
    lines = original.split(b"\n")
    keep = b"\n".join(lines[:40]) + b"\n" + lines[40][: len(lines[40]) // 2]
    cut = tmp_path / "KRAKEN.ws.50.0"
    cut.write_bytes(keep)
    m = replay(cut, "kraken")
    whole = [ln for ln in lines[:40] if ln[:1].isdigit()]
    assert m.frames == len(whole)
    assert dict(m.errors.counts) == {TRUNCATED: 1}
    assert m.checksum_failed == 0


def test_killed_recorder_leaves_a_capture_that_replays(tmp_path):
    """``record --out x.gz`` killed with SIGKILL: the gzip has no end marker; replay reads every
    frame it holds, warns once, exits 0."""
    out = tmp_path / "killed.gz"
    with SimProcess(fixture_path(KRAKEN_50), "--rate", 400, "--loop") as sim:
        proc = subprocess.Popen([sys.executable, "-m", "atomfast.cli", "record", "--exchange", "kraken", "--endpoint",
                                 sim.url, "--out", str(out), "--symbols", "BTC-USD,ETH-USD", "--channels", "lob"],
                                cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 300_000):
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    data = out.read_bytes()
    with pytest.raises(EOFError):
        gzip.decompress(data)  # no end marker: what a killed process leaves
    recorded = [ln for ln in complete_lines(data)[1:] if ln.split(b" ", 3)[2:3] == [b"recv"]]
    assert len(recorded) > 50
    r = run_cli("replay", out, "--exchange", "kraken", "--sink", "null")
    no_traceback(r)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = last_json(r.stdout)
    assert summary["frames"] in (len(recorded), len(recorded) + 1)
    assert summary["checksum_failed"] == 0
    assert summary["error_kinds"].get(TRUNCATED) == 1


# --- lines that are no frames --------------------------------------------------------------------


def test_garbage_lines_are_each_counted(tmp_path):
    """Five lines that are no frames inserted into a recorded capture: each is counted (four are
    no frame at all, one is a received frame that is no JSON), and the capture's own frames give
    exactly the clean replay's events."""
    src = fixture_path(BITSTAMP)
    lines = src.read_bytes().split(b"\n")
    garbage = [b"garbage line", b"12: not json", b"b'xx", b"1234.5: b'\\x00", b"wss://x <- nope"]
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / src.name).write_bytes(b"\n".join(lines[:100] + garbage + lines[100:]))
    for comp in src.parent.glob("BITSTAMP.*"):
        if ".ws." not in comp.name:
            (folder / comp.name).write_bytes(comp.read_bytes())
    clean = replay(src, "bitstamp")
    dirty = replay(folder / src.name, "bitstamp")
    assert dict(dirty.errors.counts) == {BAD_LINE: 4, "bitstamp: malformed JSON": 1}
    assert dirty.frames == clean.frames + 1
    assert dirty.events == clean.events and dirty.gaps == 0


# --- the wrong venue -----------------------------------------------------------------------------


@pytest.mark.parametrize("capture, exchange, says", [
    ("cryptofeed/GEMINI.ws.1.0", "kraken", "recorded from api.gemini.com (gemini's), which is not kraken's"),
    ("cryptofeed/BINANCE.ws.1.0", "binance-futures", "recorded from stream.binance.com (binance's)"),
    (HB_SPOT, "binance-futures", "its frames are another venue's (a spot depth update (no pu))"),
    ("hftbacktest/cm/btcusd_perp_20240808.gz", "binance-futures", "(a COIN-M depth update (it has ps))"),
    ("hftbacktest/usdm/btcusdt_20240808.gz", "binance", "(a futures depth update (it has pu))"),
])
def test_another_venues_capture_is_refused(capture, exchange, says, tmp_path):
    r = run_cli("replay", fixture_path(capture), "--exchange", exchange, "--data-dir", tmp_path / "lake")
    no_traceback(r)
    assert r.returncode == 2
    assert says in r.stderr and "--force" in r.stderr
    assert not (tmp_path / "lake").exists()  # refused before anything was written


def test_force_replays_it_anyway():
    r = run_cli("replay", fixture_path(KRAKEN_48), "--exchange", "kraken", "--sink", "null")
    assert r.returncode == 0
    m = Metrics()
    replay_capture([fixture_path(HB_SPOT)], "binance-futures", NullSink(framing=None), m, max_frames=500,
                   force=True)
    assert m.frames == 500


def test_own_hosts_of_other_years_are_the_venues():
    """Captures recorded from hosts the venue used then (api.bitfinex.com, www.bitmex.com,
    ws-feed.pro.coinbase.com) are still its own: the exact rows of tests/test_captures.py replay."""
    for capture, exchange in (("cryptofeed/BITFINEX.ws.11.0", "bitfinex"), ("cryptofeed/BITMEX.ws.1.0", "bitmex"),
                              ("cryptofeed/COINBASE.ws.28.0", "coinbase")):
        assert replay(fixture_path(capture), exchange).frames > 0


def test_record_header_names_its_exchange(tmp_path):
    rec = tmp_path / "x.rec"
    rec.write_text("#atomfast-capture 1 bitstamp\n1 0 open ws://127.0.0.1:9/\n2 0 recv {}\n")
    with pytest.raises(CaptureError, match="was recorded from bitstamp, not kraken"):
        replay(rec, "kraken")


# --- no capture at all ---------------------------------------------------------------------------


def test_files_that_are_no_capture(tmp_path):
    binary = tmp_path / "image.bin"
    binary.write_bytes(bytes(range(256)) * 40)
    text = tmp_path / "notes.txt"
    text.write_text("some notes\nnot a capture\n")
    empty = tmp_path / "empty.0"
    empty.write_bytes(b"")
    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_text("1 {}\n")
    cases = [
        (binary, 2, f"{binary} is not a capture: its first line is none of the known formats"),
        (text, 2, f"{text} is not a capture"),
        (tmp_path, 2, f"{tmp_path} is a directory, not a capture file"),
        (tmp_path / "missing.gz", 2, "does not exist"),
        (not_gzip, 2, f"{not_gzip} is not a capture: cannot read it as gzip text"),
        (empty, 1, f"{empty} holds no frame to replay"),
    ]
    for path, code, says in cases:
        r = run_cli("replay", path, "--exchange", "kraken", "--sink", "null")
        no_traceback(r)
        assert r.returncode == code, (path, r.stderr)
        assert says in r.stderr, (path, r.stderr)
    r = run_cli("simulate", binary, "--port", 0, timeout=30)
    no_traceback(r)
    assert r.returncode == 2 and f"{binary} is not a capture" in r.stderr


def test_every_frame_failing_exits_1(tmp_path):
    cap = tmp_path / "KRAKEN.ws.1.0"
    cap.write_text("wss://ws.kraken.com <-> 1600000000.0\n1600000000.1: {oops\n1600000000.2: [1,2\n")
    r = run_cli("replay", cap, "--exchange", "kraken", "--sink", "null")
    no_traceback(r)
    assert r.returncode == 1
    assert last_json(r.stdout)["frames"] == 2
    assert f"every one of the 2 frames of {cap} failed to decode as kraken" in r.stderr


# --- settings a user can get wrong ---------------------------------------------------------------


def test_data_dir_that_is_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = run_cli("replay", fixture_path(KRAKEN_48), "--exchange", "kraken", "--data-dir", afile)
    no_traceback(r)
    assert r.returncode == 2
    assert f"the data directory {afile} is a file, not a directory" in r.stderr


@pytest.mark.parametrize("name", ["config.ini", "keys/.env"])
def test_settings_file_that_is_not_utf8(name, tmp_path):
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"[atomfast]\nDATA_DIR = x\n\xff\xfe\n" if name == "config.ini" else b"K=\xff\n")
    r = subprocess.run([sys.executable, "-m", "atomfast.cli", "replay", str(fixture_path(KRAKEN_48)), "--exchange",
                        "kraken", "--sink", "null"], cwd=tmp_path, env=child_env(), capture_output=True, text=True,
                       timeout=60)
    no_traceback(r)
    assert r.returncode == 2
    assert f"{name} is not UTF-8 text" in r.stderr


def test_open_capture_names_the_file():
    with pytest.raises(CaptureError, match=r"is a directory"):
        open_capture(Path(os.sep))
    cap = open_capture(fixture_path(KRAKEN_48))
    assert cap.formats == ["cryptofeed"] and cap.urls == ["wss://ws.kraken.com"]
    assert sum(f.kind == RECV for f in cap.frames()) == 49
