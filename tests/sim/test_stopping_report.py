"""Where the stop rule fires in a replay and how that scores against the test curve, on synthetic rounds
whose held-back counts, kappas and F1 curves are built so the answer is known: the stop round, its
numbers in the report, the pass criterion, the dev-only threshold choice and the command line."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

import pytest

from lasl_backend.sim.stopping_report import choose_rule, main, stop_point, stopping_report
from lasl_backend.stopping import C_GRID, StopRule

N = 10**6  # gold (and predicted) entities on the held-back slice: F1 = tp / N
STRATEGY = "lasl+cost+div"
CHARS_PER_RECORD = 50

#: the thresholds these rows were built around (the defaults are chosen on replays and may move)
BASE = StopRule(kappa_threshold=0.97, kappa_window=2, stop_gain=0.01, slow_gain=0.03)


def rows_for(ns: Sequence[int], heldout_f1: Sequence[float], kappas: Sequence[float | None],
             f1: Sequence[float] | None = None, dev_f1: Sequence[float] | None = None,
             seed: int = 0, strategy: str = STRATEGY) -> list[dict[str, Any]]:
    """One run's rounds: ``ns[i]`` records labeled, held-back counts giving ``heldout_f1[i]``, ``kappas[i]``."""
    f1 = f1 if f1 is not None else [0.5] * len(ns)
    dev_f1 = dev_f1 if dev_f1 is not None else f1
    return [{"strategy": strategy, "seed": seed, "round": i, "labeled_records": n, "labeled_chars": n * CHARS_PER_RECORD,
             "heldout": [[round(h * N), N, N], [0, 0, 0]], "kappa": k, "f1": t, "dev_f1": d}
            for i, (n, h, k, t, d) in enumerate(zip(ns, heldout_f1, kappas, f1, dev_f1))]


def write_run(out: Path, rows: list[dict[str, Any]]) -> None:
    """A run's saved state as the simulator writes it: out/state/<strategy>-s<seed>/state.json."""
    r0 = rows[0]
    d = out / "state" / f"{r0['strategy']}-s{r0['seed']}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "state.json").write_text(json.dumps({"rows": rows, "labeled": list(range(rows[-1]["labeled_records"]))}))


# ---- where the rule fires ------------------------------------------------------------------------------------
# A saturating power law for the held-back F1, f(n) = A − B·n^(−C), with C one of the fit's own exponents so the
# fit through exact points recovers the curve; kappa 0.995 from the second round on, so the curve decides.
A, B, C = 0.85, 4.0, float(C_GRID[139])  # C ≈ 0.5
POWER_NS = [100, 200, 300, 450, 650, 900, 1200, 1600, 2100, 2700]


def true_gain(n: float, extra: float = 500) -> float:
    return B * (n ** -C - (n + extra) ** -C)


def test_the_curve_decides_when_kappa_is_stable() -> None:
    """With kappa stable, the rule fires at the first round whose curve expects < stop_gain from +horizon more."""
    rule = BASE
    gains = [true_gain(n) for n in POWER_NS]
    expected = next(i for i, g in enumerate(gains) if g < rule.stop_gain)
    assert expected == 8 and gains[expected - 1] > 1.2 * rule.stop_gain and gains[expected] < 0.95 * rule.stop_gain
    rows = rows_for(POWER_NS, [A - B * n ** -C for n in POWER_NS], [None] + [0.995] * (len(POWER_NS) - 1))
    assert stop_point(rows, rule) == expected
    assert stop_point(rows[:expected], rule) is None  # not one round earlier


# A held-back F1 already flat at 0.8 (the fit expects no gain from more labels), and kappa rising to 0.995
# from round 6: kappa decides.
FLAT_NS = [100 * (i + 1) for i in range(12)]
FLAT = [0.8] * 12
RISING_KAPPA: list[float | None] = [None, 0.80, 0.90, 0.93, 0.96, 0.96] + [0.995] * 6


def test_kappa_decides_when_the_curve_is_flat() -> None:
    """With the curve flat, the rule fires once the last kappa_window kappas all reach the threshold."""
    rows = rows_for(FLAT_NS, FLAT, RISING_KAPPA)
    assert stop_point(rows, replace(BASE, kappa_window=3)) == 8  # kappas of rounds 6, 7, 8
    assert stop_point(rows, BASE) == 7  # the default window of 2: rounds 6 and 7
    assert stop_point(rows, replace(BASE, kappa_window=5)) == 10
    assert stop_point(rows, replace(BASE, kappa_threshold=0.95)) == 5  # rounds 4 and 5 have 0.96


def test_a_fit_needs_four_rounds_and_the_minimum_annotations() -> None:
    """No stop before the curve can be fitted (4 rounds) nor below min_annotations, however stable kappa is."""
    rows = rows_for(FLAT_NS, FLAT, [None] + [0.999] * 11)
    assert stop_point(rows, replace(BASE, kappa_window=1)) == 3
    assert stop_point(rows, replace(BASE, kappa_window=1, min_annotations=550)) == 5  # 600 records at round 5


