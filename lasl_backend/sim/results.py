"""The simulator's results files: ``results.csv`` (one row per strategy, seed and round), ``results.json``
(the settings too) and ``learning_curves.png``, rewritten from every run's saved state after each round.

Several simulate processes may share one output directory: each writes through a temporary file named
after its pid and renames it into place, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from .plots import plot_curves
from .settings import SimSettings

__all__ = ["COLUMNS", "collect_rows", "write_results"]

COLUMNS = ["strategy", "seed", "round", "labeled_records", "labeled_fraction", "labeled_chars", "f1", "lambda_t", "round_seconds"]


def collect_rows(out: Path) -> list[dict[str, Any]]:
    """Every finished round of every run under ``out/state``, by strategy, seed and round."""
    rows: list[dict[str, Any]] = []
    for st in sorted((out / "state").glob("*/state.json")):
        rows += json.loads(st.read_text())["rows"]
    return sorted(rows, key=lambda r: (r["strategy"], r["seed"], r["round"]))


def write_results(out: Path, settings: SimSettings, full_f1: float | None) -> list[dict[str, Any]]:
    """Rewrite the three results files from the saved states; returns the rows."""
    rows = collect_rows(out)
    tag = f"{os.getpid()}.tmp"
    with (out / f"results.csv.{tag}").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: r[c] for c in COLUMNS})
    os.replace(out / f"results.csv.{tag}", out / "results.csv")
    (out / f"results.json.{tag}").write_text(json.dumps({"settings": settings.to_dict(), "full_data_f1": full_f1, "rows": rows}, indent=1))
    os.replace(out / f"results.json.{tag}", out / "results.json")
    if rows:
        plot_curves(rows, out / "learning_curves.png", full_f1)
    return rows
