"""Where the stop rule fires in a replay, against where the true curve first reaches 97% and 98% of the
all-data F1: ``python -m lasl_backend.sim.stopping_report --out <simulation dir> --full-f1 0.8194``.

Each round of a ``queue`` replay carries what the backend would have had after that version: the held-back
slice's per-record counts and kappa with the previous version on the stop set. The rule
(``stopping.recommend``) is applied to the rounds so far, exactly as the backend applies it after each run,
and the first round it says "stop" is the stop point. The test F1 there is the rule's score; the dev F1
(records kept out of the pool, ``--dev-records``) is what thresholds may be chosen on (``--choose``), so
the test set only scores the rule. Writes ``stopping.json`` and ``stopping.png`` (the stop point marked on
each seed's learning curve).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

from ..stopping import STOP, StopRule, VersionSignal, micro_f1, recommend
from .results import collect_rows

__all__ = ["choose_rule", "stop_point", "stopping_report"]

#: the thresholds ``--choose`` searches
GRID = {"kappa_threshold": (0.95, 0.96, 0.97, 0.975, 0.98, 0.99), "kappa_window": (1, 2, 3, 4, 5, 6),
        "stop_gain": (0.005, 0.01, 0.02, 0.03, 0.05)}


def _signal(row: dict[str, Any]) -> VersionSignal:
    counts = row.get("heldout") or []
    f1 = micro_f1(counts)
    kappa = row.get("kappa")
    return VersionSignal(n_labeled=int(row["labeled_records"]), heldout_f1=f1, heldout_records=len(counts),
                         kappa=None if kappa is None or (isinstance(kappa, float) and math.isnan(kappa)) else float(kappa))


def stop_point(rows: Sequence[dict[str, Any]], rule: StopRule) -> int | None:
    """Index of the first round at which the rule says stop (None: it never does within the run)."""
    history: list[VersionSignal] = []
    for i, row in enumerate(rows):
        history.append(_signal(row))
        if recommend(history, rule).state == STOP:
            return i
    return None


def _first(rows: Sequence[dict[str, Any]], key: str, target: float) -> int | None:
    return next((i for i, r in enumerate(rows) if r.get(key) is not None and r[key] >= target), None)


def _run_report(rows: Sequence[dict[str, Any]], rule: StopRule, full_f1: float, pool: int, key: str = "f1") -> dict[str, Any]:
    """One run: the stop point and the curve's first 97%/98% points, measured on ``key`` (f1 or dev_f1)."""
    i = stop_point(rows, rule)
    out: dict[str, Any] = {"stop": None if i is None else {"round": rows[i]["round"], "records": rows[i]["labeled_records"],
                                                           "chars": rows[i]["labeled_chars"], "f1": rows[i][key],
                                                           "share_of_full": rows[i][key] / full_f1,
                                                           "records_saved": pool - rows[i]["labeled_records"]}}
    for share in (0.97, 0.98):
        j = _first(rows, key, share * full_f1)
        out[f"reach_{share:.2f}"] = None if j is None else {"records": rows[j]["labeled_records"], "chars": rows[j]["labeled_chars"]}
    reach = out["reach_0.97"]
    out["records_vs_reach_0.97"] = (out["stop"]["records"] / reach["records"]) if out["stop"] and reach else None
    out["passes"] = bool(out["stop"] and out["stop"]["share_of_full"] >= 0.97 and out["records_vs_reach_0.97"] is not None
                         and out["records_vs_reach_0.97"] <= 1.3)
    return out


def _runs(out: Path, strategy: str) -> dict[int, list[dict[str, Any]]]:
    runs: dict[int, list[dict[str, Any]]] = {}
    for r in collect_rows(out):
        if r["strategy"] == strategy:
            runs.setdefault(int(r["seed"]), []).append(r)
    return {s: sorted(rs, key=lambda r: r["round"]) for s, rs in sorted(runs.items())}


