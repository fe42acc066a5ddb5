"""Hostile command lines and output directories for the replay reports (stopping_report, entity_yield) and
hostile targets for the effort report: a bad argument or a damaged file should be a usage error or a
message naming the file (exit status != 0), never a traceback, and never a report of NaN or nonsense."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest

from lasl_backend.data import Record
from lasl_backend.sim import entity_yield as ey
from lasl_backend.sim import stopping_report as sr
from lasl_backend.sim.effort import write_effort
from tests.sim.test_stopping_report import FLAT, FLAT_NS, PASSING, RISING_KAPPA, rows_for, write_run


def cli_error(main: Callable[[Sequence[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``main``; it must exit with a non-zero status (SystemExit, not an exception): returns stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code not in (0, None)
    return capsys.readouterr().err + (exc.value.code if isinstance(exc.value.code, str) else "")


def good_run(out: Path, drop: str | None = None) -> None:
    rows = rows_for(FLAT_NS, FLAT, RISING_KAPPA, f1=PASSING)
    if drop:
        for r in rows:
            r.pop(drop)
    write_run(out, rows)


# ---- stopping_report --------------------------------------------------------------------------------------------
def test_stopping_report_valid_run_still_exits_zero(tmp_path: Path) -> None:
    """The baseline the hostile cases are measured against: a good run exits 0 and writes valid JSON."""
    good_run(tmp_path)
    assert sr.main(["--out", str(tmp_path), "--full-f1", "0.8", "--pool", "900"]) == 0
    json.loads((tmp_path / "stopping.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_stopping_report_without_a_pool_size_asks_for_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No --pool, no all_data.json and no settings.json to count the pool from: a usage error, not a guess."""
    good_run(tmp_path)
    assert "--pool is needed" in cli_error(sr.main, ["--out", str(tmp_path), "--full-f1", "0.8"], capsys)


def test_stopping_report_missing_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --out that does not exist is a usage error naming it."""
    missing = tmp_path / "nope"
    assert str(missing) in cli_error(sr.main, ["--out", str(missing), "--full-f1", "0.8"], capsys)


@pytest.mark.parametrize("layout", ["no_state", "empty_state", "other_strategy"])
def test_stopping_report_no_runs_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str) -> None:
    """A directory holding no run of the strategy is not a simulate output for it: say so, do not report nothing."""
    if layout == "empty_state":
        (tmp_path / "state").mkdir()
    if layout == "other_strategy":
        write_run(tmp_path, rows_for(FLAT_NS, FLAT, RISING_KAPPA, strategy="random"))
    cli_error(sr.main, ["--out", str(tmp_path), "--full-f1", "0.8"], capsys)
    assert not (tmp_path / "stopping.json").exists()


def test_stopping_report_truncated_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A half-written state.json is reported by name."""
    good_run(tmp_path)
    st = next((tmp_path / "state").glob("*/state.json"))
    st.write_text(st.read_text()[:40])
    assert "state.json" in cli_error(sr.main, ["--out", str(tmp_path), "--full-f1", "0.8"], capsys)


@pytest.mark.parametrize("state", [{"labeled": []}, {"rows": [{"strategy": "lasl+cost+div", "seed": 0}]},
                                   {"rows": [{"strategy": "lasl+cost+div", "seed": 0, "round": 0}]}])
def test_stopping_report_rows_missing_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str], state: dict[str, Any]) -> None:
    """Rows missing what the report reads are reported with the file's name."""
    d = tmp_path / "state" / "lasl+cost+div-s0"
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps(state))
    assert "state.json" in cli_error(sr.main, ["--out", str(tmp_path), "--full-f1", "0.8"], capsys)


