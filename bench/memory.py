"""Memory: bytes per order-book level, and the collector's RSS over a long replay loop.

Two measurements (section "Memory" of ``python -m bench``):

1. **Bytes per level.** Books built from real levels (the Binance USD-M REST depth snapshot of
   ``hftbacktest/usdm``: 1000 bids + 1000 asks; and the Kraken ADA/XBT ``book-1000`` snapshot of
   ``cryptofeed/KRAKEN.ws.50.0``), in a fresh subprocess per configuration: ``N`` books are
   built and kept, and the growth of the process's resident memory (``/proc/self/statm``) is
   divided by the levels held. That is the whole cost: the C level pool (``book.nbytes``),
   the checksum text cache (6.4 KB per book after the first ``checksum_kraken()``, not in
   ``nbytes``), the Python object, malloc's headers and the slack of the pool's doubling.
   ``tracemalloc`` (a second pass) gives the part allocated by Python's allocator.
   L3 books: the same levels, 5 orders per level (UUID text ids as Coinbase, int ids as
   Bitfinex), bytes per order.
2. **RSS of ``atomfast run`` with 100 markets.** A synthetic 100-market Kraken v1 capture (the
   6 pairs of ``KRAKEN.ws.50.0`` copied under 100 pair names and channel ids; checksums stay
   valid, they depend on the levels only; the capture carries an ``AssetPairs`` listing of the
   100 pairs) is served by ``atomfast simulate --loop --rate R``; the real collector process
   (``atomfast run --exchange kraken --sink null --channels lob``, 100 symbols) runs for
   ``duration`` seconds while its ``VmRSS`` and its Prometheus counters (``--metrics-port``)
   are sampled every second.

    python -m bench.memory --out bench/results [--quick] [--runs 3]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"
BINANCE_SNAPSHOT = "hftbacktest/usdm/btcusdt_20240808.gz"
KRAKEN_BOOK = "cryptofeed/KRAKEN.ws.50.0"
KRAKEN_PAIR = "ADA/XBT"  # the deepest snapshot of the capture (707 asks + 841 bids)

TARGET_BYTES_PER_LEVEL = 100
#: "flat": the RSS grows by less than this fraction over the second half of the run (linear fit)
FLAT_GROWTH = 0.01
#: frames/s the simulator plays in the RSS run (one pass of the 100-market capture: ~8 s)
RATE = 5000

# one row per book configuration: (key, label, kind, levels source, per side, checksum, ids)
BOOK_CONFIGS = [
    ("l2_2000", "L2, 1000 levels per side (Binance USD-M)", "l2", "binance", 1000, False, None),
    ("l2_2000_ck", "L2, 1000 levels per side + checksum cache", "l2", "binance", 1000, True, None),
    ("l2_1000", "L2, 1000 levels in all (500 per side)", "l2", "binance", 500, False, None),
    ("l2_1000_ck", "L2, 1000 levels in all + checksum cache", "l2", "binance", 500, True, None),
    ("l2_kraken", "L2, Kraken ADA/XBT book-1000 (1548 levels)", "l2", "kraken", 1000, False, None),
    ("l2_kraken_ck", "L2, Kraken ADA/XBT book-1000 (1548 levels) + checksum cache", "l2", "kraken", 1000, True, None),
    ("l3_uuid", "L3, 10,000 orders (5 per level), UUID text ids", "l3", "binance", 1000, False, "uuid"),
    ("l3_int", "L3, 10,000 orders (5 per level), int ids", "l3", "binance", 1000, False, "int"),
]
ORDERS_PER_LEVEL = 5


def fixture(relative: str) -> Path:
    path = FIXTURES / relative
    if not path.exists():
        raise FileNotFoundError(f"recorded capture {path} is absent (expected ../shared/fixtures)")
    return path


# =============================================================================================
# 1. bytes per level (worker runs in a fresh interpreter)


def _levels(source: str, per_side: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]], int, int]:
    """(bids, asks, price decimals, size decimals): the best ``per_side`` levels of a real book."""
    if source == "binance":
        with gzip.open(fixture(BINANCE_SNAPSHOT), "rt") as fh:
            for line in fh:
                payload = line.split(" ", 1)[1]
                if payload.startswith('{"lastUpdateId"'):
                    snap = json.loads(payload)
                    break
            else:  # pragma: no cover - the fixture holds one
                raise ValueError(f"no depth snapshot in {BINANCE_SNAPSHOT}")
        bids = [(p, s) for p, s in snap["bids"][:per_side]]
        asks = [(p, s) for p, s in snap["asks"][:per_side]]
    else:
        from atomfast.capture import open_capture

        for f in open_capture(fixture(KRAKEN_BOOK)).frames():
            if f.kind == "recv" and f.data.startswith(b"[") and b'"as"' in f.data[:40] and f.data.endswith(
                    f'"{KRAKEN_PAIR}"]'.encode()):
                msg = json.loads(f.data)
                break
        else:  # pragma: no cover
            raise ValueError(f"no {KRAKEN_PAIR} snapshot in {KRAKEN_BOOK}")
        bids = [(lv[0], lv[1]) for lv in msg[1]["bs"][:per_side]]
        asks = [(lv[0], lv[1]) for lv in msg[1]["as"][:per_side]]

    def decimals(values):
        return max(len(v) - v.find(".") - 1 if "." in v else 0 for v in values)

    return bids, asks, decimals(p for p, _ in bids + asks), decimals(s for _, s in bids + asks)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _book_worker(key: str, nbooks: int, trace: bool) -> dict:
    """Build ``nbooks`` books of configuration ``key`` and keep them; what they cost."""
    import gc
    import tracemalloc
    import uuid

    from atomfast.book import ASK, BID, L2Book, L3Book

    _k, _label, kind, source, per_side, checksum, ids = next(c for c in BOOK_CONFIGS if c[0] == key)
    bids, asks, pd, sd = _levels(source, per_side)
    levels = len(bids) + len(asks)
    if kind == "l3":
        # each level's size split into ORDERS_PER_LEVEL orders (exact decimal arithmetic)
        from decimal import Decimal

        orders = []
        for side, lv in ((BID, bids), (ASK, asks)):
            for price, size in lv:
                part = (Decimal(size) / ORDERS_PER_LEVEL).quantize(Decimal(1).scaleb(-(sd + 2)))
                for _ in range(ORDERS_PER_LEVEL):
                    orders.append((side, price, format(part, "f")))
        sd += 2
        # the ids (as a decoder hands them to the book), made before the measurement: the book
        # keeps them alive, their own size is reported apart
        all_ids = [[str(uuid.UUID(int=(b << 64) | i)) if ids == "uuid" else 10_000_000_000 + b * 1_000_000 + i
                    for i in range(len(orders))] for b in range(nbooks)]
        id_bytes = sys.getsizeof(all_ids[0][0])
    gc.collect()
    if trace:
        tracemalloc.start()
    rss0 = _rss_bytes()
    t0 = tracemalloc.take_snapshot() if trace else None
    books = []
    for b in range(nbooks):
        if kind == "l2":
            book = L2Book(pd, sd)
            for price, size in bids:
                book.apply(BID, price, size)
            for price, size in asks:
                book.apply(ASK, price, size)
            if checksum:
                book.checksum_kraken()
        else:
            book = L3Book(pd, sd)
            for oid, (side, price, size) in zip(all_ids[b], orders):
                book.add(oid, side, price, size)
        books.append(book)
    gc.collect()
    rss1 = _rss_bytes()
    py_bytes = None
    if trace:
        t1 = tracemalloc.take_snapshot()
        py_bytes = sum(s.size_diff for s in t1.compare_to(t0, "filename"))
        tracemalloc.stop()
    book = books[0]
    units = len(book)  # levels (L2) or orders (L3)
    out = {
        "key": key, "books": nbooks, "levels": levels, "units": units, "kind": kind,
        "nbytes": book.nbytes, "getsizeof": sys.getsizeof(book),
        "rss_delta": rss1 - rss0,
        "rss_per_book": (rss1 - rss0) / nbooks,
        "rss_per_unit": (rss1 - rss0) / nbooks / units,
        "python_bytes_per_book": None if py_bytes is None else (py_bytes - 8 * nbooks) / nbooks,  # minus the list slot
    }
    if kind == "l3":
        out["id_bytes"] = id_bytes
        out["level_count"] = book.level_count(BID) + book.level_count(ASK)
    return out


def _run_worker(key: str, nbooks: int, trace: bool) -> dict:
    cmd = [sys.executable, "-m", "bench.memory", "--worker", key, "--books", str(nbooks)]
    cmd += ["--trace"] if trace else []
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"book worker {key} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def book_memory(runs: int, quick: bool) -> dict:
    """Per configuration: the median over ``runs`` fresh processes of the RSS cost per level/order."""
    out = {}
    for key, label, kind, *_ in BOOK_CONFIGS:
        nbooks = (40 if quick else 200) if kind == "l2" else (5 if quick else 20)
        samples = [_run_worker(key, nbooks, False) for _ in range(max(1, runs))]
        traced = _run_worker(key, max(2, nbooks // 4), True)
        med = dict(samples[0])
        for field in ("rss_per_book", "rss_per_unit"):
            med[field] = statistics.median(s[field] for s in samples)
        med["rss_per_unit_runs"] = [round(s["rss_per_unit"], 2) for s in samples]
        med["python_bytes_per_book"] = traced["python_bytes_per_book"]
        med["label"] = label
        units = med["units"]
        med["c_per_unit"] = med["nbytes"] / units
        med["object_per_unit"] = med["getsizeof"] / units
        out[key] = med
    # the checksum cache, measured: RSS with minus without, per book
    for base in ("l2_2000", "l2_1000", "l2_kraken"):
        if base in out and base + "_ck" in out:
            out[base + "_ck"]["cache_per_book"] = out[base + "_ck"]["rss_per_book"] - out[base]["rss_per_book"]
    return out


# =============================================================================================
# 2. RSS of `atomfast run` with 100 markets


def build_capture(directory: Path, markets: int = 100) -> tuple[Path, list[str]]:
    """A Kraken v1 capture of ``markets`` books: the 6 pairs of KRAKEN.ws.50.0, each copied under
    new pair names (``WAVES03/EUR``) and channel ids. Returns (record file, normalised symbols)."""
    from atomfast.capture import OPEN, RECV, SENT, RecordWriter, open_capture

    cap = open_capture(fixture(KRAKEN_BOOK))
    frames = list(cap.frames())
    listing = json.loads(cap.rest_body("/0/public/AssetPairs"))["result"]
    by_ws = {v["wsname"]: (k, v) for k, v in listing.items() if v.get("wsname")}
    pairs = next(json.loads(f.data) for f in frames if f.kind == SENT)["pair"]
    copies = {p: markets // len(pairs) + (1 if i < markets % len(pairs) else 0) for i, p in enumerate(pairs)}
    names: dict[str, list[str]] = {}
    for p in pairs:
        base, quote = p.split("/")
        names[p] = [f"{base}{k:02d}/{quote}" for k in range(copies[p])]
    # the listing: each new pair as its original (same decimals)
    result = {}
    for p in pairs:
        alt, entry = by_ws[p]
        for name in names[p]:
            e = dict(entry, wsname=name, altname=name.replace("/", ""))
            result[name.replace("/", "")] = e
    body = json.dumps({"error": [], "result": result}, separators=(",", ":")).encode()
    cids: dict[tuple[int, int], int] = {}  # (original channel id, copy) -> new channel id

    def cid_for(cid: int, k: int) -> int:
        return cids.setdefault((cid, k), 100_000 + len(cids))

    path = directory / f"kraken-{markets}-markets.rec"
    w = RecordWriter(path, "kraken")
    t0 = frames[0].ts_ns
    w.rest(t0, "https://api.kraken.com/0/public/AssetPairs", body)
    all_names = [n for p in pairs for n in names[p]]
    for f in frames:
        ts = f.ts_ns
        if f.kind == OPEN:
            w.open(ts, 0, f.url)
        elif f.kind == SENT:
            for i in range(0, len(all_names), 50):
                w.sent(ts, 0, json.dumps({"event": "subscribe", "pair": all_names[i:i + 50],
                                          "subscription": {"name": "book", "depth": 1000}}, separators=(",", ":")))
        elif f.kind == RECV:
            data = f.data
            if data.startswith(b"["):
                comma = data.index(b",")
                cid = int(data[1:comma])
                tail = data.rindex(b',"')
                pair = json.loads(data[tail + 1:-1])
                for k, name in enumerate(names[pair]):
                    new = b"[%d" % cid_for(cid, k) + data[comma:tail + 1] + json.dumps(name).encode() + b"]"
                    w.recv(ts + k, 0, new)
            else:
                msg = json.loads(data)
                if msg.get("event") == "subscriptionStatus" and msg.get("pair") in names:
                    for k, name in enumerate(names[msg["pair"]]):
                        w.recv(ts + k, 0, json.dumps(dict(msg, channelID=cid_for(msg["channelID"], k), pair=name),
                                                     separators=(",", ":")).encode())
                else:
                    w.recv(ts, 0, data)
    w.close()
    from atomfast.exchanges.kraken import KrakenSpotV1Scheme

    instruments = KrakenSpotV1Scheme.parse_instruments(body)  # as `run` reads the listing
    symbols = [instruments[n].symbol for n in all_names]
    return path, symbols


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vmrss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _scrape(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=0.5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0]  # one feed: its samples are labelled with its exchange
        if name in ("atomfast_frames_total", "atomfast_books", "atomfast_books_synced", "atomfast_checksum_ok_total",
                    "atomfast_checksum_failed_total", "atomfast_resyncs_total"):
            out[name[len("atomfast_"):]] = float(value)
    return out


def rss_run(duration: float, rate: float, markets: int = 100, warmup: float = 30.0) -> dict:
    from atomfast.testing import SimProcess

    with tempfile.TemporaryDirectory(prefix="atomfast-memory-") as tmp:
        capture, symbols = build_capture(Path(tmp), markets)
        frames_per_loop = sum(1 for line in open(capture) if " recv " in line)
        port = _free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        with SimProcess(capture, "--rate", str(rate), "--loop") as sim, open(Path(tmp) / "run.stderr", "w+") as err:
            cmd = [sys.executable, "-m", "atomfast.cli", "run", "--exchange", "kraken", "--endpoint", sim.url,
                   "--sink", "null", "--no-status", "--symbols", ",".join(symbols), "--channels", "lob",
                   "--duration", str(duration), "--metrics-port", str(port)]
            t_start = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
            samples = []
            try:
                next_t = t_start
                while proc.poll() is None:
                    rss = _vmrss_kb(proc.pid)
                    cpu = _cpu_s(proc.pid)
                    m = _scrape(port)
                    if rss is not None:
                        samples.append({"t": round(time.monotonic() - t_start, 3), "rss_kb": rss, "cpu_s": cpu, **m})
                    next_t += 1.0
                    time.sleep(max(0.0, next_t - time.monotonic()))
                    if time.monotonic() - t_start > duration + 60:
                        proc.send_signal(signal.SIGTERM)
                        proc.wait(30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            err.seek(0)
            stderr = err.read()
    lines = [ln for ln in stderr.splitlines() if ln.startswith("summary: ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"atomfast run failed (exit {proc.returncode}): {stderr[-3000:]}")
    summary = json.loads(lines[-1][len("summary: "):])
    return {"markets": markets, "symbols": len(symbols), "rate": rate, "duration": duration, "warmup": warmup,
            "frames_per_loop": frames_per_loop, "samples": samples, "summary": summary,
            "stderr_tail": "\n".join(ln for ln in stderr.splitlines()[-15:] if "WARNING" in ln or "ERROR" in ln)}


def analyse_rss(res: dict) -> dict:
    import numpy as np

    s = [x for x in res["samples"] if x.get("rss_kb")]
    t = np.array([x["t"] for x in s])
    rss = np.array([x["rss_kb"] for x in s], dtype=float)
    warm = res["warmup"]
    after = t >= warm
    if after.sum() < 4:
        after = t >= t[len(t) // 2]
    start_i = int(np.argmax(after))
    end_t = t[-1]
    half = t >= warm + (end_t - warm) / 2
    slope_kb_s, icpt = np.polyfit(t[half], rss[half], 1)
    t_half0, t_half1 = t[half][0], t[half][-1]
    fit0 = slope_kb_s * t_half0 + icpt
    growth = slope_kb_s * (t_half1 - t_half0) / fit0
    # the whole run after warm-up too
    slope_all, _ = np.polyfit(t[after], rss[after], 1)
    frames = [x.get("frames_total") for x in s]
    fps = []
    for a, b in zip(s, s[1:]):
        if a.get("frames_total") is not None and b.get("frames_total") is not None and b["t"] > a["t"]:
            fps.append(((a["t"] + b["t"]) / 2, (b["frames_total"] - a["frames_total"]) / (b["t"] - a["t"])))
    cpu = [(x["t"], x["cpu_s"]) for x in s if x.get("cpu_s") is not None]
    cpu_pct = None
    if len(cpu) > 1 and cpu[-1][0] > cpu[0][0]:
        cpu_pct = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]) * 100
    books = [x.get("books") for x in s if x.get("books") is not None]
    synced = [x.get("books_synced") for x in s if x.get("books_synced") is not None]
    summ = res["summary"]
    steady_fps = [v for tt, v in fps if tt >= warm]
    f = float
    return {
        "start_mb": f(rss[start_i] / 1024), "start_t": float(t[start_i]),
        "end_mb": f(rss[-1] / 1024), "end_t": float(end_t),
        "max_mb": f(rss.max() / 1024), "min_after_warmup_mb": f(rss[after].min() / 1024),
        "slope_kb_min": f(slope_kb_s * 60), "slope_all_kb_min": f(slope_all * 60),
        "growth_second_half": f(growth), "flat": bool(growth < FLAT_GROWTH),
        "fps_mean": statistics.mean(steady_fps) if steady_fps else None,
        "loops": (summ["frames"] / res["frames_per_loop"]) if res["frames_per_loop"] else None,
        "cpu_pct": cpu_pct,
        "books_max": max(books) if books else None,
        "books_synced_end": synced[-1] if synced else None,
        "fps": fps, "frames_seen": max((f for f in frames if f is not None), default=None),
    }


# =============================================================================================
# the section


def run(runs: int = 3, quick: bool = False) -> dict:
    t0 = time.monotonic()
    books = book_memory(1 if quick else runs, quick)
    t1 = time.monotonic()
    if quick:
        rss = rss_run(duration=20, rate=RATE, warmup=5)
    else:
        rss = rss_run(duration=300, rate=RATE, warmup=30)
    rss["analysis"] = analyse_rss(rss)
    return {"books": books, "rss": rss, "quick": quick, "runs": runs,
            "seconds": {"books": round(t1 - t0, 1), "rss": round(time.monotonic() - t1, 1)}}


def _fmt(x, nd=1):
    return "-" if x is None else f"{x:,.{nd}f}"


def markdown(results: dict) -> str:
    books = results["books"]
    rss = results["rss"]
    a = rss["analysis"]
    summ = rss["summary"]
    lines = ["## Memory", ""]
    lines += [
        "### Bytes per book level",
        "",
        "Books built from real levels (Binance USD-M REST depth snapshot, 1000 bids + 1000 asks, of "
        "`hftbacktest/usdm`; Kraken ADA/XBT `book-1000` snapshot of `cryptofeed/KRAKEN.ws.50.0`, as "
        "`run` builds it: sent decimals, then `checksum_kraken()`). Each configuration runs in a fresh "
        f"process that builds and keeps {books['l2_2000']['books']} books (L3: {books['l3_uuid']['books']}); "
        "**measured** = growth of the process's resident memory (`/proc/self/statm`) / levels held "
        f"(median of {len(books['l2_2000']['rss_per_unit_runs'])} process(es)): everything the book costs, "
        "with malloc's headers; pool nodes allocated but never used are not resident, so it can be below "
        "`nbytes`. Components: C pool = `book.nbytes` (allocated nodes, used or free; the pool starts at "
        "1,024 nodes and doubles); checksum cache = RSS with the cache minus without, per book (the book "
        "does not report it; documented as a fixed 6.4 KB per book, allocated by the first checksum call); "
        "Python heap = tracemalloc's growth per book (the object itself, `sys.getsizeof` "
        f"{books['l2_2000']['getsizeof']} B, and its cached best-price tuples).",
        "",
        "| book | levels | C pool (`nbytes`) B/level | checksum cache B/level | Python heap B/level | "
        "**measured (RSS) B/level** | target < 100 |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for key, label, kind, *_ in BOOK_CONFIGS:
        if kind != "l2" or key not in books:
            continue
        b = books[key]
        cache = b.get("cache_per_book")
        if cache is None and key.endswith("_ck"):
            cache_txt = f"{6400 / b['units']:.1f} (doc.)"
        else:
            cache_txt = "-" if cache is None else f"{cache / b['units']:.1f}"
        met = "met" if b["rss_per_unit"] < TARGET_BYTES_PER_LEVEL else "**not met**"
        py = b.get("python_bytes_per_book")
        py_txt = "-" if py is None else f"{py / b['units']:.2f}"
        lines.append(f"| {label} | {b['units']:,} | {b['c_per_unit']:.1f} | {cache_txt} | {py_txt} | "
                     f"**{b['rss_per_unit']:.1f}** | {met} |")
    lines += ["", "Level-3 books (same levels, each split into 5 orders): bytes per **order**. The C part is "
              "the level and order pools (`nbytes`); the rest is the order-id map (a Python `dict` id -> slot "
              "and a slot -> id `list`, see `L3Book`), measured as RSS growth; the id object itself (kept "
              "alive by the map) is listed apart and not in the measured column (it was allocated before "
              "the measurement, as a decoder allocates it).", "",
              "| book | orders | levels | C pools B/order | Python (RSS - C) B/order | **measured (RSS) B/order** | "
              "+ id object B |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for key, label, kind, *_ in BOOK_CONFIGS:
        if kind != "l3" or key not in books:
            continue
        b = books[key]
        lines.append(f"| {label} | {b['units']:,} | {b['level_count']:,} | {b['c_per_unit']:.1f} | "
                     f"{b['rss_per_unit'] - b['c_per_unit']:.1f} | **{b['rss_per_unit']:.1f}** | {b['id_bytes']} |")
    l2 = [books[k]["rss_per_unit"] for k, _l, kind, *_ in BOOK_CONFIGS if kind == "l2" and k in books]
    worst = max(l2)
    lines += ["", f"**Target \"a 1000-level book costs under 100 bytes per level\": "
              f"{'met' if worst < TARGET_BYTES_PER_LEVEL else 'NOT met'}** (worst L2 configuration "
              f"{worst:.1f} B/level, checksum cache included).", ""]

    # --- RSS run
    growth_pct = a["growth_second_half"] * 100
    lines += [
        "### RSS of `atomfast run` with 100 markets over a long replay loop",
        "",
        f"A synthetic {rss['markets']}-market Kraken v1 capture: the 6 `book-1000` pairs of "
        "`cryptofeed/KRAKEN.ws.50.0` copied under 100 pair names (`WAVES03/EUR`, ...) and channel ids, "
        "with an `AssetPairs` listing of those 100 pairs (so `run` validates the symbols from the "
        "simulator's REST answer); Kraken's checksums depend only on the levels, so they stay valid. "
        f"`atomfast simulate <capture> --loop --rate {rss['rate']:.0f}` serves it "
        f"({rss['frames_per_loop']:,} frames a pass, every pass starting with the 100 snapshots: each "
        "book is reloaded every pass); the real collector process `atomfast run --exchange kraken "
        "--sink null --no-status --channels lob --symbols <100> --duration "
        f"{rss['duration']:.0f} --metrics-port P` is sampled every second: `VmRSS` of "
        "`/proc/<pid>/status`, and frames / books from its Prometheus endpoint. Simulator, collector "
        "and sampler share the 2-core machine.",
        "",
        "| | value |",
        "|---|---:|",
        f"| run | {a['end_t']:.0f} s, {summ['frames']:,} frames ({a['loops']:.1f} passes), "
        f"{_fmt(a['fps_mean'], 0)} frames/s, collector CPU {_fmt(a['cpu_pct'], 0)}% of a core |",
        f"| books live (metrics `books` / `books_synced` at the end) | {_fmt(a['books_max'], 0)} / "
        f"{_fmt(a['books_synced_end'], 0)} |",
        f"| checksums ok / failed; resyncs; errors | {summ['checksum_ok']:,} / {summ['checksum_failed']}; "
        f"{summ['resyncs']}; {summ['errors']} |",
        f"| RSS after warm-up (t = {a['start_t']:.0f} s) | {a['start_mb']:.1f} MB |",
        f"| RSS at the end | {a['end_mb']:.1f} MB |",
        f"| RSS max | {a['max_mb']:.1f} MB |",
        f"| growth from the end of warm-up to the end | {a['end_mb'] - a['start_mb']:+.2f} MB "
        f"({(a['end_mb'] / a['start_mb'] - 1) * 100:+.2f}%) |",
        f"| slope, linear fit over the second half | {a['slope_kb_min']:+.1f} KB/min |",
        f"| slope, linear fit over the whole run after warm-up | {a['slope_all_kb_min']:+.1f} KB/min |",
        f"| growth over the second half (fit) | {growth_pct:+.2f}% |",
        "",
    ]
    books_ok = a["books_max"] == rss["markets"] and summ["checksum_failed"] == 0
    lines.append(f"**Target \"RSS stays flat\" (criterion: the linear fit over the second half grows by less "
                 f"than {FLAT_GROWTH * 100:.0f}% of the RSS): {'met' if a['flat'] else 'NOT met'}** "
                 f"({growth_pct:+.2f}%); all {rss['markets']} books live with 0 failed checksums: "
                 f"{'yes' if books_ok else 'NO'}.")
    if results.get("quick"):
        lines.append("")
        lines.append(f"(quick mode: a {rss['duration']:.0f} s run, warm-up {rss['warmup']:.0f} s; the default "
                     "runs 300 s.)")
    lines.append("")
    return "\n".join(lines)


def plot(results: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []

    # bytes per level
    books = results["books"]
    keys = [k for k, _l, kind, *_ in BOOK_CONFIGS if kind == "l2" and k in books]
    labels = [next(l for kk, l, *_ in BOOK_CONFIGS if kk == k).replace(" + checksum cache", "\n+ checksum cache")
              .replace(" (Binance USD-M)", "") for k in keys]
    c = np.array([books[k]["c_per_unit"] for k in keys])
    cache = np.array([(books[k].get("cache_per_book") or (6400 if k.endswith("_ck") else 0)) / books[k]["units"]
                      for k in keys])
    obj = np.array([(books[k].get("python_bytes_per_book") or books[k]["getsizeof"]) / books[k]["units"] for k in keys])
    measured = np.array([books[k]["rss_per_unit"] for k in keys])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    y = np.arange(len(keys))
    ax.barh(y - 0.2, c, 0.4, label="C pool (nbytes)")
    ax.barh(y - 0.2, cache, 0.4, left=c, label="checksum cache")
    ax.barh(y - 0.2, obj, 0.4, left=c + cache, label="Python heap")
    ax.barh(y + 0.2, measured, 0.4, label="measured (RSS growth)", color="0.4")
    for yy, v in zip(y, measured):
        ax.text(v + 1, yy + 0.2, f"{v:.1f}", va="center", fontsize=8)
    ax.axvline(TARGET_BYTES_PER_LEVEL, color="red", ls="--", label="target 100 B/level")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("bytes per level")
    ax.set_title("L2 book memory per level")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    p = outdir / "memory_bytes_per_level.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    paths.append(p)

    # RSS curve
    rss = results["rss"]
    a = rss["analysis"]
    s = [x for x in rss["samples"] if x.get("rss_kb")]
    t = np.array([x["t"] for x in s])
    mb = np.array([x["rss_kb"] for x in s]) / 1024
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    ax1.plot(t, mb, lw=1, label="collector VmRSS")
    ax1.axvline(rss["warmup"], color="0.6", ls=":", label="end of warm-up")
    half0 = rss["warmup"] + (t[-1] - rss["warmup"]) / 2
    hh = t >= half0
    if hh.sum() > 1:
        k, b = np.polyfit(t[hh], mb[hh], 1)
        ax1.plot(t[hh], k * t[hh] + b, color="red", lw=1.5,
                 label=f"fit, second half: {a['slope_kb_min']:+.1f} KB/min ({a['growth_second_half'] * 100:+.2f}%)")
    lo, hi = mb[t >= rss["warmup"]].min() if (t >= rss["warmup"]).any() else mb.min(), mb.max()
    pad = max(2.0, (hi - lo) * 0.5)
    ax1.set_ylim(max(0, lo - pad), hi + pad)
    ax1.set_ylabel("RSS (MB, axis zoomed)")
    ax1.set_title(f"atomfast run, {rss['markets']} Kraken markets, simulate --loop --rate {rss['rate']:.0f}, sink null")
    ax1.legend(fontsize=8, loc="lower right")
    ax1.grid(alpha=0.3)
    if a["fps"]:
        ft, fv = zip(*a["fps"])
        ax2.plot(ft, fv, lw=0.8, color="tab:green")
    ax2.set_ylabel("frames/s")
    ax2.set_xlabel("seconds since the collector started")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    p = outdir / "memory_rss.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--books", type=int, default=200, help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_book_worker(args.worker, args.books, args.trace)))
        return 0
    t0 = time.monotonic()
    results = run(args.runs, args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(results, indent=1, default=str))
    text = markdown(results)
    (args.out / "memory.md").write_text(text)
    paths = plot(results, args.out)
    print(text)
    print(f"written: {args.out / 'memory.md'}, {', '.join(str(p) for p in paths)} ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
