"""Entities per character of a replay's picks, and the densest-first ceiling, on a pool built by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lasl_backend.data import Entity, Record
from lasl_backend.sim import entity_yield as ey

# record i: 100 characters, i entities (record 0 has none)
POOL = [Record(f"r{i}", "字" * 100, [Entity(j, j + 1, "X") for j in range(i)]) for i in range(10)]
LENGTHS = np.full(10, 100)
ENTITIES = np.arange(10)


def _rows(strategy: str, seed: int, first: list[int], picks: list[list[int]]) -> list[dict]:
    rows = [{"strategy": strategy, "seed": seed, "round": 0, "labeled": first, "picked": []}]
    return rows + [{"strategy": strategy, "seed": seed, "round": k + 1, "labeled": None, "picked": p} for k, p in enumerate(picks)]


def test_labeled_at_is_the_first_round_that_reaches_the_budget() -> None:
    rows = _rows("a", 0, [0], [[1, 2], [3]])
    assert ey.labeled_at(rows, LENGTHS, 100) == [0]
    assert ey.labeled_at(rows, LENGTHS, 101) == [0, 1, 2]
    assert ey.labeled_at(list(reversed(rows)), LENGTHS, 400) == [0, 1, 2, 3]  # rows in any order
    assert ey.labeled_at(rows, LENGTHS, 401) is None


def test_the_ceiling_takes_the_densest_records_first() -> None:
    c = ey.density_ceiling(LENGTHS, ENTITIES, 250)  # 3 records reach 250 characters: 9, 8 and 7 entities
    assert c == {"records": 3, "entities_per_char": pytest.approx(24 / 300)}
    assert ey.density_ceiling(LENGTHS, ENTITIES, 10**6)["records"] == 10  # never past the pool


def test_entity_yield_averages_the_seeds_that_reached_each_budget() -> None:
    rows = _rows("dense", 0, [9], [[8]]) + _rows("dense", 1, [7], [[6]]) + _rows("sparse", 0, [0], [[1], [2]])
    rep = ey.entity_yield(rows, POOL, [200, 300])
    at200 = rep["200"]["strategies"]
    assert at200["dense"] == {"records": 2, "chars_per_record": 100.0, "entities": 15.0,
                              "entities_per_char": pytest.approx(0.075), "seeds": 2}
    assert at200["sparse"]["entities_per_char"] == pytest.approx(1 / 200)
    assert set(rep["300"]["strategies"]) == {"sparse"}  # the dense runs never reached 300 characters
    assert rep["pool"] == {"records": 10, "entities_per_char": pytest.approx(45 / 1000)}
    text = ey.yield_markdown(rep)
    assert "| dense | 2 | 2 | 100 | 15 | 0.0750 |" in text and "densest first (the ceiling)" in text


def test_the_command_reads_the_pool_named_in_the_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in POOL))
    (out / "state" / "dense-s0").mkdir(parents=True)
    (out / "settings.json").write_text(json.dumps({"data": str(data), "dev_records": 0}))
    (out / "state" / "dense-s0" / "state.json").write_text(json.dumps({"rows": _rows("dense", 0, [9], [[8]])}))
    assert ey.main(["--out", str(out), "--chars", "150"]) == 0
    assert "| dense | 1 | 2 | 100 | 17 | 0.0850 |" in capsys.readouterr().out
    assert json.loads((out / "entity_yield.json").read_text())["150"]["strategies"]["dense"]["entities"] == 17


@pytest.mark.parametrize("chars", ["abc", "", "0", "-5"])
def test_bad_budgets_are_a_usage_error(tmp_path: Path, chars: str) -> None:
    (tmp_path / "settings.json").write_text("{}")
    with pytest.raises(SystemExit) as exc:
        ey.main(["--out", str(tmp_path), "--chars", chars])
    assert exc.value.code == 2


def test_a_directory_without_settings_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ey.main(["--out", str(tmp_path)])
    assert "not a lasl simulate output directory" in capsys.readouterr().err