def test_no_stop_when_kappa_never_stabilises() -> None:
    """Kappa that keeps dipping below the threshold (or is NaN) never lets the rule fire."""
    wobbly = [None] + [0.995 if i % 2 else 0.9 for i in range(11)]
    assert stop_point(rows_for(FLAT_NS, FLAT, wobbly), replace(BASE, kappa_window=3)) is None
    nan = [None] + [0.995, 0.995, float("nan")] * 3 + [0.995, float("nan")]
    assert stop_point(rows_for(FLAT_NS, FLAT, nan), replace(BASE, kappa_window=3)) is None


# ---- the report ----------------------------------------------------------------------------------------------
FULL = 0.8  # 97%: 0.776, 98%: 0.784
POOL = 1500
STOP = 8  # where replace(BASE, kappa_window=3) fires on FLAT / RISING_KAPPA, 900 records
STOP_DEFAULT = 9  # where the default StopRule() (kappa ≥ 0.98 on 4 versions) fires on them: rounds 6-9
RULE3 = replace(BASE, kappa_window=3)


RISE = [0.5 + 0.01 * i for i in range(8)]  # rounds 0-7, all below 97% of FULL
PASSING = RISE[:7] + [0.78] + [0.79] * 4  # first at 97% at round 7 (800 records), 0.79 from the stop on


def test_report_numbers_and_the_pass_criterion(tmp_path: Path) -> None:
    """The stop round's numbers, the first 97%/98% points and passes: F1 ≥ 97% of full and ≤ 1.3× the records."""
    curves = {0: PASSING,                                # 97% at 800 records, stops at 900: 1.125×, passes
              1: RISE[:5] + [0.78] * 3 + [0.79] * 4,      # 97% at 600 records: 1.5×, too late
              2: RISE + [0.77] * 4,                       # never at 97%: 0.77 at the stop
              3: RISE + [0.77, 0.77, 0.78, 0.78]}         # 0.77 at the stop, 97% only at 1100 records: 0.82×, too low
    for seed, f1 in curves.items():
        write_run(tmp_path, rows_for(FLAT_NS, FLAT, RISING_KAPPA, f1=f1, seed=seed))
    write_run(tmp_path, rows_for(FLAT_NS, FLAT, [None] * 12, f1=[0.9] * 12, strategy="random"))  # another strategy
    rep = stopping_report(tmp_path, STRATEGY, FULL, POOL, RULE3)
    assert rep["strategy"] == STRATEGY and rep["full_f1"] == FULL and rep["rule"] == asdict(RULE3)
    assert set(rep["runs"]) == {"0", "1", "2", "3"} and "dev" not in rep

    r0 = rep["runs"]["0"]
    assert r0["stop"] == {"round": STOP, "records": 900, "chars": 900 * CHARS_PER_RECORD, "f1": 0.79,
                          "share_of_full": pytest.approx(0.79 / FULL), "records_saved": POOL - 900}
    assert r0["reach_0.97"] == {"records": 800, "chars": 800 * CHARS_PER_RECORD}
    assert r0["reach_0.98"] == {"records": 900, "chars": 900 * CHARS_PER_RECORD}  # 0.79 ≥ 0.784 from the stop
    assert r0["records_vs_reach_0.97"] == pytest.approx(900 / 800) and r0["passes"] is True

    r1 = rep["runs"]["1"]
    assert r1["reach_0.97"]["records"] == 600 and r1["records_vs_reach_0.97"] == pytest.approx(1.5)
    assert r1["passes"] is False

    r2 = rep["runs"]["2"]
    assert r2["stop"]["f1"] == 0.77 and r2["reach_0.97"] is None and r2["reach_0.98"] is None
    assert r2["records_vs_reach_0.97"] is None and r2["passes"] is False

    r3 = rep["runs"]["3"]
    assert r3["stop"]["share_of_full"] < 0.97 and r3["records_vs_reach_0.97"] == pytest.approx(900 / 1100)
    assert r3["passes"] is False


def test_a_run_that_never_stops_does_not_pass(tmp_path: Path) -> None:
    """No stop point: stop is None, the reach points are still given, and the run does not pass."""
    wobbly = [None] + [0.995 if i % 2 else 0.9 for i in range(11)]
    write_run(tmp_path, rows_for(FLAT_NS, FLAT, wobbly, f1=PASSING))
    run = stopping_report(tmp_path, STRATEGY, FULL, POOL, RULE3)["runs"]["0"]
    assert run["stop"] is None and run["reach_0.97"]["records"] == 800
    assert run["records_vs_reach_0.97"] is None and run["passes"] is False


