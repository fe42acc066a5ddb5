"""What each strategy costs the annotator: F1 at equal characters (and corrections) labeled, and the
characters and corrections needed to first reach 90%, 95% and 98% of the all-data F1, with the saving
against random. ``effort.json`` and ``effort.md`` beside the results; the curves are in the PNG.

Each run's curve is interpolated linearly between its rounds, then averaged over seeds: a budget a run
has not reached is left out (the table says over how many seeds each number is). "First reaches" is the
first crossing of the target on the interpolated curve of the mean over seeds (curves that never reach
it give None).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["BUDGETS", "TARGETS", "all_data_f1", "effort_markdown", "effort_report", "f1_at", "first_reach", "usable_f1",
           "write_effort"]

#: characters labeled at which strategies are compared
BUDGETS = (20_000, 40_000, 60_000, 80_000, 100_000, 130_000)
#: shares of the all-data F1
TARGETS = (0.90, 0.95, 0.98)


def usable_f1(x: float | None) -> bool:
    """Whether ``x`` is an F1 to aim at: finite, in (0, 1]."""
    return x is not None and math.isfinite(x) and 0.0 < x <= 1.0


def all_data_f1(text: str) -> float:
    """An argparse type: the all-data F1, in (0, 1]."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not usable_f1(x):
        raise argparse.ArgumentTypeError(f"an F1 in (0, 1] is needed, got {text}")
    return x


def _runs(rows: Sequence[dict[str, Any]], key: str) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """strategy → one (x, F1) curve per seed, x = ``key`` (rows without it are left out)."""
    by: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get(key) is not None:
            by[(r["strategy"], int(r["seed"]))].append(r)
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for (name, _), rs in sorted(by.items()):
        rs = sorted(rs, key=lambda r: r["round"])
        out[name].append((np.array([float(r[key]) for r in rs]), np.array([float(r["f1"]) for r in rs])))
    return out


def _at(curves: list[tuple[np.ndarray, np.ndarray]], x: float) -> tuple[float | None, int]:
    """Mean F1 at ``x`` over the runs that reached it, and how many did."""
    vals = [float(np.interp(x, xs, ys)) for xs, ys in curves if xs[0] <= x <= xs[-1]]
    return (float(np.mean(vals)) if vals else None), len(vals)


def f1_at(rows: Sequence[dict[str, Any]], unit: str, points: Sequence[float]) -> dict[str, dict[str, tuple[float | None, int]]]:
    """strategy → point → (mean F1 over the seeds that reached it, how many did), x = ``unit`` (e.g.
    ``labeled_records``)."""
    return {name: {f"{p:g}": _at(curves, p) for p in points} for name, curves in _runs(rows, unit).items()}


def first_reach(xs: np.ndarray, ys: np.ndarray, target: float) -> float | None:
    """The first x where the piecewise-linear curve reaches ``target`` (None if it never does)."""
    for i in range(len(xs)):
        if ys[i] >= target:
            if i == 0:
                return float(xs[0])
            x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
            return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))
    return None


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The mean over seeds on a common grid, up to where the shortest run ends."""
    hi = min(xs[-1] for xs, _ in curves)
    lo = max(xs[0] for xs, _ in curves)
    grid = np.linspace(lo, hi, 400) if hi > lo else np.array([lo])
    return grid, np.mean([np.interp(grid, xs, ys) for xs, ys in curves], axis=0)


def effort_report(rows: Sequence[dict[str, Any]], full_f1: float, budgets: Sequence[int] = BUDGETS) -> dict[str, Any]:
    """The numbers of the module docstring, per strategy, for characters and for corrections."""
    report: dict[str, Any] = {"full_f1": full_f1, "budgets": list(budgets), "targets": list(TARGETS), "by": {}}
    for unit in ("labeled_chars", "corrections", "labeled_records"):
        per: dict[str, Any] = {}
        for name, curves in _runs(rows, unit).items():
            grid, mean = _mean_curve(curves)
            per[name] = {
                "seeds": len(curves),
                "f1_at": {str(b): _at(curves, b) for b in budgets} if unit == "labeled_chars" else {},
                "to_reach": {f"{t:.2f}": first_reach(grid, mean, t * full_f1) for t in TARGETS},
            }
        base = per.get("random")
        for name, v in per.items():
            v["vs_random"] = {t: (x / base["to_reach"][t] if base and x and base["to_reach"].get(t) else None)
                              for t, x in v["to_reach"].items()}
        report["by"][unit] = per
    return report


def _fmt(x: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * scale:.{digits}f}"


def effort_markdown(report: dict[str, Any]) -> str:
    """The report as two Markdown tables (F1 at equal characters; effort to reach the targets)."""
    chars = report["by"].get("labeled_chars", {})
    budgets = report["budgets"]
    lines = ["| strategy | seeds | " + " | ".join(f"{b // 1000}k chars" for b in budgets) + " |",
             "|---|---|" + "---|" * len(budgets)]
    for name, v in chars.items():
        lines.append(f"| {name} | {v['seeds']} | " + " | ".join(_fmt(v["f1_at"][str(b)][0]) for b in budgets) + " |")
    lines += ["", "| strategy | unit | " + " | ".join(f"to {t:.0%} (vs random)" for t in report["targets"]) + " |",
              "|---|---|" + "---|" * len(report["targets"])]
    for unit, label, scale in (("labeled_chars", "k chars", 1e-3), ("corrections", "corrections", 1.0), ("labeled_records", "records", 1.0)):
        for name, v in report["by"].get(unit, {}).items():
            cells = [f"{_fmt(x, scale, 1 if scale != 1.0 else 0)} ({_fmt(v['vs_random'][t], 100, 0)}%)" for t, x in v["to_reach"].items()]
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_effort(out: Path, rows: Sequence[dict[str, Any]], full_f1: float | None) -> dict[str, Any] | None:
    """``effort.json`` and ``effort.md`` in ``out`` (nothing without the all-data F1 to aim at)."""
    if not usable_f1(full_f1) or not rows:
        return None
    report = effort_report(rows, full_f1)
    (out / "effort.json").write_text(json.dumps(report, indent=1))
    (out / "effort.md").write_text(effort_markdown(report))
    return report
