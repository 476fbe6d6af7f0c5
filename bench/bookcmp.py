"""Section ``book`` of ``python -m bench``: ns per L2 delta, atomfast's compiled ``L2Book`` against
``sortedcontainers`` and ``order-book`` on the real deltas of bench/bench_book.py (Kraken
book-1000, 6 pairs; Binance USD-M BTCUSDT session, snapshot + the first 200k deltas), every
implementation reading the best bid and ask after each delta; and the Kraken checksum per update
(``checksum_kraken()`` against the same check in Python + ``zlib``). The extraction and the
implementations are bench_book's own (imported), so the pytest benchmarks and this report
measure the same code.
"""
from __future__ import annotations

import gc
from pathlib import Path

from . import report as R

IMPLS = ["atomfast", "sortedcontainers", "order-book"]
ORDER_BOOK_MAX_RUNS = 3  # it re-sorts its keys on each read after a change: ~15 s a Binance run
QUICK_BINANCE_DELTAS = 20_000


def _available(impl: str) -> bool:
    from .bench_book import MODULES

    module = MODULES.get(impl)
    if module is None:
        return True
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def run(runs: int, quick: bool, log=print) -> dict:
    from . import bench_book as bb

    workloads = {}
    kraken = bb._kraken_deltas()
    workloads["kraken"] = {"title": "Kraken book-1000, 6 pairs", "deltas": kraken}
    limit = QUICK_BINANCE_DELTAS if quick else bb.BINANCE_DELTAS
    binance = bb._binance_deltas(limit)
    workloads["binance"] = {"title": f"Binance USD-M BTCUSDT session, snapshot + {len(binance[0]):,} deltas",
                            "deltas": binance}
    impls = [i for i in IMPLS if _available(i)]
    ob_runs = min(runs, ORDER_BOOK_MAX_RUNS)
    results = {"runs": runs, "order_book_runs": ob_runs, "quick": quick, "workloads": {},
               "missing": [i for i in IMPLS if i not in impls], "checksum": {}}
    for name, w in workloads.items():
        deltas, scales = w["deltas"]
        results["workloads"][name] = {
            "title": w["title"], "deltas": len(deltas), "levels_at_end": bb._levels_at_end(deltas, scales),
            "times": {i: [] for i in impls}, "same_top": {},
        }
    ck_events, ck_scales = bb._kraken_updates()
    updates = sum(crc is not None for _, _, crc in ck_events)
    results["checksum"] = {"updates": updates, "times": {k: [] for k in bb.CHECKSUMS}, "bad": {}}

    # warm-up (not timed) and the final top of book of each implementation against atomfast's
    for name, w in workloads.items():
        deltas, scales = w["deltas"]
        ref = bb.replay_atomfast(deltas, scales)
        for impl in impls:
            if impl == "order-book":
                continue  # slow; checked on its first timed run below
            results["workloads"][name]["same_top"][impl] = bb.REPLAYS[impl](deltas, scales) == ref
    gc.collect()
    gc.freeze()  # the deltas (millions of objects) out of the garbage collector's view
    try:
        _runs(runs, impls, ob_runs, workloads, results, ck_events, ck_scales, log)
    finally:
        gc.unfreeze()
    for name, entry in results["workloads"].items():
        entry["ns_per_delta"] = {i: R.median(t) / entry["deltas"] * 1e9 for i, t in entry["times"].items() if t}
    c = results["checksum"]
    c["ns_per_update"] = {k: R.median(t) / updates * 1e9 for k, t in c["times"].items() if t}
    return results


def _runs(runs, impls, ob_runs, workloads, results, ck_events, ck_scales, log) -> None:
    from . import bench_book as bb

    for r in range(runs):
        log(f"  run {r + 1}/{runs}")
        for name, w in workloads.items():
            deltas, scales = w["deltas"]
            entry = results["workloads"][name]
            for impl in impls:
                if impl == "order-book" and r >= ob_runs:
                    continue
                dt, final = R.timed(bb.REPLAYS[impl], deltas, scales)
                entry["times"][impl].append(dt)
                if impl == "order-book" and r == 0:
                    entry["same_top"][impl] = final == bb.replay_atomfast(deltas, scales)
        for key, fn in bb.CHECKSUMS.items():
            dt, bad = R.timed(bb.replay_checksums, ck_events, ck_scales, fn)
            results["checksum"]["times"][key].append(dt)
            results["checksum"]["bad"][key] = bad


def markdown(results: dict) -> str:
    out = ["## Order book: ns per L2 delta", ""]
    out.append(
        f"bench/bench_book.py's workloads and implementations: every implementation applies the same "
        f"pre-extracted deltas (book, side, price text, size text) and reads the best bid and ask after "
        f"EVERY delta (atomfast `L2Book.apply` parses the exchange strings exactly; sortedcontainers: a "
        f"`SortedDict` per side keyed by `float(price)`; order-book: bmoscon's C `OrderBook`). Median of "
        f"{results['runs']} run(s) (order-book: {results['order_book_runs']}, its Binance runs take ~15 s), "
        f"interleaved; one untimed warm-up.")
    out.append("")
    rows = []
    for name, e in results["workloads"].items():
        ns = e["ns_per_delta"]
        base = ns.get("atomfast")
        cells = [e["title"], f"{e['deltas']:,}", f"{e['levels_at_end']:,}"]
        for impl in IMPLS:
            v = ns.get(impl)
            if v is None:
                cells.append("not installed" if impl in results["missing"] else "-")
                continue
            same = e["same_top"].get(impl, True)
            text = R.num(v, 0)
            if impl != "atomfast" and base:
                text += f" ({R.ratio(v / base)})"
            if not same:
                text += " (final top of book differs!)"
            cells.append(text)
        rows.append(cells)
    out.append(R.table(["workload", "deltas", "levels at end", "atomfast ns/delta",
                        "sortedcontainers ns/delta (x atomfast)", "order-book ns/delta (x atomfast)"], rows))
    out.append("")
    out.append("`order-book` re-sorts its keys "
               "on the first read after a change, so its cost grows with the book.")
    c = results["checksum"]
    ns = c["ns_per_update"]
    out += ["", "### Kraken checksum per update", ""]
    out.append(f"The Kraken v1 book replay as a client runs it ({c['updates']:,} updates of the "
               "book-1000 capture: apply the update's levels, truncate to 1000, verify the CRC32): "
               "atomfast's `checksum_kraken()` against the same check in Python (`levels()` strings, "
               "`str` work, `zlib.crc32`). ns per update, the whole replay step included.")
    out.append("")
    base = ns.get("atomfast")
    rows = []
    for key, v in ns.items():
        rows.append([key, R.num(v, 0), R.ratio(v / base) if base else "-", c["bad"].get(key)])
    out.append(R.table(["checksum", "ns/update", "x atomfast", "mismatches"], rows))
    return "\n".join(out)


def plot(results: dict, outdir: Path) -> list[Path]:
    names = [e["title"] for e in results["workloads"].values()]
    series = {impl: [e["ns_per_delta"].get(impl) for e in results["workloads"].values()] for impl in IMPLS
              if impl not in results["missing"]}
    return [R.grouped_bars(Path(outdir) / "book_ns_per_delta.png", names, series, "ns per delta (log)",
                           "L2 book: apply a delta + read best bid/ask, median of runs")]
