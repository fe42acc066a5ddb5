"""The simulator's results files: ``results.csv`` (one row per strategy, seed and round), ``results.json``
(the settings too), ``learning_curves.png`` and, given the all-data F1, ``effort.json``/``effort.md``
(``effort``), rewritten from every run's saved state after each round.

Several simulate processes may share one output directory: each writes through a temporary file named
after its pid and renames it into place, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from ..stopping import micro_f1
from .effort import write_effort
from .plots import plot_curves
from .settings import SimSettings

__all__ = ["COLUMNS", "ROW_KEYS", "ReplayFileError", "collect_rows", "saved_rows", "write_results"]

COLUMNS = ["strategy", "seed", "round", "labeled_records", "labeled_fraction", "labeled_chars", "corrections", "f1", "dev_f1", "heldout_f1",
           "heldout_records", "kappa", "lambda_t", "round_seconds"]


def _csv_row(r: dict[str, Any]) -> dict[str, Any]:
    """A row's CSV cells: the held-back F1 from its per-record counts (rows of runs made before a column
    existed leave it empty)."""
    counts = r.get("heldout")
    extra: dict[str, Any] = {}
    if counts is not None:
        f1 = micro_f1(counts)
        extra = {"heldout_f1": "" if f1 is None else f1, "heldout_records": len(counts)}
    return {c: extra.get(c, r.get(c, "")) for c in COLUMNS}


#: what every saved round carries (the runs are told apart and ordered by these)
ROW_KEYS = ("strategy", "seed", "round")


class ReplayFileError(ValueError):
    """A saved run that cannot be read: the message names the file."""


def saved_rows(path: Path) -> list[dict[str, Any]]:
    """The rounds in one ``state.json`` or ``results.json`` (both keep them under ``rows``)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReplayFileError(f"{path}: unreadable ({exc})") from None
    except (KeyError, TypeError):
        raise ReplayFileError(f"{path}: no list of rounds under 'rows'") from None
    if not isinstance(rows, list):
        raise ReplayFileError(f"{path}: no list of rounds under 'rows'")
    for i, r in enumerate(rows):
        missing = [k for k in ROW_KEYS if not isinstance(r, dict) or k not in r]
        if missing:
            raise ReplayFileError(f"{path}: round {i} lacks {', '.join(missing)}")
    return rows


def collect_rows(out: Path) -> list[dict[str, Any]]:
    """Every finished round of every run under ``out/state``, by strategy, seed and round
    (:class:`ReplayFileError` for a file that cannot be read)."""
    rows: list[dict[str, Any]] = []
    for st in sorted((out / "state").glob("*/state.json")):
        rows += saved_rows(st)
    return sorted(rows, key=lambda r: (str(r["strategy"]), r["seed"], r["round"]))


def write_results(out: Path, settings: SimSettings, full_f1: float | None) -> list[dict[str, Any]]:
    """Rewrite the three results files from the saved states; returns the rows."""
    rows = collect_rows(out)
    tag = f"{os.getpid()}.tmp"
    with (out / f"results.csv.{tag}").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(_csv_row(r))
    os.replace(out / f"results.csv.{tag}", out / "results.csv")
    (out / f"results.json.{tag}").write_text(json.dumps({"settings": settings.to_dict(), "full_data_f1": full_f1, "rows": rows}, indent=1))
    os.replace(out / f"results.json.{tag}", out / "results.json")
    if rows:
        plot_curves(rows, out / "learning_curves.png", full_f1)
        write_effort(out, rows, full_f1)
    return rows
