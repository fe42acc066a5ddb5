"""The /dashboard benchmark runs end to end on a small request count and writes its numbers as JSON
(no speed is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lasl_backend.devtools import bench_dashboard
from lasl_backend.serving.history import ProjectHistory
from lasl_backend.serving.store import ModelStore

KEYS = {"requests", "p50_ms", "p95_ms", "max_ms", "mean_ms", "first_ms", "page_bytes", "recommendation", "model_loaded",
        "signals", "runs", "loadavg"}


def test_five_requests_write_the_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "bench.json"
    assert bench_dashboard.main(["--requests", "5", "--out", str(out)]) == 0
    res = json.loads(out.read_text(encoding="utf-8"))
    assert set(res) == KEYS
    assert res["requests"] == 5 and res["signals"] == 50 and res["runs"] == 50
    assert 0 < res["p50_ms"] <= res["p95_ms"] <= res["max_ms"]
    assert res["page_bytes"] > 0 and res["model_loaded"] is False
    assert "p50" in capsys.readouterr().out


def test_the_model_dir_holds_what_it_says(tmp_path: Path) -> None:
    latest = bench_dashboard.build_model_dir(tmp_path, n_signals=7, n_runs=9)
    store = ModelStore(tmp_path)
    history = ProjectHistory(store.project_dir(bench_dashboard.PROJECT))
    signals, runs = history.signals(), history.runs()
    assert len(signals) == 7 and len(runs) == 9
    assert store.current(bench_dashboard.PROJECT) == latest == signals[-1]["version"]
    assert signals[0]["kappa"] is None and all(-1 <= s["kappa"] <= 1 for s in signals[1:])
    assert all(s["f1_lo"] <= s["f1_held_out"] <= s["f1_hi"] for s in signals)


def test_request_counts_below_one_are_refused() -> None:
    with pytest.raises(SystemExit):
        bench_dashboard.parse_args(["--requests", "0"])
