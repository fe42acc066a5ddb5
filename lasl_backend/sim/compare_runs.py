"""Replays from several directories side by side: F1 at equal characters, the effort to reach 90/95/98%
of the all-data F1, F1 per record, on test and dev, and one figure.

    python -m lasl_backend.sim.compare_runs docs/results/effort:lasl+cost+div,lasl,random runs/peak \\
        --full-f1 0.8170 --dev-full-f1 0.8334 --out docs/results/effort-peak/compare

Each source is a ``lasl simulate`` output directory (its ``state/``) or a directory of committed results
(its ``results.json``), optionally followed by ``:`` and the strategies to take from it (default: all).
``name=label`` shows strategy ``name`` as ``label``, so one strategy replayed with other options keeps apart.
A variant replayed later is compared with the committed rounds of the runs it is measured against,
without replaying those again. Writes ``OUT.json`` and ``OUT_learning_curves.png``; prints the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .effort import all_data_f1, effort_markdown, effort_report, f1_at
from .plots import plot_curves
from .results import ReplayFileError, collect_rows, saved_rows

__all__ = ["RECORD_POINTS", "compare", "read_source"]

#: records labeled at which F1 per record is compared
RECORD_POINTS = (50, 100, 150, 200, 250)


def read_source(spec: str) -> list[dict[str, Any]]:
    """The rounds of ``PATH[:strategy,...]`` (ReplayFileError for a path that holds no replay)."""
    path, _, names = spec.partition(":")
    root = Path(path)
    if (root / "state").is_dir():
        rows = collect_rows(root)
    elif (root / "results.json").is_file():
        rows = saved_rows(root / "results.json")
    else:
        raise ReplayFileError(f"{root}: neither a lasl simulate output (state/) nor a results directory (results.json)")
    labels = dict(_name_label(n) for n in names.split(",") if n)
    missing = sorted(set(labels) - {r["strategy"] for r in rows})
    if missing:
        raise ReplayFileError(f"{root}: no rounds of {', '.join(missing)}")
    return [dict(r, strategy=labels[r["strategy"]]) if labels else r
            for r in rows if not labels or r["strategy"] in labels]


def _name_label(item: str) -> tuple[str, str]:
    """``name`` or ``name=label`` as (the strategy's name in the replay, the name it is shown as)."""
    name, _, label = item.partition("=")
    return name, label or name


def _records_markdown(per: dict[str, dict[str, tuple[float | None, int]]]) -> str:
    head = "| strategy | " + " | ".join(f"{p} records" for p in RECORD_POINTS) + " |"
    lines = [head, "|---|" + "---|" * len(RECORD_POINTS)]
    for name, at in per.items():
        cells = ["–" if at[str(p)][0] is None else f"{at[str(p)][0]:.3f} ({at[str(p)][1]})" for p in RECORD_POINTS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare(rows: Sequence[dict[str, Any]], full_f1: float, dev_full_f1: float | None) -> dict[str, Any]:
    """The effort report on test (and on dev, against the dev all-data F1) and F1 per record on test."""
    out: dict[str, Any] = {"test": effort_report(rows, full_f1),
                           "per_record": f1_at(rows, "labeled_records", RECORD_POINTS)}
    dev_rows = [dict(r, f1=r["dev_f1"]) for r in rows if r.get("dev_f1") is not None]
    if dev_full_f1 and dev_rows:
        out["dev"] = effort_report(dev_rows, dev_full_f1)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lasl_backend.sim.compare_runs", description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="+", help="PATH[:strategy[=label],...]: a simulate output or a committed results directory")
    p.add_argument("--full-f1", type=all_data_f1, required=True, help="the all-data test F1")
    p.add_argument("--dev-full-f1", type=all_data_f1, help="the all-data dev F1 (adds the dev tables)")
    p.add_argument("--out", type=Path, required=True, help="OUT.json and OUT_learning_curves.png are written")
    args = p.parse_args(argv)
    try:
        rows = [r for spec in args.sources for r in read_source(spec)]
    except ReplayFileError as exc:
        p.error(str(exc))
    report = compare(rows, args.full_f1, args.dev_full_f1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    plot_curves(rows, args.out.parent / f"{args.out.name}_learning_curves.png", args.full_f1)
    sys.stdout.write("test\n" + effort_markdown(report["test"]) + "\nper record (test)\n" + _records_markdown(report["per_record"]))
    if "dev" in report:
        sys.stdout.write("\ndev\n" + effort_markdown(report["dev"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
