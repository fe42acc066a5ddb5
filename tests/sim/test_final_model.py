"""The final model at the stop: the records labeled by the stop round, one model trained on them and kept
in ``final_models.json``, and the stopping report scoring the rule on its F1."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from lasl_backend.data import write_jsonl
from lasl_backend.devtools.synthetic import make_records
from lasl_backend.sim import final_model as fm
from lasl_backend.sim.results import ReplayFileError
from lasl_backend.sim.stopping_report import FINAL_FILE, main as report_main, stop_point, stopping_report
from lasl_backend.stopping import StopRule

from tests.sim.test_stopping_report import FLAT, FLAT_NS, FULL, POOL, RISE, RISING_KAPPA, RULE3, STOP, STRATEGY, rows_for, write_run

#: stops once 4 versions carry a held-back F1 and the last is stable: at round 3 of ``tiny_rows``
LOOSE = StopRule(min_annotations=0, kappa_threshold=0.5, kappa_window=1, stop_gain=1.0, slow_gain=1.0)


def with_picks(rows: list[dict[str, Any]], first: int, step: int) -> list[dict[str, Any]]:
    """``rows`` with round 0's labeled records and each later round's picks, ``step`` new records a round."""
    rows[0]["labeled"] = list(range(first))
    for i, r in enumerate(rows[1:], start=1):
        r["picked"] = list(range(first + (i - 1) * step, first + i * step))
    return rows


def test_labeled_at_adds_the_picks_up_to_the_round() -> None:
    rows = with_picks([{"round": i, "labeled_records": 3 + 2 * i} for i in range(4)], 3, 2)
    assert fm.labeled_at(rows, 0) == [0, 1, 2]
    assert fm.labeled_at(rows, 2) == [0, 1, 2, 3, 4, 5, 6]
    rows[2]["labeled_records"] = 8
    with pytest.raises(ReplayFileError, match="round 2: 7 records from the picks, 8 in the row"):
        fm.labeled_at(rows, 2)
    del rows[0]["labeled"]
    with pytest.raises(ReplayFileError, match="round 0 lists no labeled records"):
        fm.labeled_at(rows, 1)


def test_the_report_scores_the_rule_on_the_final_model_at_its_stop(tmp_path: Path) -> None:
    """A final model counts where it was trained at the run's stop round, with the same 1.3× records test."""
    low_then_late = RISE + [0.77, 0.77, 0.78, 0.78]  # 0.77 at the stop: fails on the version's F1
    early = RISE[:5] + [0.78] * 3 + [0.79] * 4  # 97% at 600 records, stop at 900: 1.5×, too late whatever the F1
    for seed, f1 in ((0, low_then_late), (1, early), (2, low_then_late)):
        write_run(tmp_path, rows_for(FLAT_NS, FLAT, RISING_KAPPA, f1=f1, seed=seed))
    finals = {"0": {"round": STOP, "records": 900, "f1": 0.79, "dev_f1": 0.5},
              "1": {"round": STOP, "records": 900, "f1": 0.79, "dev_f1": 0.5},
              "2": {"round": STOP - 1, "records": 800, "f1": 0.79, "dev_f1": 0.5}}  # trained at another rule's stop
    (tmp_path / FINAL_FILE).write_text(json.dumps(finals))
    rep = stopping_report(tmp_path, STRATEGY, FULL, POOL, RULE3, dev_full_f1=FULL)
    r0, r1, r2 = (rep["runs"][s] for s in "012")
    assert not r0["passes"] and r0["final"] == {"f1": 0.79, "share_of_full": pytest.approx(0.79 / FULL), "records": 900, "passes": True}
    assert r1["final"]["share_of_full"] >= 0.97 and r1["final"]["passes"] is False
    assert "final" not in r2
    assert rep["dev"]["0"]["final"]["f1"] == 0.5 and rep["dev"]["0"]["final"]["passes"] is False


def test_a_broken_final_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path, rows_for(FLAT_NS, FLAT, RISING_KAPPA, f1=RISE + [0.8] * 4))
    (tmp_path / FINAL_FILE).write_text('{"0": {"round": 8}}')
    with pytest.raises(SystemExit) as exc:
        report_main(["--out", str(tmp_path), "--full-f1", "0.8", "--pool", "1500"])
    assert exc.value.code == 2 and f"{FINAL_FILE}: not a seed → final model map" in capsys.readouterr().err


@pytest.fixture()
def tiny_replay(tmp_path: Path) -> Path:
    """A replay directory of two seeds whose rule (``LOOSE``) stops at round 3, with 9 of 16 records
    labeled there, on synthetic data."""
    data = tmp_path / "data"
    data.mkdir()
    recs = make_records(24, seed=3, mean_chars=40, max_chars=70)
    write_jsonl(recs[:16], data / "train.jsonl")
    write_jsonl(recs[16:], data / "test.jsonl")
    out = tmp_path / "sim"
    out.mkdir()
    (out / "settings.json").write_text(json.dumps({"data": str(data), "strategies": [STRATEGY], "seeds": [0, 1], "init": 0.2,
                                                   "step": 0.1, "rounds": 5, "lpn_layers": 0, "char_vectors": "none",
                                                   "serving": "queue", "unknown_later_key": 1}))
    for seed in (0, 1):
        rows = rows_for([3, 5, 7, 9, 11], [0.3, 0.45, 0.55, 0.6, 0.62], [None, 0.9, 0.9, 0.9, 0.9], f1=[0.1, 0.2, 0.3, 0.4, 0.5], seed=seed)
        write_run(out, with_picks(rows, 3, 2))
    return out


def test_final_models_trains_each_seed_once_at_its_stop(tiny_replay: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = json.loads((tiny_replay / "state" / f"{STRATEGY}-s0" / "state.json").read_text())["rows"]
    assert stop_point(rows, LOOSE) == 3
    configs: list[Any] = []

    def short(settings: Any, seed: int) -> Any:  # the full schedule's options, with 20 steps instead of 600
        cfg = dataclasses.replace(fm.all_data_config(settings).full_schedule(), seed=seed, max_epochs=2, min_steps=20)
        configs.append(cfg)
        return cfg

    monkeypatch.setattr(fm, "final_config", short)
    done = fm.final_models(tiny_replay, STRATEGY, LOOSE)
    assert set(done) == {"0", "1"} and [c.seed for c in configs] == [0, 1] and not configs[0].mean_teacher
    for seed in "01":
        d = done[seed]
        assert (d["round"], d["records"], d["version_f1"]) == (3, 9, 0.4) and d["steps"] >= 20
        assert 0.0 <= d["f1"] <= 1.0 and d["dev_f1"] is None  # the replay kept no dev records
    assert json.loads((tiny_replay / FINAL_FILE).read_text()) == done
    assert fm.final_models(tiny_replay, STRATEGY, LOOSE) == done and len(configs) == 2  # nothing trained again


def test_final_model_command_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        fm.main(["--out", str(tmp_path)])
    assert "no state/ directory" in capsys.readouterr().err
    (tmp_path / "state").mkdir()
    with pytest.raises(SystemExit):
        fm.main(["--out", str(tmp_path), "--seeds", "1,x"])
    assert "--seeds must be comma-separated integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fm.main(["--out", str(tmp_path)])
    assert "settings.json: not a replay's settings" in capsys.readouterr().err
