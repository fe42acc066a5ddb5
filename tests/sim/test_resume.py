"""A simulation continued with more rounds, or run on more threads, gives the rows of one made that way
from the start (``round_seconds`` aside): what ``--rounds`` and ``--threads`` may change on resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from lasl_backend.cli import main
from lasl_backend.data import write_jsonl
from lasl_backend.devtools.synthetic import make_records
from lasl_backend.sim import replay, results, simulate
from lasl_backend.sim.settings import SimSettings


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("simdata")
    recs = make_records(28, seed=3, mean_chars=50, max_chars=90)
    write_jsonl(recs[:20], d / "train.jsonl")
    write_jsonl(recs[20:], d / "test.jsonl")
    return d


@pytest.fixture(autouse=True)
def no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """The figure is redrawn after every round and is not what these tests compare."""
    monkeypatch.setattr(results, "plot_curves", lambda *a, **k: None)


def _run(data_dir: Path, out: Path, rounds: int, strategies: str, threads: int = 1, lpn_layers: int = 2, serving: str = "batch") -> None:
    assert main(["simulate", "--data", str(data_dir), "--strategies", strategies, "--seeds", "0", "--init", "0.1",
                 "--step", "0.1", "--rounds", str(rounds), "--out", str(out), "--first-round-steps", "6",
                 "--round-steps", "2", "--epochs-per-round", "1", "--threads", str(threads), "--lpn-layers", str(lpn_layers),
                 "--serving", serving, "--train-every", "3", "--lag", "1", "--stop-set", "5"]) == 0


def _rows(out: Path) -> list[dict[str, str]]:
    """results.csv without the wall times (as text, so that NaN equals NaN)."""
    rows = list(csv.DictReader((out / "results.csv").open()))
    return [{k: v for k, v in r.items() if k != "round_seconds"} for r in rows]


def test_a_run_resumed_with_more_rounds_equals_one_made_with_them(data_dir: Path, tmp_path: Path) -> None:
    """The last round of an invocation scores no pool; resuming must score it with the saved model, so that
    TOD compares the right two models' marginals and that round's Λ_t is filled in (LASL with the cheap
    shared-encoder LPN: the loss net's size is not what is tested)."""
    _run(data_dir, tmp_path / "resumed", 1, "tod,lasl", lpn_layers=0)
    before = _rows(tmp_path / "resumed")
    assert {r["lambda_t"] for r in before if r["round"] == "1"} == {"nan"}  # nothing scored the pool after it
    _run(data_dir, tmp_path / "resumed", 3, "tod,lasl", lpn_layers=0)
    _run(data_dir, tmp_path / "whole", 3, "tod,lasl", lpn_layers=0)
    resumed, whole = _rows(tmp_path / "resumed"), _rows(tmp_path / "whole")
    assert [(r["strategy"], r["round"]) for r in whole] == [(s, str(t)) for s in ("lasl", "tod") for t in range(4)]
    assert resumed == whole
    assert all(r["lambda_t"] != "nan" for r in whole if r["round"] != "3")


def test_a_queue_run_resumed_equals_one_made_whole(data_dir: Path, tmp_path: Path) -> None:
    """Label Studio's queue protocol keeps the last pushed order and the stop set's tags across a resume: the
    stale picks, the corrections and kappa come out as in one invocation."""
    _run(data_dir, tmp_path / "resumed", 1, "lasl+cost+div", lpn_layers=0, serving="queue")
    _run(data_dir, tmp_path / "resumed", 3, "lasl+cost+div", lpn_layers=0, serving="queue")
    _run(data_dir, tmp_path / "whole", 3, "lasl+cost+div", lpn_layers=0, serving="queue")
    resumed, whole = _rows(tmp_path / "resumed"), _rows(tmp_path / "whole")
    assert resumed == whole
    assert [int(r["labeled_records"]) for r in whole] == [2, 5, 8, 11]
    assert all(r["kappa"] != "nan" for r in whole[1:])


def test_a_run_resumed_twice_scores_the_pool_once(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resuming a finished run with the same rounds does nothing (its last round stays unscored)."""
    _run(data_dir, tmp_path / "sim", 1, "tod")
    monkeypatch.setattr(replay, "score_pool", lambda *a: pytest.fail("a finished run scored the pool again"))
    _run(data_dir, tmp_path / "sim", 1, "tod")


def test_results_do_not_depend_on_the_threads(data_dir: Path, tmp_path: Path) -> None:
    """``--threads 2`` trains the loss net on a second thread and scores the pool in two batches at once: the
    same rows as ``--threads 1``, so a resumed run may change it."""
    _run(data_dir, tmp_path / "one", 2, "lasl", threads=1)
    _run(data_dir, tmp_path / "two", 2, "lasl", threads=2)
    assert _rows(tmp_path / "two") == _rows(tmp_path / "one")


def test_a_simulator_worker_runs_on_one_torch_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(("torch threads", n)))
    monkeypatch.setattr(simulate.logging, "basicConfig", lambda **k: None)
    monkeypatch.setattr(simulate, "run_one", lambda settings, name, seed, out: calls.append(("run", name, seed, out)) or [{}, {}])
    settings = SimSettings(data=str(tmp_path), strategies=["lasl"], seeds=[3], init=0.1, step=0.1, rounds=1, threads=2)
    assert simulate._worker((settings, "lasl", 3, str(tmp_path))) == 2
    assert calls == [("torch threads", 1), ("run", "lasl", 3, tmp_path)]  # set before the run, whatever --threads says