@pytest.mark.parametrize("value", ["0", "-0.5", "nan", "inf", "1.5"])
def test_stopping_report_bad_full_f1(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    """--full-f1 must be an F1 in (0, 1]: anything else is a usage error."""
    good_run(tmp_path)
    assert "--full-f1" in cli_error(sr.main, ["--out", str(tmp_path), f"--full-f1={value}"], capsys)


def test_stopping_report_bad_dev_full_f1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dev-full-f1 must be an F1 in (0, 1] too."""
    good_run(tmp_path)
    assert "--dev-full-f1" in cli_error(sr.main, ["--out", str(tmp_path), "--full-f1", "0.8", "--dev-full-f1=nan"], capsys)


@pytest.mark.parametrize("value", ["0", "-3"])
def test_stopping_report_bad_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    """A pool of no records is a usage error."""
    good_run(tmp_path)
    assert "--pool" in cli_error(sr.main, ["--out", str(tmp_path), "--full-f1", "0.8", f"--pool={value}"], capsys)


@pytest.mark.parametrize("choose", [False, True])
def test_stopping_report_dev_without_dev_records(tmp_path: Path, capsys: pytest.CaptureFixture[str], choose: bool) -> None:
    """Rows without dev_f1 (no --dev-records in the replay) make --dev-full-f1/--choose a clear error."""
    good_run(tmp_path, drop="dev_f1")
    argv = ["--out", str(tmp_path), "--full-f1", "0.8", "--dev-full-f1", "0.8"] + (["--choose"] if choose else [])
    assert "dev" in cli_error(sr.main, argv, capsys)


# ---- entity_yield -----------------------------------------------------------------------------------------------
POOL = [Record(f"r{i}", "字" * 100, []) for i in range(3)]


def yield_dir(tmp_path: Path, settings: str | None = None, state: str | None = None) -> Path:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in POOL))
    (out / "state" / "a-s0").mkdir(parents=True)
    (out / "settings.json").write_text(settings if settings is not None else json.dumps({"data": str(data)}))
    rows = [{"strategy": "a", "seed": 0, "round": 0, "labeled": [0, 1]}]
    (out / "state" / "a-s0" / "state.json").write_text(state if state is not None else json.dumps({"rows": rows}))
    return out


def test_entity_yield_valid_dir_exits_zero(tmp_path: Path) -> None:
    """The baseline: the directory built here is readable."""
    assert ey.main(["--out", str(yield_dir(tmp_path)), "--chars", "150"]) == 0


@pytest.mark.parametrize("settings", ['{"dat', "{}", "[]"])
def test_entity_yield_bad_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: str) -> None:
    """An unreadable settings.json, or one naming no data directory (without --data), is reported by name."""
    out = yield_dir(tmp_path, settings=settings)
    assert "settings.json" in cli_error(ey.main, ["--out", str(out)], capsys)


def test_entity_yield_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--data without train.jsonl: the DataError's message on stderr and a non-zero exit, no traceback."""
    out = yield_dir(tmp_path)
    assert "train.jsonl" in cli_error(ey.main, ["--out", str(out), "--data", str(tmp_path / "nope")], capsys)


@pytest.mark.parametrize("state", ['{"rows": [{"stra', json.dumps({"rows": [{"strategy": "a", "seed": 0}]})])
def test_entity_yield_bad_state(tmp_path: Path, capsys: pytest.CaptureFixture[str], state: str) -> None:
    """A damaged state.json is reported by name."""
    out = yield_dir(tmp_path, state=state)
    assert "state.json" in cli_error(ey.main, ["--out", str(out)], capsys)


def test_entity_yield_picks_outside_the_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run whose picks index past the pool read does not belong to that pool: say so."""
    out = yield_dir(tmp_path, state=json.dumps({"rows": [{"strategy": "a", "seed": 0, "round": 0, "labeled": [7]}]}))
    cli_error(ey.main, ["--out", str(out), "--chars", "50"], capsys)


def test_yield_markdown_names_small_budgets_exactly() -> None:
    """Two budgets below or between thousands are not both shown as the same rounded figure."""
    text = ey.yield_markdown(ey.entity_yield([], POOL, [500, 1500]))
    assert "At 0k" not in text and "At 1k characters" not in text


# ---- effort -----------------------------------------------------------------------------------------------------
EFFORT_ROWS = [{"strategy": "random", "seed": 0, "round": i, "labeled_chars": 1000 * i, "labeled_records": i, "f1": 0.1 * i}
               for i in range(5)]


@pytest.mark.parametrize("full_f1", [math.nan, -0.4])
def test_write_effort_refuses_a_target_that_is_no_f1(tmp_path: Path, full_f1: float) -> None:
    """As for None or 0, an all-data F1 that is NaN or negative gives no report and no file."""
    assert write_effort(tmp_path, EFFORT_ROWS, full_f1) is None
    assert not (tmp_path / "effort.json").exists()
