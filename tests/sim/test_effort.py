"""The effort report: first crossings of piecewise-linear curves, F1 at equal characters averaged over the
seeds that reached the budget, effort to reach shares of the all-data F1 and the ratio to random, on rows
whose curves are known by construction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lasl_backend.sim.effort import TARGETS, effort_markdown, effort_report, first_reach, write_effort

FULL = 0.4  # all-data F1: the targets are 0.36, 0.38 and 0.392
BUDGETS = (10_000, 15_000, 40_000)


def run_rows(strategy: str, seed: int, chars: list[int], f1: list[float], with_corrections: bool) -> list[dict[str, Any]]:
    """One run's rows: records = chars / 10 000, corrections = chars / 2 (left out when asked)."""
    rows = []
    for i, (c, f) in enumerate(zip(chars, f1)):
        row: dict[str, Any] = {"strategy": strategy, "seed": seed, "round": i, "labeled_chars": c,
                               "labeled_records": c // 10_000, "f1": f}
        if with_corrections:
            row["corrections"] = c // 2
        rows.append(row)
    return rows


def random_rows() -> list[dict[str, Any]]:
    """Random: seed 0 has F1 = chars / 100 000 up to 40k chars, seed 1 F1 = chars / 50 000 up to 30k; no
    corrections (rows of an older run). Their mean on the common range is 0.015 per thousand chars."""
    return (run_rows("random", 0, [0, 10_000, 20_000, 40_000], [0.0, 0.1, 0.2, 0.4], with_corrections=False)
            + run_rows("random", 1, [0, 20_000, 30_000], [0.0, 0.4, 0.6], with_corrections=False))


def lasl_rows() -> list[dict[str, Any]]:
    """Lasl: two seeds on 0..30k chars whose mean is the curve (0, 0.3, 0.4, 0.45) at 0, 10k, 20k, 30k."""
    chars = [0, 10_000, 20_000, 30_000]
    return (run_rows("lasl", 0, chars, [0.0, 0.2, 0.4, 0.45], with_corrections=True)
            + run_rows("lasl", 1, chars, [0.0, 0.4, 0.4, 0.45], with_corrections=True))


# Where the mean curves first reach each target (characters): random rises 0.015 per 1000 chars; lasl's
# mean rises 0.01 per 1000 chars between 10k and 20k, from 0.3.
RANDOM_CHARS = {t: t * FULL / 0.015 * 1000 for t in TARGETS}
LASL_CHARS = {t: 10_000 + (t * FULL - 0.3) / 0.01 * 1000 for t in TARGETS}


# ---- first_reach ---------------------------------------------------------------------------------------------
def test_first_reach_interpolates_the_crossing() -> None:
    """The crossing inside a segment is found by linear interpolation between its two points."""
    xs, ys = np.array([0.0, 10.0, 20.0]), np.array([0.0, 0.5, 1.0])
    assert first_reach(xs, ys, 0.75) == pytest.approx(15.0)
    assert first_reach(xs, ys, 0.1) == pytest.approx(2.0)


def test_first_reach_on_a_point_is_that_point() -> None:
    """A target met exactly at a point is reached at that point's x."""
    assert first_reach(np.array([0.0, 10.0, 20.0]), np.array([0.0, 0.5, 1.0]), 0.5) == pytest.approx(10.0)


def test_first_reach_takes_the_first_of_several_crossings() -> None:
    """A curve that rises, falls and rises again is reached at its first crossing."""
    xs, ys = np.array([0.0, 10.0, 20.0, 30.0]), np.array([0.0, 1.0, 0.0, 1.0])
    assert first_reach(xs, ys, 0.5) == pytest.approx(5.0)


def test_first_reach_already_above_at_the_first_point() -> None:
    """A curve starting at or above the target reaches it at its first x."""
    assert first_reach(np.array([3.0, 8.0]), np.array([0.9, 0.95]), 0.5) == 3.0


def test_first_reach_never() -> None:
    """A curve that stays below the target never reaches it: None."""
    assert first_reach(np.array([0.0, 10.0, 20.0]), np.array([0.1, 0.2, 0.3]), 0.31) is None


# ---- effort_report -------------------------------------------------------------------------------------------
def test_f1_at_a_budget_is_the_mean_over_the_seeds_that_reached_it() -> None:
    """F1 at a budget averages the seeds' interpolated values; seeds whose run ends before it are left out and counted."""
    rep = effort_report(random_rows() + lasl_rows(), FULL, budgets=BUDGETS)
    chars = rep["by"]["labeled_chars"]
    assert rep["full_f1"] == FULL and rep["budgets"] == list(BUDGETS)
    r, lasl = chars["random"], chars["lasl"]
    assert r["seeds"] == 2 and lasl["seeds"] == 2
    assert r["f1_at"]["10000"][0] == pytest.approx((0.1 + 0.2) / 2) and r["f1_at"]["10000"][1] == 2
    assert r["f1_at"]["15000"][0] == pytest.approx((0.15 + 0.3) / 2) and r["f1_at"]["15000"][1] == 2
    assert r["f1_at"]["40000"][0] == pytest.approx(0.4) and r["f1_at"]["40000"][1] == 1  # seed 1 ends at 30k
    assert lasl["f1_at"]["10000"][0] == pytest.approx((0.2 + 0.4) / 2)
    assert lasl["f1_at"]["15000"][0] == pytest.approx((0.3 + 0.4) / 2)
    assert lasl["f1_at"]["40000"] == (None, 0)  # no lasl run got that far


def test_to_reach_is_on_the_mean_curve_and_vs_random_is_the_ratio() -> None:
    """Characters to reach each target come from the mean curve; vs_random divides by random's."""
    rep = effort_report(random_rows() + lasl_rows(), FULL, budgets=BUDGETS)
    chars = rep["by"]["labeled_chars"]
    for t in TARGETS:
        key = f"{t:.2f}"
        assert chars["random"]["to_reach"][key] == pytest.approx(RANDOM_CHARS[t], rel=1e-9)
        assert chars["lasl"]["to_reach"][key] == pytest.approx(LASL_CHARS[t], rel=1e-9)
        assert chars["lasl"]["vs_random"][key] == pytest.approx(LASL_CHARS[t] / RANDOM_CHARS[t], rel=1e-9)
        assert chars["random"]["vs_random"][key] == pytest.approx(1.0)
    records = rep["by"]["labeled_records"]  # records are chars / 10 000 in every row
    for t in TARGETS:
        key = f"{t:.2f}"
        assert records["random"]["to_reach"][key] == pytest.approx(RANDOM_CHARS[t] / 10_000, rel=1e-9)
        assert records["lasl"]["to_reach"][key] == pytest.approx(LASL_CHARS[t] / 10_000, rel=1e-9)
        assert records["lasl"]["f1_at"] == {}  # F1 at a budget is for characters only


def test_rows_without_corrections_do_not_break_the_report() -> None:
    """Runs whose rows lack corrections are left out of that unit only; without random there, no ratio."""
    rep = effort_report(random_rows() + lasl_rows(), FULL, budgets=BUDGETS)
    corr = rep["by"]["corrections"]
    assert set(corr) == {"lasl"}
    for t in TARGETS:
        key = f"{t:.2f}"
        assert corr["lasl"]["to_reach"][key] == pytest.approx(LASL_CHARS[t] / 2, rel=1e-9)
        assert corr["lasl"]["vs_random"][key] is None
    assert set(rep["by"]["labeled_chars"]) == {"random", "lasl"}

    none_at_all = effort_report(random_rows(), FULL, budgets=BUDGETS)
    assert none_at_all["by"]["corrections"] == {}
    assert "random" in effort_markdown(none_at_all)


def test_no_ratio_without_random_or_where_random_never_reaches() -> None:
    """vs_random is None with no random runs, and for a target random's mean curve never reaches."""
    alone = effort_report(lasl_rows(), FULL, budgets=BUDGETS)["by"]["labeled_chars"]["lasl"]
    assert all(v is None for v in alone["vs_random"].values())
    assert alone["to_reach"]["0.90"] == pytest.approx(LASL_CHARS[0.90], rel=1e-9)

    # random capped at 0.37: it reaches 90% (0.36) but neither 95% (0.38) nor 98% (0.392)
    capped = run_rows("random", 0, [0, 10_000, 20_000, 30_000], [0.0, 0.2, 0.36, 0.37], with_corrections=True)
    rep = effort_report(capped + lasl_rows(), FULL, budgets=BUDGETS)["by"]["labeled_chars"]
    assert rep["random"]["to_reach"]["0.90"] == pytest.approx(20_000, rel=1e-9)
    assert rep["random"]["to_reach"]["0.95"] is None and rep["random"]["to_reach"]["0.98"] is None
    assert rep["lasl"]["vs_random"]["0.90"] == pytest.approx(LASL_CHARS[0.90] / 20_000, rel=1e-9)
    assert rep["lasl"]["vs_random"]["0.95"] is None and rep["lasl"]["vs_random"]["0.98"] is None


# ---- effort_markdown -----------------------------------------------------------------------------------------
def test_markdown_has_a_row_per_strategy_and_dashes_for_missing_values() -> None:
    """One F1-at-budget row per strategy, one effort row per strategy and unit, "–" where a number is missing."""
    rep = effort_report(random_rows() + lasl_rows(), FULL, budgets=BUDGETS)
    lines = effort_markdown(rep).splitlines()
    assert lines[0] == "| strategy | seeds | 10k chars | 15k chars | 40k chars |"
    assert "| random | 2 | 0.150 | 0.225 | 0.400 |" in lines
    assert "| lasl | 2 | 0.300 | 0.350 | – |" in lines
    units = [ln.split(" | ")[1] for ln in lines if "(" in ln and not ln.startswith("| strategy")]
    assert sorted(units) == sorted(["k chars", "k chars", "corrections", "records", "records"])
    lasl_chars = next(ln for ln in lines if ln.startswith("| lasl | k chars |"))
    assert f"{LASL_CHARS[0.90] / 1000:.1f} ({LASL_CHARS[0.90] / RANDOM_CHARS[0.90] * 100:.0f}%)" in lasl_chars
    lasl_corr = next(ln for ln in lines if ln.startswith("| lasl | corrections |"))
    assert f"{LASL_CHARS[0.90] / 2:.0f} (–%)" in lasl_corr  # no random corrections to compare with


# ---- write_effort --------------------------------------------------------------------------------------------
def test_write_effort_writes_both_files(tmp_path: Path) -> None:
    """With rows and the all-data F1, effort.json holds the report and effort.md its tables."""
    rows = random_rows() + lasl_rows()
    rep = write_effort(tmp_path, rows, FULL)
    assert rep is not None
    assert json.loads((tmp_path / "effort.json").read_text()) == json.loads(json.dumps(rep))
    assert (tmp_path / "effort.md").read_text() == effort_markdown(rep)
    assert rep == effort_report(rows, FULL)


@pytest.mark.parametrize("full_f1, with_rows", [(None, True), (0.0, True), (FULL, False)])
def test_write_effort_writes_nothing_without_a_target_or_rows(tmp_path: Path, full_f1: float | None, with_rows: bool) -> None:
    """No all-data F1 or no rows: None, and no file."""
    assert write_effort(tmp_path, random_rows() if with_rows else [], full_f1) is None
    assert list(tmp_path.iterdir()) == []