def choose_rule(runs: dict[int, list[dict[str, Any]]], full_f1: float, pool: int, base: StopRule = StopRule()) -> StopRule:
    """The grid's rule that passes on the dev curve in most runs; among those, the one whose worst stop keeps
    the most of the all-data F1, then the one that stops earliest (dev F1 only, never test). A run the rule
    never stops in counts as keeping nothing: labeling on forever is no answer."""
    best: tuple[Any, ...] | None = None
    for values in itertools.product(*GRID.values()):
        picked = dict(zip(GRID, values))
        rule = replace(base, **picked, slow_gain=max(base.slow_gain, picked["stop_gain"]))  # "slowing" never below "flat"
        reps = [_run_report(rows, rule, full_f1, pool, key="dev_f1") for rows in runs.values()]
        passed = sum(r["passes"] for r in reps)
        worst = min(r["stop"]["share_of_full"] if r["stop"] else 0.0 for r in reps)
        used = sum(r["stop"]["records"] if r["stop"] else 10**9 for r in reps)
        key = (-passed, -round(worst, 3), used)
        if best is None or key < best[0]:
            best = (key, rule)
    assert best is not None
    return best[1]


def stopping_report(out: Path, strategy: str, full_f1: float, pool: int, rule: StopRule, dev_full_f1: float | None = None) -> dict[str, Any]:
    runs = _runs(out, strategy)
    report = {"strategy": strategy, "full_f1": full_f1, "rule": asdict(rule),
              "runs": {str(s): _run_report(rows, rule, full_f1, pool) for s, rows in runs.items()}}
    if dev_full_f1:
        report["dev"] = {str(s): _run_report(rows, rule, dev_full_f1, pool, key="dev_f1") for s, rows in runs.items()}
    return report


def plot_stops(out: Path, strategy: str, report: dict[str, Any], path: Path) -> None:
    """Each seed's test curve by records, its stop point marked, and the 97%/98% lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _runs(out, strategy)
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    full = report["full_f1"]
    for seed, rows in runs.items():
        line = ax.plot([r["labeled_records"] for r in rows], [r["f1"] for r in rows], marker="o", ms=2.5, lw=1.3, label=f"seed {seed}")[0]
        stop = report["runs"][str(seed)]["stop"]
        if stop:
            ax.axvline(stop["records"], color=line.get_color(), ls="--", lw=1)
            ax.plot([stop["records"]], [stop["f1"]], marker="X", ms=11, color=line.get_color(), label=f"seed {seed}: stop at {stop['records']} records")
    for share, style in ((1.0, "-"), (0.98, ":"), (0.97, "-.")):
        ax.axhline(share * full, color="gray", ls=style, lw=1, label=f"{share:.0%} of all data ({share * full:.3f})")
    ax.set_xlabel("records labeled")
    ax.set_ylabel("strict micro F1 on the test records")
    ax.set_title(f"Where the stop rule fires ({strategy})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="a lasl simulate output directory (queue protocol)")
    p.add_argument("--strategy", default="lasl+cost+div")
    p.add_argument("--full-f1", required=True, type=float, help="the all-data test F1")
    p.add_argument("--dev-full-f1", type=float, help="the all-data dev F1 (for --choose)")
    p.add_argument("--pool", type=int, default=900, help="records in the pool (what labeling everything costs)")
    p.add_argument("--choose", action="store_true", help="choose the thresholds on the dev curve (needs --dev-full-f1)")
    args = p.parse_args(argv)
    rule = StopRule()
    if args.choose:
        if not args.dev_full_f1:
            p.error("--choose needs --dev-full-f1")
        rule = choose_rule(_runs(args.out, args.strategy), args.dev_full_f1, args.pool)
    report = stopping_report(args.out, args.strategy, args.full_f1, args.pool, rule, args.dev_full_f1)
    (args.out / "stopping.json").write_text(json.dumps(report, indent=1))
    plot_stops(args.out, args.strategy, report, args.out / "stopping.png")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
