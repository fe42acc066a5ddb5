"""``--full-f1 train``: the all-data model trained once per directory, reused, and read by the stopping report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lasl_backend.cli import main
from lasl_backend.data import write_jsonl
from lasl_backend.devtools.synthetic import make_records
from lasl_backend.sim import all_data, stopping_report as sr
from lasl_backend.sim.all_data import ALL_DATA_FILE, read_all_data


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("alldata")
    recs = make_records(34, seed=5, mean_chars=50, max_chars=90)
    write_jsonl(recs[:26], d / "train.jsonl")
    write_jsonl(recs[26:], d / "test.jsonl")
    return d


def _simulate(data_dir: Path, out: Path, *extra: str) -> int:
    return main(["simulate", "--data", str(data_dir), "--strategies", "lasl+cost+div", "--seeds", "0", "--rounds", "2",
                 "--out", str(out), "--first-round-steps", "6", "--round-steps", "2", "--epochs-per-round", "1",
                 "--serving", "queue", "--train-every", "3", "--dev-records", "6", "--stop-set", "4",
                 "--full-f1", "train", "--lpn-layers", "0", *extra])


def test_the_all_data_model_is_trained_once_and_its_f1_draws_the_curves(data_dir: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = all_data.all_data_config
    # the settings' knowledge options as the replay passes them, with fewer steps than lasl train's 600
    monkeypatch.setattr(all_data, "all_data_config", lambda s: dataclasses.replace(real(s), min_steps=30, max_epochs=3))
    out = tmp_path / "sim"
    assert _simulate(data_dir, out) == 0
    numbers = read_all_data(out)
    assert numbers is not None and numbers["pool_records"] == 20 and numbers["test_records"] == 8
    assert 0.0 <= numbers["test_f1"] <= 1.0 and 0.0 <= numbers["dev_f1"] <= 1.0 and numbers["steps"] > 0
    # a later invocation reuses the recorded number, never a second model's
    (out / ALL_DATA_FILE).write_text(json.dumps(dict(numbers, test_f1=0.625, dev_f1=0.5)))
    assert main(["simulate", "--data", str(data_dir), "--strategies", "lasl+cost+div", "--seeds", "0", "--rounds", "2",
                 "--out", str(out), "--first-round-steps", "6", "--round-steps", "2", "--epochs-per-round", "1",
                 "--serving", "queue", "--train-every", "3", "--dev-records", "6", "--stop-set", "4",
                 "--full-f1", "train", "--lpn-layers", "0", "--report-only"]) == 0
    assert json.loads((out / "results.json").read_text())["full_data_f1"] == 0.625
    # the stopping report takes the all-data F1s and the pool's size from the directory
    assert sr.main(["--out", str(out), "--strategy", "lasl+cost+div"]) == 0
    report = json.loads((out / "stopping.json").read_text())
    assert report["full_f1"] == 0.625 and "dev" in report
    # without the file, the pool is the replay's training records less its dev split
    import argparse
    assert sr._pool_from_settings(argparse.ArgumentParser(), out) == 20


def test_a_broken_all_data_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / ALL_DATA_FILE).write_text("{not json")
    with pytest.raises(SystemExit) as exc:
        sr.main(["--out", str(tmp_path)])
    assert exc.value.code == 2 and ALL_DATA_FILE in capsys.readouterr().err


def test_without_an_all_data_f1_the_report_says_how_to_have_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state").mkdir()
    with pytest.raises(SystemExit) as exc:
        sr.main(["--out", str(tmp_path)])
    assert exc.value.code == 2 and "--full-f1 train" in capsys.readouterr().err
