"""Helpers of ``python -m bench``: the machine and versions, Markdown tables, number
formatting, medians and the matplotlib (Agg) figure helpers shared by the sections."""
from __future__ import annotations

import datetime as _dt
import gc
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Sequence

#: distributions whose versions the report states
PACKAGES = ("atomfast", "atomfast-avro", "msgspec", "picows", "confluent-kafka", "cryptofeed", "matplotlib",
            "sortedcontainers", "order-book")


# ---------------------------------------------------------------------------------------------
# machine and versions


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def os_name() -> str:
    pretty = ""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    pretty = line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    kernel = f"{platform.system()} {platform.release()}"
    return f"{pretty} ({kernel})" if pretty else kernel


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision(root: Path) -> str:
    try:
        import subprocess

        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info(command: str, root: Path) -> dict:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "os": os_name(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "revision": git_revision(root),
    }


def machine_markdown(info: dict) -> str:
    v = info["versions"]
    lines = [
        "| | |",
        "|---|---|",
        f"| command | `{info['command']}` |",
        f"| date | {info['date']} |",
        f"| machine | {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable) |",
        f"| OS | {info['os']} |",
        f"| Python | {info['python']} |",
        f"| atomfast | {v.get('atomfast')} (atomfast-avro {v.get('atomfast-avro')}), git {info['revision']} |",
        "| msgspec / picows / confluent-kafka | "
        f"{v.get('msgspec')} / {v.get('picows')} / {v.get('confluent-kafka')} |",
        f"| cryptofeed | {v.get('cryptofeed')} |",
        f"| others | matplotlib {v.get('matplotlib')}, sortedcontainers {v.get('sortedcontainers')}, "
        f"order-book {v.get('order-book')} |",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# timing


def timed(fn: Callable, *args) -> tuple[float, object]:
    """Seconds of one call (garbage collected before, so one run does not pay for another's)."""
    gc.collect()
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------------------------
# Markdown


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> str:
    """A Markdown table; ``align``: one letter per column, ``l`` or ``r`` (default: first
    column left, the rest right)."""
    headers = list(headers)
    align = align or ("l" + "r" * (len(headers) - 1))
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        out.append("| " + " | ".join("" if c is None else str(c) for c in row) + " |")
    return "\n".join(out)


def num(value: float | None, digits: int | None = None) -> str:
    """A figure with about three significant digits (``-`` for none)."""
    if value is None:
        return "-"
    a = abs(value)
    if digits is None:
        digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    return f"{value:,.{digits}f}"


def ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x" if value < 100 else f"{value:,.0f}x"


def verdict(value: float | None, target: float, at_most: bool) -> str:
    """``1.8x, met`` / ``2.6x, **not met**`` against a target (``at_most``: value <= target)."""
    if value is None:
        return "-"
    ok = value <= target if at_most else value >= target
    return f"{ratio(value)} ✓ met" if ok else f"{ratio(value)} ✗ **not met**"


# ---------------------------------------------------------------------------------------------
# figures (matplotlib, Agg backend)


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def log_axis(ax) -> None:
    """A log y axis labelled in plain numbers (1, 2, 5, 10, 20, ...)."""
    from matplotlib import ticker

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _pos: f"{y:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def grouped_bars(path: Path, groups: Sequence[str], series: dict[str, Sequence[float | None]], ylabel: str,
                 title: str, log: bool = True, hlines: Sequence[tuple[float, str]] = (),
                 colors: dict[str, str] | None = None) -> Path:
    """One group of bars per entry of ``groups``, one bar per series (None: no bar)."""
    plt = pyplot()
    n = max(1, len(series))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(8.0, 0.9 * len(groups) * max(1, n) / 2.5 + 3), 5.2))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (n - 1) / 2) * width for i in range(len(groups))]
        pts = [(x, v) for x, v in zip(xs, values) if v is not None and v > 0]
        if pts:
            ax.bar([p[0] for p in pts], [p[1] for p in pts], width=width, label=name,
                   color=(colors or {}).get(name))
    for y, label in hlines:
        ax.axhline(y, color="crimson", linestyle="--", linewidth=1)
        ax.annotate(label, xy=(1.0, y), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    fontsize=8, color="crimson")
    if log:
        log_axis(ax)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def stacked_bars(path: Path, groups: Sequence[str], parts: dict[str, Sequence[float]], ylabel: str,
                 title: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * len(groups) + 3), 5.2))
    bottom = [0.0] * len(groups)
    for name, values in parts.items():
        vals = [max(0.0, v or 0.0) for v in values]
        ax.bar(range(len(groups)), vals, bottom=bottom, label=name, width=0.6)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def command_line(argv: Sequence[str] | None = None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python -m bench", *argv])
