"""The previous run of ``python -m bench``: what this run is compared against.

Before a run writes ``results.json`` in its output directory, ``baseline(path)`` reads the one
that is there (the run this one replaces: in bench/results, the committed run of record) and
keeps what the comparison needs (``summary``): its date, git revision, command and versions, and
per throughput venue the µs per frame, the ratios and the Python opcodes per frame of the
traced profile. The new ``results.json`` keeps that summary under ``"previous"``, so that the
file always says what its report compared against, and the next run compares against the new
run, not against an older one.

A smoke run (``--quick``: one run, not for citing), or one without a throughput section, is
not a baseline: a run that replaces one compares against what THAT run compared against (its
``"previous"``), so a ``--quick`` check between two full runs does not take the place of the run
of record.
"""
from __future__ import annotations

import json
from pathlib import Path

#: the per-venue figures kept (throughput section)
US_KEYS = ("floor", "atomfast", "atomfast_reading", "kafka", "cryptofeed")
RATIO_KEYS = ("atomfast_floor", "cryptofeed_atomfast", "cryptofeed_atomfast_reading", "kafka_atomfast")
MACHINE_KEYS = ("date", "revision", "command", "cpu", "cores", "python", "versions")


def _is_quick(raw: dict) -> bool:
    if raw.get("quick"):
        return True
    thr = (raw.get("sections") or {}).get("throughput") or {}
    if thr.get("quick"):
        return True
    return "--quick" in str((raw.get("machine") or {}).get("command", "")).split()


def summary(raw: dict) -> dict | None:
    """The comparison's part of a whole ``results.json`` (None if it has no throughput figures)."""
    thr = (raw.get("sections") or {}).get("throughput") or {}
    venues = {}
    for case, e in (thr.get("venues") or {}).items():
        if not isinstance(e, dict) or not e.get("us_per_frame"):
            continue
        prof = e.get("python_profile") or {}
        venues[case] = {
            "frames": e.get("frames"),
            "us_per_frame": {k: (e.get("us_per_frame") or {}).get(k) for k in US_KEYS},
            "ratios": {k: (e.get("ratios") or {}).get(k) for k in RATIO_KEYS},
            # absent: the run did not trace this venue ("not recorded")
            "opcodes_per_frame": prof.get("opcodes_per_frame"),
            "functions": prof.get("functions"),
        }
    if not venues:
        return None
    machine = raw.get("machine") or {}
    return {
        **{k: machine.get(k) for k in MACHINE_KEYS},
        "runs": thr.get("runs"),
        "cryptofeed_runs": thr.get("cryptofeed_runs"),
        "venues": venues,
    }


def baseline(path: Path) -> tuple[dict | None, str]:
    """(the summary of the run to compare against, or None; a sentence on where it came from).

    ``path`` is the ``results.json`` the new run is about to replace: read BEFORE anything is
    written."""
    path = Path(path)
    if not path.exists():
        return None, f"no previous run: `{path.name}` was not in the output directory"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"no previous run: `{path.name}` could not be read ({type(exc).__name__}: {exc})"
    if not isinstance(raw, dict):
        return None, f"no previous run: `{path.name}` is not a results file"
    own = None if _is_quick(raw) else summary(raw)
    if own is not None:
        return own, "the run this one replaces, whose `results.json` it overwrites"
    kept = raw.get("previous")
    why = "a --quick smoke run" if _is_quick(raw) else "a run without throughput figures"
    if isinstance(kept, dict) and kept.get("venues"):
        return kept, (f"the run that the replaced `results.json`, {why} of {(raw.get('machine') or {}).get('date')}, "
                      "was itself compared against, kept under its `previous`")
    return None, f"no previous run to compare with: the replaced `results.json` is {why} and keeps no `previous`"


def label(prev: dict) -> str:
    """``2026-11-21 03:19 UTC, git 5c54bdf`` (from the previous run's own metadata)."""
    parts = [str(prev.get("date") or "date unknown")]
    if prev.get("revision"):
        parts.append(f"git {prev['revision']}")
    return ", ".join(parts)


def machine_changes(prev: dict, info: dict) -> list[str]:
    """What differs between the two runs' machine and versions (``a -> b``)."""
    out = []
    for key, name in (("cpu", "CPU"), ("cores", "cores"), ("python", "Python")):
        if prev.get(key) is not None and prev.get(key) != info.get(key):
            out.append(f"{name} {prev.get(key)} -> {info.get(key)}")
    old, new = prev.get("versions") or {}, info.get("versions") or {}
    for pkg in sorted(set(old) | set(new)):
        if old.get(pkg) != new.get(pkg):
            out.append(f"{pkg} {old.get(pkg, 'not recorded')} -> {new.get(pkg, 'not recorded')}")
    return out
