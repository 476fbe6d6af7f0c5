"""Chaos: `atomfast run` against `atomfast simulate --faults ...`, one case per venue family.

Each case serves a real capture with a seeded fault mix (drops, a stall, garbage, truncated,
duplicated and reordered frames, failing and slow REST, refused connections), runs ``run
--sink stdout`` for a bounded number of frames and checks, from the simulator's fault log
(``--fault-log``: one JSON line per injected fault, ``at`` = the ordinal of the frame it
concerns) and the run's events and summary:

- every fault of a kind that must be seen is seen: each drop is a ``disconnected`` status with
  the server's reason and a reconnect; the stall is a ``disconnected`` "silent for ..." (the
  watchdog); each garbage or truncated frame is exactly one counted error; each 429/5xx snapshot
  answer is one counted "rest error"; a refused connection is one more reconnect attempt;
- accounting: the frames the run counted are exactly the first ``--max-frames`` the simulator
  sent, and ``errors`` (= the sum of ``error_kinds``) is exactly the injected garbage + truncated
  frames among them + the failed REST answers: every other frame was processed;
- books: after a ``resync`` (with its reason) or a ``disconnected``, no ``lob`` level of the
  market is published before its next ``snapshot`` status; every resync is followed by a
  snapshot, or by no level of that market at all until the end; checksum venues: every failed
  checksum is a resync "checksum mismatch", and checksums kept verifying (``checksum_ok``);
  sequence venues: every gap is counted (``gaps`` >= the gap resyncs);
- the run's RSS (``/proc/PID/status``) grows by less than 20 MB from when its feed starts to
  its end (a leak check, not a timing assertion).

Time is bounded, never asserted: each case ends at ``--max-frames`` (the BitMEX stall waits out
the 15 s watchdog).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from atomfast.testing import ROOT, child_env, cli_summary, fixture_path, stop_process

#: faults whose frames reach the scheme as bad input (one counted error each)
BAD_FRAMES = ("garbage", "truncate")


@dataclass
class Case:
    capture: str
    exchange: str
    symbols: str
    channels: str
    faults: str
    max_frames: int
    rate: int = 2000
    seed: int = 1
    verified: str = ""  # "checksum" | "sequence" | "" (the venue sends neither)
    expect: dict = field(default_factory=dict)  # fault kind -> how many at least (the seed's mix)

    @property
    def id(self) -> str:
        return self.exchange


CASES = [
    # Kraken v1: CRC32 checksum on every update
    Case("cryptofeed/KRAKEN.ws.50.0", "kraken", "WAVES-EUR,KSM-BTC,ETH-CHF,OMG-USD,BTC-CHF,ADA-BTC", "lob",
         "drop-every=700,garbage=0.01,truncate=0.01,duplicate=0.01,reorder=0.01,refuse=0.3", 2000,
         verified="checksum", expect={"drop-every": 2, "garbage": 5, "truncate": 5, "duplicate": 5, "reorder": 5}),
    # Binance USD-M futures: REST snapshot + pu-chained diffs; REST answers 429 then slow
    Case("cryptofeed/BINANCE_FUTURES.ws.1.0", "binance-futures", "AKRO-USDT-PERP,CTK-USDT-PERP,KEEP-USDT-PERP,SUSHI-USDT-PERP",
         "candle,lob,ticker,trades", "drop-every=450,garbage=0.005,truncate=0.003,duplicate=0.003,reorder=0.003,"
         "rest-status=429:1,rest-delay=0.2", 1300, rate=300,
         verified="sequence", expect={"drop-every": 2, "rest-status": 4}),
    # Coinbase (level2 snapshot + l2update: no sequence numbers in this protocol), matches, ticker
    Case("cryptofeed/COINBASE.ws.28.0", "coinbase", "BAND-BTC,BAND-GBP,CRV-EUR,DASH-BTC,NMR-EUR,NU-GBP,SKL-BTC,SKL-GBP,"
         "SKL-USD,YFI-BTC", "lob,ticker,trades,trades_l3",
         "drop-every=1000,drop=0.001,garbage=0.01,truncate=0.01,duplicate=0.01,reorder=0.01", 3000, rate=3000,
         expect={"drop": 1, "garbage": 5, "truncate": 5}),
    # Bitfinex: per-message sequence numbers
    Case("cryptofeed/BITFINEX.ws.11.0", "bitfinex", "BFT-USD,IOTA-ETH,MANA-BTC,MDOGE-USD,ODE-USD,SNGLS-USD,TESTBTC-TESTUSD",
         "lob,ticker,trades", "drop-every=600,garbage=0.01,truncate=0.01,duplicate=0.01,reorder=0.01", 1500,
         verified="sequence", expect={"drop-every": 2, "garbage": 5, "truncate": 5}),
    # BitMEX: orderBookL2 (no checksum, no sequence); a 16 s stall outlasts its 15 s watchdog
    Case("cryptofeed/BITMEX.ws.1.0", "bitmex", "ADA-USDT-PERP,BCH-USD-PERP,BTC-USD-PERP,EOS-USDT-PERP,MATIC-USDT-PERP,"
         "SOL-USDT-PERP,TRX-BTC-20210924,TRX-USDT-PERP,UNI-USDT-PERP,XRP-BTC-20210924", "lob,ticker,trades",
         "drop-every=700,stall=16@900,garbage=0.01,truncate=0.01,duplicate=0.01,reorder=0.01,refuse=0.5", 1500,
         expect={"stall": 1, "garbage": 5, "truncate": 5}),
    # Deribit: change_id / prev_change_id
    Case("cryptofeed/DERIBIT.ws.1.0", "deribit", "BTC-USD-20210730-24000-P,BTC-USD-20210924-34000-P,BTC-USD-20210924-8000-P,"
         "BTC-USD-20211231-300000-C,BTC-USD-20211231-34000-P,BTC-USD-20220325-30000-C,BTC-USD-20220624-15000-C,"
         "ETH-USD-20210723-2300-C,ETH-USD-20210730-2800-C,ETH-USD-20210827-4000-P", "lob,ticker,open_interest",
         "drop-every=50,garbage=0.02,truncate=0.02,duplicate=0.02,reorder=0.02", 130, rate=100,
         verified="sequence", expect={"drop-every": 2}),
]


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Chaos:
    """One case run: the simulator with faults, `run` against it; what each said."""

    def __init__(self, case: Case, tmp: Path) -> None:
        self.case = case
        log_path = tmp / "faults.jsonl"
        sim_err = open(tmp / "sim.err", "w")  # noqa: SIM115 - a file, never a pipe nobody reads
        sim = subprocess.Popen(
            [sys.executable, "-m", "atomfast.cli", "simulate", str(fixture_path(case.capture)), "--port", "0",
             "--rate", str(case.rate), "--faults", case.faults, "--seed", str(case.seed), "--fault-log", str(log_path)],
            cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=sim_err, text=True)
        try:
            line = sim.stdout.readline()
            assert line.startswith("listening "), (line, (tmp / "sim.err").read_text()[-2000:])
            _, url, _, rest_url = line.split()
            out, err = open(tmp / "run.out", "w"), open(tmp / "run.err", "w")  # noqa: SIM115
            run = subprocess.Popen(
                [sys.executable, "-m", "atomfast.cli", "run", "--exchange", case.exchange, "--endpoint", url,
                 "--rest-endpoint", rest_url, "--sink", "stdout", "--symbols", case.symbols, "--channels",
                 case.channels, "--max-frames", str(case.max_frames), "--backoff", "0.05", "--no-status"],
                cwd=ROOT, env=child_env(), stdout=out, stderr=err, text=True)
            self.rss: list[int] = []
            started = time.monotonic()
            feeding = False  # RSS is compared from the moment the feed starts (imports, listings done)
            while run.poll() is None and time.monotonic() - started < 90:
                feeding = feeding or "connection(s) to" in (tmp / "run.err").read_text()
                kb = rss_kb(run.pid)
                if kb and feeding:
                    self.rss.append(kb)
                time.sleep(0.05)
            if run.poll() is None:
                stop_process(run)
            self.returncode = run.wait()
            out.close()
            err.close()
        finally:
            stop_process(sim)
            sim.stdout.close()
            sim_err.close()
        self.stderr = (tmp / "run.err").read_text()
        self.summary = cli_summary(self.stderr)
        self.events = [json.loads(ln) for ln in (tmp / "run.out").read_text().splitlines() if ln]
        self.faults = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln]

    def seen(self, kind: str) -> list[dict]:
        """The injected faults of ``kind`` that concern a frame the run received (REST and
        refusals: all of them)."""
        frames = self.summary["frames"]
        out = []
        for f in self.faults:
            if f["fault"] != kind:
                continue
            if "at" in f:
                # a drop or stall comes after frame `at`: the run saw it if it wanted more frames
                if (f["at"] < frames) if kind in ("drop-every", "drop", "stall") else (f["at"] <= frames):
                    out.append(f)
            else:
                out.append(f)
        return out

    def statuses(self, status: str, symbol: str | None = None) -> list[dict]:
        return [e for e in self.events if e["topic"] == "status" and e["status"] == status
                and (symbol is None or e["symbol"] == symbol)]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cache: dict[str, Chaos] = {}

    def get(case: Case) -> Chaos:
        if case.id not in cache:
            cache[case.id] = Chaos(case, tmp_path_factory.mktemp(case.id))
        return cache[case.id]

    return get


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_chaos(case, results):
    r = results(case)
    s = r.summary
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert s["frames"] == case.max_frames and s["stopped"] == "max frames"

    # the seed's mix really injected what the case is about (before the run stopped)
    injected = Counter(f["fault"] for f in r.faults)
    for kind, n in case.expect.items():
        assert len(r.seen(kind)) >= n, (kind, injected)

    # --- every fault detected ------------------------------------------------------------------
    disconnected = r.statuses("disconnected")
    reasons = Counter(e["reason"] for e in disconnected)
    drops = len(r.seen("drop-every"))
    assert reasons["closed by server (1001: fault: drop-every)"] == drops
    stalls = len(r.seen("stall"))
    assert sum(n for why, n in reasons.items() if why.startswith("silent for ")) == stalls
    tcp_drops = len(r.seen("drop"))
    assert reasons["connection lost"] == tcp_drops
    # every connection a fault ended was connected again; the last one was stopped
    assert len(r.statuses("connected")) == drops + stalls + tcp_drops + 1
    assert reasons["max frames"] == 1
    assert len(disconnected) == drops + stalls + tcp_drops + 1
    # a reconnect per fault-ended connection, plus one per refused attempt (503 on the upgrade)
    assert s["reconnects"] == drops + stalls + tcp_drops + len(r.seen("refuse"))

    # --- accounting: received = processed + counted rejects ---------------------------------------
    kinds = s["error_kinds"]
    assert s["errors"] == sum(kinds.values())
    bad_frames = sum(len(r.seen(k)) for k in BAD_FRAMES)
    rest_errors = len(r.seen("rest-status"))
    assert kinds.get("rest error", 0) == rest_errors
    assert s["errors"] == bad_frames + rest_errors, (kinds, Counter(f["fault"] for f in r.faults))
    assert not any(k.endswith("internal error") or k == "sink error" for k in kinds), kinds
    # the simulator sent at least what the run counted (the rest was in flight at the stop)
    assert max((f["at"] for f in r.faults if "at" in f), default=0) <= s["frames"] + 10_000

    # --- books: never published while untrusted, rebuilt after every resync --------------------
    check_books(r, case)

    # --- memory ---------------------------------------------------------------------------------
    assert len(r.rss) >= 2, "the run ended before its RSS could be read twice"
    assert r.rss[-1] - r.rss[0] < 20 * 1024, (r.rss[0], r.rss[-1])


def check_books(r: Chaos, case: Case) -> None:
    s = r.summary
    trusted: dict[str, bool] = {}  # symbol -> a snapshot came and no resync/disconnect since
    pending_resync: dict[str, dict] = {}  # symbol -> the resync not followed by a snapshot yet
    rebuilt = 0
    lob_symbols = set()
    for e in r.events:
        topic = e["topic"]
        if topic == "lob":
            sym = e["symbol"]
            lob_symbols.add(sym)
            assert trusted.get(sym), f"lob of {sym} published while its book is not trusted: {e}"
            assert sym not in pending_resync, e
        elif topic == "status":
            st, sym = e["status"], e["symbol"]
            if st == "snapshot" and sym:
                trusted[sym] = True
                if pending_resync.pop(sym, None) is not None:
                    rebuilt += 1
            elif st == "resync":
                assert e["reason"], e
                trusted[sym] = False
                pending_resync[sym] = e
            elif st == "disconnected":
                trusted = {k: False for k in trusted}
    resyncs = r.statuses("resync")
    assert len(resyncs) == s["resyncs"]
    # every resync was rebuilt (its market's snapshot status came), or is the one still open at
    # the stop and published nothing more of its market (checked above)
    assert rebuilt + len(pending_resync) == len(resyncs)
    assert lob_symbols, "no book was ever published"
    print(f"\n{case.id}: injected {dict(Counter(f['fault'] for f in r.faults))}; seen "
          f"{ {k: len(r.seen(k)) for k in sorted({f['fault'] for f in r.faults})} }; resyncs {dict(Counter(e['reason'].split(':')[0] for e in resyncs))} "
          f"rebuilt {rebuilt} open at the stop {len(pending_resync)}; summary errors {s['errors']} gaps {s['gaps']} "
          f"checksum ok/failed {s['checksum_ok']}/{s['checksum_failed']} reconnects {s['reconnects']}; rss kB {r.rss[0] if r.rss else 0}->{r.rss[-1] if r.rss else 0}")
    why = Counter(e["reason"].split(":")[0] for e in resyncs)
    if case.verified == "checksum":
        assert s["checksum_ok"] > 0
        assert why["checksum mismatch"] == s["checksum_failed"]
    elif case.verified == "sequence":
        gap_resyncs = sum(n for w, n in why.items() if "gap" in w or "out of order" in w or "sequence" in w)
        assert s["gaps"] >= gap_resyncs
