"""``python -m bench``: the performance report (issue "Performance to the floor").

Runs the comparison on the recorded captures (../shared/fixtures) and writes
``bench/results/REPORT.md`` (Markdown tables) and PNG figures beside it, plus the raw figures
as ``results.json``. Every figure is the median of several runs in this one process, the
implementations interleaved run by run.

    python -m bench                      # all sections, 5 runs
    python -m bench --runs 3 --only throughput,book
    python -m bench --quick --no-kafka   # a smoke test: 1 run, two venues

Sections (each a module with ``run(runs, quick) -> dict``, ``markdown(results) -> str`` and
``plot(results, outdir) -> list[Path]``): ``throughput`` (bench/throughput.py), ``book``
(bench/bookcmp.py), ``memory`` (bench/memory.py), ``latency`` (bench/latency.py) and ``kafka_cpu``
(bench/kafka_cpu.py: the collector's CPU per frame to Kafka against the null sink), ``scale``
(bench/scale.py) and ``outside`` (bench/outside.py: the floor target from outside the project,
``atomfast replay`` against reading and decoding the file); a section
whose module is not there yet is skipped with a note in the report.

Against the previous run: before anything is written, the ``results.json`` already in the output
directory (in bench/results: the committed run of record) is read (bench/previous.py); the report
compares this run with it (a section after the head, and per venue a table in the throughput
section: µs per frame, atomfast / floor, cryptofeed / atomfast, Python opcodes per frame), and
the new ``results.json`` keeps its summary under ``"previous"``. A ``--quick`` run is never the
baseline: the run after it compares against what it compared against.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
import traceback
from pathlib import Path

from . import previous as P
from . import report as R

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {"throughput": "bench.throughput", "book": "bench.bookcmp", "memory": "bench.memory",
            "latency": "bench.latency", "kafka_cpu": "bench.kafka_cpu", "scale": "bench.scale",
            "outside": "bench.outside"}
DEFAULT_OUT = ROOT / "bench" / "results"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs per figure, the median is reported (default 5)")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 run, few venues, small workloads")
    p.add_argument("--only", default="", help=f"comma-separated sections among {', '.join(SECTIONS)}")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default bench/results)")
    p.add_argument("--no-kafka", action="store_true", help="skip atomfast -> Kafka (throughput column 3)")
    p.add_argument("--venues", default="", help="comma-separated throughput venues (default: all; --quick: two)")
    return p


def _call(fn, **kwargs):
    """Call ``fn`` with the keyword arguments it accepts (sections of other authors take only
    ``runs`` and ``quick``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(**kwargs)
    return fn(**{k: v for k, v in kwargs.items() if k in params})


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _against_previous(raw: dict, previous: dict | None, source: str, info: dict) -> list[str]:
    """The report's section "Against the previous run": which run, what changed on the machine,
    the throughput change in a few computed sentences (the per-venue table is in the throughput
    section)."""
    if previous is None:
        return [f"## Against the previous run\n\nNothing to compare with: {source}."]
    thr = raw["sections"].get("throughput")
    lines = [f"## Against the previous run ({P.label(previous)})", ""]
    runs = previous.get("runs")
    lines.append(f"Compared with: `{previous.get('command') or 'python -m bench'}` at {P.label(previous)}"
                 + (f" (median of {runs} run{'s' if runs != 1 else ''})" if runs else "")
                 + f", {source}. Both runs are on a shared VM, with other work running beside them: the µs of "
                 "one run against the other carry that noise; read the ratios (measured side by side within each "
                 "run) and the opcode counts (no clock in them).")
    changes = P.machine_changes(previous, info)
    if changes:
        lines += ["", "Changed since: " + "; ".join(changes) + "."]
    if thr is None:
        lines += ["", "The throughput section did not run (or failed): no per-venue comparison."]
        return ["\n".join(lines)]
    from .throughput import comparison_summary

    summary = comparison_summary(thr, previous)
    if summary:
        lines += [""] + [f"- {x}" for x in summary]
    lines += ["", "Per venue: *Against the previous run* in the throughput section."]
    return ["\n".join(lines)]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    runs = 1 if args.quick else args.runs
    if runs < 1:
        raise SystemExit("--runs must be at least 1")
    only = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    venues = [v.strip() for v in args.venues.split(",") if v.strip()] or None

    info = R.machine_info(R.command_line(argv), ROOT)
    # the run this one is compared against: read BEFORE this run overwrites results.json
    previous, previous_source = P.baseline(out / "results.json")
    started = time.perf_counter()
    parts: list[str] = []
    raw: dict = {"machine": info, "quick": args.quick, "sections": {}}
    failed = []
    for name in only:
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(SECTIONS[name])
        except ModuleNotFoundError as exc:
            if exc.name != SECTIONS[name]:
                raise
            note = f"## {name.capitalize()}\n\nNot run: `{SECTIONS[name].replace('.', '/')}.py` is not there yet."
            parts.append(note)
            print(f"[bench] {name}: module not present, skipped", flush=True)
            continue
        try:
            results = _call(module.run, runs=runs, quick=args.quick, kafka=not args.no_kafka, venues=venues)
            section = _call(module.markdown, results=results, previous=previous, previous_source=previous_source)
            pngs = _call(module.plot, results=results, outdir=out, previous=previous) or []
            raw["sections"][name] = results
        except (Exception, SystemExit) as exc:  # one broken section must not lose the others
            failed.append(name)
            tb = traceback.format_exc()
            print(tb, file=sys.stderr, flush=True)
            parts.append(f"## {name.capitalize()}\n\n**Failed**: `{type(exc).__name__}: {exc}`\n\n"
                         f"```\n{tb[-3000:]}\n```")
            continue
        seconds = time.perf_counter() - t0
        images = "\n\n".join(f"![{Path(p).stem}]({Path(p).resolve().relative_to(out.resolve())})"
                             if Path(p).resolve().is_relative_to(out.resolve()) else f"![{Path(p).stem}]({p})"
                             for p in pngs)
        parts.append(section.rstrip() + ("\n\n" + images if images else "")
                     + f"\n\n<sub>section `{name}`: {seconds:.0f} s</sub>")
        print(f"[bench] {name}: {seconds:.0f} s", flush=True)

    total = time.perf_counter() - started
    head = [
        "# atomfast performance report",
        "",
        "Generated by `python -m bench` (bench/__main__.py); every figure is the median of "
        f"{runs} run{'s' if runs != 1 else ''} in one process, implementations interleaved run by run"
        + (" (**--quick: a smoke test, one run, not for citing**)" if args.quick else "") + ".",
        "",
        R.machine_markdown(info),
        "",
        f"Sections: {', '.join(only)}; total time {total / 60:.1f} min."
        + (f" **Failed: {', '.join(failed)}.**" if failed else ""),
        "",
        f"The machine is a shared {info['cores']}-core VM: absolute times move with the other work on it; the "
        "ratios, measured side by side in the same runs, are the figures to read.",
    ]
    against = _against_previous(raw, previous, previous_source, info)
    text = "\n".join(head) + "\n\n" + "\n\n".join(against + parts) + "\n"
    (out / "REPORT.md").write_text(text, encoding="utf-8")
    raw["total_seconds"] = total
    # what this run was compared against: the next run compares against THIS run (its own
    # figures above), or, if this one is a --quick smoke run, against this "previous" again
    raw["previous"] = previous
    (out / "results.json").write_text(json.dumps(_jsonable(raw), indent=1), encoding="utf-8")
    print(f"[bench] wrote {out / 'REPORT.md'} ({total / 60:.1f} min)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
