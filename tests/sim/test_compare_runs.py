"""Replays side by side: committed rounds and a new output directory in one report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lasl_backend.sim.compare_runs import main, read_source
from lasl_backend.sim.results import ReplayFileError


def _rows(strategy: str, f1s: list[float], chars_per_round: int = 10_000) -> list[dict]:
    return [{"strategy": strategy, "seed": 0, "round": i, "labeled_records": 10 * (i + 1),
             "labeled_chars": chars_per_round * (i + 1), "corrections": 5 * (i + 1), "f1": f, "dev_f1": f - 0.01}
            for i, f in enumerate(f1s)]


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    committed = tmp_path / "committed"
    committed.mkdir()
    rows = _rows("random", [0.3, 0.5, 0.6, 0.7]) + _rows("lasl", [0.4, 0.6, 0.7, 0.75])
    (committed / "results.json").write_text(json.dumps({"rows": rows}))
    fresh = tmp_path / "fresh" / "state" / "peak-s0"
    fresh.mkdir(parents=True)
    (fresh / "state.json").write_text(json.dumps({"rows": _rows("peak", [0.35, 0.55, 0.65, 0.72], 20_000)}))
    return committed, tmp_path / "fresh"


def test_a_results_directory_and_a_simulate_output_read_alike(sources: tuple[Path, Path]) -> None:
    committed, fresh = sources
    assert {r["strategy"] for r in read_source(f"{committed}:random")} == {"random"}
    assert {r["strategy"] for r in read_source(str(committed))} == {"random", "lasl"}
    assert [r["f1"] for r in read_source(str(fresh))] == [0.35, 0.55, 0.65, 0.72]


def test_the_report_puts_every_source_on_one_scale(sources: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    committed, fresh = sources
    out = tmp_path / "report" / "peak"
    assert main([f"{committed}:random", str(fresh), "--full-f1", "0.8", "--dev-full-f1", "0.8", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    at = report["test"]["by"]["labeled_chars"]
    assert set(at) == {"random", "peak"}
    assert at["peak"]["f1_at"]["20000"][0] == pytest.approx(0.35) and at["random"]["f1_at"]["20000"][0] == pytest.approx(0.5)
    assert report["per_record"]["peak"]["50"] == [None, 0]  # its rounds end at 40 records
    assert report["dev"]["by"]["labeled_chars"]["random"]["f1_at"]["40000"][0] == pytest.approx(0.69)
    assert (out.parent / "peak_learning_curves.png").stat().st_size > 0
    assert "| peak | 1 |" in capsys.readouterr().out


def test_a_label_keeps_the_same_strategy_of_two_sources_apart(sources: tuple[Path, Path]) -> None:
    committed, _ = sources
    rows = read_source(f"{committed}:random=random every 5,lasl")
    assert {r["strategy"] for r in rows} == {"random every 5", "lasl"}
    assert [r["f1"] for r in rows if r["strategy"] == "random every 5"] == [0.3, 0.5, 0.6, 0.7]
    with pytest.raises(ReplayFileError, match="no rounds of peak"):
        read_source(f"{committed}:peak=random")


@pytest.mark.parametrize("spec, why", [("{tmp}/nowhere", "neither a lasl simulate output"),
                                       ("{committed}:mlp", "no rounds of mlp")])
def test_a_source_that_holds_no_such_replay_is_named(sources: tuple[Path, Path], tmp_path: Path, spec: str, why: str) -> None:
    committed, _ = sources
    with pytest.raises(ReplayFileError, match=why):
        read_source(spec.format(tmp=tmp_path, committed=committed))
