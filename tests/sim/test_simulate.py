"""The simulator on tiny synthetic data: output files, columns, resumability, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lasl_backend.cli import main
from lasl_backend.data import write_jsonl
from lasl_backend.devtools.synthetic import make_records
from lasl_backend.sim.plots import curves, plot_curves

from .pixels import curve_pixels


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("simdata")
    recs = make_records(28, seed=3, mean_chars=50, max_chars=90)
    write_jsonl(recs[:20], d / "train.jsonl")
    write_jsonl(recs[20:], d / "test.jsonl")
    return d


def _run(data_dir: Path, out: Path, rounds: int, strategies: str = "random,lasl") -> int:
    return main(["simulate", "--data", str(data_dir), "--strategies", strategies, "--seeds", "0", "--init", "0.1",
                 "--step", "0.1", "--rounds", str(rounds), "--out", str(out), "--first-round-steps", "6",
                 "--round-steps", "2", "--epochs-per-round", "1", "--serving", "batch"])


def test_simulate_writes_results_and_resumes(data_dir, tmp_path):
    out = tmp_path / "sim"
    assert _run(data_dir, out, rounds=1) == 0
    first = list(csv.DictReader((out / "results.csv").open()))
    assert list(first[0]) == ["strategy", "seed", "round", "labeled_records", "labeled_fraction", "labeled_chars", "corrections", "f1", "dev_f1",
                              "heldout_f1", "heldout_records", "kappa", "lambda_t", "round_seconds"]
    assert {(r["strategy"], r["round"]) for r in first} == {("random", "0"), ("random", "1"), ("lasl", "0"), ("lasl", "1")}
    for r in first:
        assert int(r["labeled_records"]) == 2 * (int(r["round"]) + 1)  # 10% of 20 at start, +10% per round
        assert float(r["labeled_fraction"]) == pytest.approx(int(r["labeled_records"]) / 20)
        assert 0.0 <= float(r["f1"]) <= 1.0
    # the figure is drawn from these rows; lasl's curve comes last, on top (random's may lie under it here)
    plotted = json.loads((out / "results.json").read_text())["rows"]
    assert {c.strategy: len(c.mean) for c in curves(plotted)} == {"random": 2, "lasl": 2}
    assert curve_pixels(out / "learning_curves.png")["lasl"]
    # the initial random set is shared by all strategies of a seed
    st = {s: json.loads((out / "state" / f"{s}-s0" / "state.json").read_text()) for s in ("random", "lasl")}
    assert st["random"]["rows"][0]["labeled_chars"] == st["lasl"]["rows"][0]["labeled_chars"]

    # continuing to round 2 keeps rounds 0 and 1 as they were (they are not recomputed: same wall times);
    # only round 1's Λ_t, NaN while it was the last round, is filled in by scoring the pool with its model
    assert _run(data_dir, out, rounds=2) == 0
    second = list(csv.DictReader((out / "results.csv").open()))
    assert len(second) == 6
    old = {(r["strategy"], r["round"]): r for r in first}
    for r in second:
        if (r["strategy"], r["round"]) in old:
            was = old[(r["strategy"], r["round"])]
            if r["round"] == "1":
                assert was["lambda_t"] == "nan" and 0.0 <= float(r["lambda_t"]) <= 1.0
                r, was = dict(r, lambda_t="-"), dict(was, lambda_t="-")
            assert r == was
    payload = json.loads((out / "results.json").read_text())
    assert payload["settings"]["rounds"] == 2 and len(payload["rows"]) == 6


def test_simulate_refuses_other_settings_in_same_dir(data_dir, tmp_path, capsys):
    out = tmp_path / "sim"
    assert _run(data_dir, out, rounds=0, strategies="random") == 0
    rc = main(["simulate", "--data", str(data_dir), "--strategies", "random", "--seeds", "0", "--init", "0.2",
               "--rounds", "0", "--out", str(out), "--first-round-steps", "2"])
    assert rc == 2
    assert "other settings" in capsys.readouterr().err


def test_the_loss_baselines_reduction_is_a_setting_of_the_directory(data_dir, tmp_path, capsys):
    out = tmp_path / "sim"
    base = ["simulate", "--data", str(data_dir), "--strategies", "loss", "--seeds", "0", "--init", "0.1", "--step", "0.1",
            "--rounds", "1", "--out", str(out), "--first-round-steps", "4", "--round-steps", "2", "--epochs-per-round", "1"]
    assert main(base) == 0  # round 1 queries by the mean of the chunk scores
    settings = json.loads((out / "settings.json").read_text())
    assert settings["loss_reduction"] == "mean"
    assert main(base + ["--loss-reduction", "sum"]) == 2  # two aggregations would mix in one directory
    assert "other settings" in capsys.readouterr().err
    # a directory recorded before the setting existed was made with the plain sum
    del settings["loss_reduction"]
    (out / "settings.json").write_text(json.dumps(settings))
    assert main(base) == 2
    assert main(base + ["--loss-reduction", "sum"]) == 0


@pytest.mark.parametrize("option, key", [("--average-tail", "average_tail"), ("--anneal-tail", "anneal_tail")])
def test_the_training_tail_is_a_setting_of_the_directory(data_dir, tmp_path, capsys, option, key):
    out = tmp_path / "sim"
    base = ["simulate", "--data", str(data_dir), "--strategies", "random", "--seeds", "0", "--init", "0.1", "--step", "0.1",
            "--rounds", "1", "--out", str(out), "--first-round-steps", "4", "--round-steps", "2", "--epochs-per-round", "1"]
    assert main(base + [option, "0.5"]) == 0
    assert json.loads((out / "settings.json").read_text())[key] == 0.5
    assert main(base) == 2  # runs trained one way and the other would mix in one directory
    assert "other settings" in capsys.readouterr().err


@pytest.mark.parametrize("argv, msg", [
    (["--strategies", "nope"], "unknown strategy"),
    (["--strategies", "lasl+fast"], "unknown flags"),
    (["--strategies", "lc+cost"], "which 'lc' has not"),
    (["--strategies", "random+sqrt+div"], "which 'random' has not"),
    (["--strategies", "lasl+cost+sqrt"], "choose one"),
    (["--strategies", "random+peak"], "which 'random' does not rank by"),
    (["--strategies", "random+yield"], "which 'random' has not"),
    (["--lag", "10", "--train-every", "10"], "must be below"),
    (["--dev-records", "-1"], "--dev-records"),
    (["--seeds", "a,b"], "--seeds"),
    (["--init", "1.5"], "fractions"),
    (["--average-tail", "1"], "--average-tail"),
    (["--average-tail", "-0.2"], "--average-tail"),
    (["--anneal-tail", "1"], "--anneal-tail"),
    (["--anneal-tail", "-0.2"], "--anneal-tail"),
])
def test_simulate_bad_options(data_dir, tmp_path, capsys, argv, msg):
    rc = main(["simulate", "--data", str(data_dir), "--out", str(tmp_path / "x"), "--rounds", "0"] + argv)
    assert rc == 2
    assert msg in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "81.7", "0", "x"])
def test_simulate_full_f1_must_be_an_f1(data_dir, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--data", str(data_dir), "--out", str(tmp_path / "x"), "--rounds", "0", "--full-f1", value])
    assert exc.value.code == 2 and "--full-f1" in capsys.readouterr().err


def test_simulate_missing_data(tmp_path, capsys):
    assert main(["simulate", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "train.jsonl" in capsys.readouterr().err


def test_tod_compares_two_different_models(data_dir, tmp_path):
    """TOD needs the marginals of the querying model AND of the model before it (not the same one twice)."""
    import numpy as np

    out = tmp_path / "sim"
    assert _run(data_dir, out, rounds=2, strategies="tod") == 0
    sdir = out / "state" / "tod-s0"
    last = np.load(sdir / "marginals.npz")
    prev = np.load(sdir / "marginals_prev.npz")
    rest = [k for k in last.files if last[k].size and prev[k].size]
    assert rest, "no record scored by both models"
    assert any(not np.allclose(last[k], prev[k]) for k in rest)


def test_learning_curves_draw_a_matrix_that_is_part_way_through(tmp_path):
    """Seed 1 has reached fewer rounds than seed 0: the plot must still be drawn, every strategy's curve in
    every panel."""
    rows = [
        {"strategy": s, "seed": seed, "round": t, "labeled_fraction": (t + 1) / 100, "labeled_chars": 400 * (t + 1),
         "corrections": 30 * (t + 1),
         "f1": 0.5 + 0.01 * t + 0.005 * seed + (0.05 if s == "lasl" else 0.0)}
        for s in ("random", "lasl") for seed in (0, 1) for t in range(6 if seed == 0 else 3)
    ]
    path = tmp_path / "curves.png"
    plot_curves(rows, path, full_f1=0.6)
    assert curve_pixels(path) == {"random": True, "lasl": True}


def test_the_lpn_size_is_a_setting_of_the_directory(data_dir, tmp_path, capsys):
    out = tmp_path / "sim"
    base = ["simulate", "--data", str(data_dir), "--strategies", "dbs", "--seeds", "0", "--init", "0.1", "--step", "0.1",
            "--rounds", "0", "--out", str(out), "--first-round-steps", "4", "--lpn-layers", "0"]
    assert main(base) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["lpn_layers"] == 0
    model_cfg = json.loads((out / "state" / "dbs-s0" / "model" / "config.json").read_text())
    assert model_cfg["lpn_layers"] == 0  # the run's model really has the shared-encoder loss net
    assert main(base[:-1] + ["2"]) == 2  # two LPN sizes would mix in one directory
    assert "other settings" in capsys.readouterr().err
    # a directory recorded before the setting existed holds the paper's 2-layer LPN
    del settings["lpn_layers"]
    (out / "settings.json").write_text(json.dumps(settings))
    assert main(base) == 2
    assert main(base[:-1] + ["2"]) == 0


def test_curves_are_the_mean_and_std_over_the_seeds_that_reached_each_round():
    rows = [
        {"strategy": "lasl", "seed": 0, "round": 0, "labeled_fraction": 0.01, "labeled_chars": 1000, "f1": 0.50},
        {"strategy": "lasl", "seed": 1, "round": 0, "labeled_fraction": 0.01, "labeled_chars": 3000, "f1": 0.60},
        {"strategy": "lasl", "seed": 0, "round": 1, "labeled_fraction": 0.02, "labeled_chars": 2000, "f1": 0.70},
        {"strategy": "random", "seed": 0, "round": 0, "labeled_fraction": 0.01, "labeled_chars": 1000, "f1": 0.40},
    ]
    random, lasl = curves(rows)  # in STRATEGY_MODELS order, whatever the rows' order
    assert (random.strategy, lasl.strategy) == ("random", "lasl")
    assert lasl.n_seeds == 2 and lasl.full.tolist() == [True, False]  # round 1: one seed of two so far
    assert lasl.mean.tolist() == pytest.approx([0.55, 0.70]) and lasl.std.tolist() == pytest.approx([0.05, 0.0])
    assert lasl.x["labeled_fraction"].tolist() == pytest.approx([1.0, 2.0])  # percent
    assert lasl.x["labeled_chars"].tolist() == pytest.approx([2.0, 2.0])  # thousands, mean over the seeds
    assert "dotted: fewer" in lasl.label and random.label == "random (1 seed)"


def test_the_schedule_reaches_dbs_and_lasl_only():
    from lasl_backend.sim.replay import build_strategy
    from lasl_backend.sim.settings import SimSettings
    from lasl_backend.strategies.schedules import PoolConfidence

    s = SimSettings(data="x", strategies=[], seeds=[0], init=0.01, step=0.01, rounds=1, schedule="pool_confidence_per_char")
    for name in ("lasl+cost", "dbs", "lasl+cost+div"):
        strategy = build_strategy(name, s)
        strategy = getattr(strategy, "base", strategy)  # under the diversity wrapper
        assert strategy.schedule == PoolConfidence(per_char=True), name
    assert not hasattr(build_strategy("mlp+cost", s), "schedule")


def test_simulate_unknown_schedule(data_dir, tmp_path, capsys):
    assert main(["simulate", "--data", str(data_dir), "--out", str(tmp_path / "x"), "--rounds", "0", "--schedule", "sometimes"]) == 2
    assert "known schedules" in capsys.readouterr().err


def test_peak_ranks_the_pool_by_each_records_hardest_chunk():
    from lasl_backend.ner import RecordScore
    from lasl_backend.sim.replay import _rank_by_peaks
    from lasl_backend.strategies import PoolScores

    scores = [RecordScore([], l_min=4.0, l_max=5.0, p_max=0.1, l_pred=2.0, n_chars=400, l_min_peak=0.02, l_pred_peak=0.01),
              RecordScore([], l_min=4.0, l_max=5.0, p_max=0.1, l_pred=2.0, n_chars=400, l_min_peak=0.01, l_pred_peak=0.005)]
    pool = PoolScores.from_scores(scores)
    _rank_by_peaks(pool, scores)
    assert pool.l_min.tolist() == pytest.approx([8.0, 4.0]) and pool.l_pred.tolist() == pytest.approx([4.0, 2.0])


def test_density_flags_wrap_the_strategy_under_the_diversity():
    """``+dens`` and ``+yield`` weigh the base's score before ``+div`` spreads the result."""
    from lasl_backend.sim.replay import build_strategy
    from lasl_backend.sim.settings import SimSettings
    from lasl_backend.strategies.density import DensityWeighted
    from lasl_backend.strategies.diversity import Diversified

    s = build_strategy("lasl+cost+yield+div", SimSettings(data="unused", strategies=[], seeds=[0], init=0.01, step=0.01, rounds=1))
    assert isinstance(s, Diversified) and isinstance(s.base, DensityWeighted) and s.base.field == "entity_rate"
    assert s.requires == ("l_min", "l_pred", "n_chars", "entity_rate", "group")
    d = build_strategy("mlp+dens", SimSettings(data="unused", strategies=[], seeds=[0], init=0.01, step=0.01, rounds=1))
    assert isinstance(d, DensityWeighted) and d.field == "density"


def test_a_queue_replay_ranks_by_density_and_entity_rate(data_dir, tmp_path):
    """Both weights reach the pool a real replay ranks: two rounds run and label distinct records."""
    out = tmp_path / "sim"
    rc = main(["simulate", "--data", str(data_dir), "--strategies", "lasl+cost+dens+div,mlp+yield", "--seeds", "0",
               "--init", "0.1", "--rounds", "2", "--train-every", "3", "--out", str(out), "--first-round-steps", "4",
               "--round-steps", "2", "--epochs-per-round", "1"])
    assert rc == 0
    for name in ("lasl+cost+dens+div", "mlp+yield"):
        state = json.loads((out / "state" / f"{name}-s0" / "state.json").read_text())
        assert [r["labeled_records"] for r in state["rows"]] == [2, 5, 8]
        assert len(set(state["labeled"])) == 8
