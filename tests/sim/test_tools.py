"""The results tools on a results.csv written here: the numbers they print are computed from its rows."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from lasl_backend.sim import compare_lpn_sizes, results_table
from lasl_backend.sim.results import COLUMNS

# (strategy, seed, percent labeled, F1)
ROWS = [
    ("random", 0, 5, 0.60), ("random", 1, 5, 0.62), ("random", 0, 10, 0.68), ("random", 1, 10, 0.70),
    ("lasl", 0, 5, 0.65), ("lasl", 1, 5, 0.61), ("lasl", 0, 10, 0.75),  # seed 1 has not reached 10% yet
    ("lc", 0, 5, 0.64), ("lc", 0, 10, 0.76),
]


def _write(path: Path, rows: list[tuple[str, int, float, float]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for i, (s, seed, pct, f1) in enumerate(rows):
            w.writerow({"strategy": s, "seed": seed, "round": i, "labeled_records": int(pct * 10), "labeled_fraction": pct / 100,
                        "labeled_chars": 400 * pct, "f1": f1, "lambda_t": "nan", "round_seconds": 1.0})
    return path


@pytest.fixture
def results_csv(tmp_path: Path) -> Path:
    return _write(tmp_path / "results.csv", ROWS)


def test_results_table_cells_are_mean_and_std_with_the_seed_count_when_short(results_csv: Path) -> None:
    by = results_table.load(str(results_csv))
    assert results_table.cell(by["random"][5], 2) == "0.610 ± 0.010"
    assert results_table.cell(by["lasl"][10], 2) == "0.750 ± 0.000 (1)"
    assert results_table.cell(by["lasl"][30], 2) == "–"


def test_results_table_compares_on_the_means_and_lists_the_shared_seeds(results_csv: Path) -> None:
    by = results_table.load(str(results_csv))
    assert results_table.compare(by, "lasl", "random", 5) == "5%: met (0.630 over 2 seed(s) vs 0.610 over 2; per shared seed +0.050, -0.010)"
    assert results_table.compare(by, "lasl", "lc", 10).startswith("10%: missed (0.750 over 1 seed(s) vs 0.760 over 1")
    assert results_table.compare(by, "lasl", "random", 20) == "20%: not reached"
    assert results_table.first_reaching(by, "lasl", 0.64) == "seed 0: 5%, seed 1: not by 5%"


def test_results_table_prints_the_table_and_the_targets(results_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert results_table.main([str(results_csv), "--full-f1", "0.78"]) == 0
    out = capsys.readouterr().out
    assert "| **lasl** (ours, char Bi-LSTM-CRF) | 2 | 0.630 ± 0.020 | 0.750 ± 0.000 (1) | – |" in out
    assert "| lasl (paper Table 3, MC-BERT) | | 0.508 | 0.771 |" in out
    assert "95% of the all-data F1 (0.741) by 15%" in out
    assert "  - lc: seed 0: 10%" in out


def test_results_table_says_which_file_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert results_table.main([str(tmp_path / "other.csv")]) == 2
    assert "other.csv: cannot read a simulator results.csv" in capsys.readouterr().err


def test_compare_lpn_sizes_curve_counts_the_seeds_behind_each_point(results_csv: Path) -> None:
    x, mean, std, n = compare_lpn_sizes.curve(results_csv, "lasl")
    assert x.tolist() == [5.0, 10.0] and mean.tolist() == pytest.approx([0.63, 0.75]) and std.tolist() == pytest.approx([0.02, 0.0])
    assert n == "1-2"
    assert compare_lpn_sizes.curve(results_csv, "random")[3] == "2"
    assert compare_lpn_sizes.means_at_points(x, mean) == "5%: 0.630  10%: 0.750"


def test_compare_lpn_sizes_draws_the_curves_it_finds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import matplotlib.image

    shared = [("dbs", seed, p, 0.70 + 0.002 * p + 0.01 * seed) for seed in (0, 1) for p in range(5, 31)]
    _write(tmp_path / "ccks2019-lpn-shared" / "results.csv", shared)
    out = tmp_path / "curves.png"
    assert compare_lpn_sizes.main(["--results", str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"no {tmp_path / 'ccks2019' / 'results.csv'}" in printed  # the missing ones are named, not drawn
    assert f"{'DBS, shared-encoder LPN (0 layers)':40s} 5%: 0.715  10%: 0.725  15%: 0.735" in printed
    img = matplotlib.image.imread(str(out))
    assert img.shape[:2] == (605, 880)
    first_colour = np.array((0x1F, 0x77, 0xB4)) / 255.0  # the only curve drawn takes the first colour
    assert np.all(np.abs(img[:, :, :3] - first_colour) < 0.02, axis=2).sum() > 200