def test_dev_section_scores_the_dev_curve(tmp_path: Path) -> None:
    """With the dev all-data F1, a dev section reports the same stop on dev_f1 against that F1."""
    write_run(tmp_path, rows_for(FLAT_NS, FLAT, RISING_KAPPA, f1=PASSING, dev_f1=[0.6] * 12))
    rep = stopping_report(tmp_path, STRATEGY, FULL, POOL, RULE3, dev_full_f1=0.6)
    dev = rep["dev"]["0"]
    assert dev["stop"]["records"] == 900 and dev["stop"]["f1"] == 0.6 and dev["stop"]["share_of_full"] == pytest.approx(1.0)
    assert dev["reach_0.97"]["records"] == 100 and dev["passes"] is False  # 9× the records of the first 97%
    assert rep["runs"]["0"]["passes"] is True


# ---- choosing the thresholds on dev ---------------------------------------------------------------------------
# Kappa 0.96 over rounds 1-5, 0.995 from round 6, the curve flat: threshold 0.95 stops at round 3 (the first
# fit) with window 2 or 3 and at 5 with window 5; thresholds ≥ 0.97 stop at 7, 8 or 10.
CHOICE_KAPPA: list[float | None] = [None] + [0.96] * 5 + [0.995] * 6
DEV = [0.5 + 0.01 * i for i in range(6)] + [0.79] * 6   # first at 97% of 0.8 at round 6 (700 records)
TEST = [0.5, 0.6, 0.7] + [0.79] * 9                     # first at 97% at round 3 (400 records)


def choice_runs() -> dict[int, list[dict[str, Any]]]:
    return {s: rows_for(FLAT_NS, FLAT, CHOICE_KAPPA, f1=TEST, dev_f1=DEV, seed=s) for s in (0, 1)}


def test_choose_rule_follows_dev_not_test() -> None:
    """The rule passing on dev in most runs wins, whatever test says."""
    rule = choose_rule(choice_runs(), FULL, POOL)
    # on dev only stops at rounds 6..8 (700..900 records ≤ 1.3 × 700) pass
    assert all(stop_point(rows, rule) in (6, 7, 8) for rows in choice_runs().values())
    # had test been used, only round 3 (400 records, threshold 0.95) would pass
    swapped = {s: [dict(r, dev_f1=r["f1"]) for r in rows] for s, rows in choice_runs().items()}
    test_rule = choose_rule(swapped, FULL, POOL)
    assert test_rule.kappa_threshold == 0.95 and stop_point(swapped[0], test_rule) == 3


def test_choose_rule_keeps_the_base_rules_other_fields() -> None:
    """Fields outside the grid (min_annotations, slow_gain, horizon) come from the base rule."""
    base = StopRule(min_annotations=50, stop_gain=0.01, slow_gain=0.06, horizon=300)
    rule = choose_rule(choice_runs(), FULL, POOL, base=base)
    assert (rule.min_annotations, rule.slow_gain, rule.horizon) == (50, 0.06, 300)


# ---- the command line -----------------------------------------------------------------------------------------
def test_main_writes_json_and_png(tmp_path: Path) -> None:
    """main writes stopping.json (the report with the default rule) and stopping.png."""
    write_run(tmp_path, rows_for(FLAT_NS, FLAT, RISING_KAPPA, f1=PASSING))
    assert main(["--out", str(tmp_path), "--full-f1", str(FULL), "--pool", str(POOL)]) == 0
    rep = json.loads((tmp_path / "stopping.json").read_text())
    assert rep["rule"] == asdict(StopRule()) and rep["runs"]["0"]["stop"]["round"] == STOP_DEFAULT and rep["runs"]["0"]["passes"]
    png = (tmp_path / "stopping.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_choose_uses_the_dev_choice(tmp_path: Path) -> None:
    """--choose with --dev-full-f1 reports with the rule chosen on dev."""
    for rows in choice_runs().values():
        write_run(tmp_path, rows)
    assert main(["--out", str(tmp_path), "--full-f1", str(FULL), "--dev-full-f1", str(FULL), "--pool", str(POOL), "--choose"]) == 0
    rep = json.loads((tmp_path / "stopping.json").read_text())
    assert rep["rule"] == asdict(choose_rule(choice_runs(), FULL, POOL))
    assert set(rep["dev"]) == {"0", "1"} and all(r["passes"] for r in rep["dev"].values())
    assert (tmp_path / "stopping.png").is_file()


def test_main_choose_without_dev_full_f1_is_a_usage_error(tmp_path: Path) -> None:
    """--choose without --dev-full-f1 exits with argparse's usage error (status 2) and writes nothing."""
    write_run(tmp_path, rows_for(FLAT_NS, FLAT, RISING_KAPPA))
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path), "--full-f1", str(FULL), "--choose"])
    assert exc.value.code == 2
    assert not (tmp_path / "stopping.json").exists()
