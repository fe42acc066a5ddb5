"""The shared measurement helpers: percentiles as numpy computes them, torch threads per section, and the
tools' progress lines."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lasl_backend.devtools import measure
from lasl_backend.devtools.measure import best_seconds, logger, percentiles
from lasl_backend.devtools.torch_timing import torch_threads


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=50))
def test_percentiles_are_numpys_linear_interpolation(xs: list[float]) -> None:
    got = percentiles(xs, (0, 50, 95, 99, 100))
    want = np.percentile(xs, [0, 50, 95, 99, 100])
    assert [got[k] for k in ("p0", "p50", "p95", "p99", "p100")] == pytest.approx(want.tolist(), rel=1e-12, abs=1e-9)


def test_percentiles_of_no_samples_are_nan_not_an_error() -> None:
    assert all(math.isnan(v) for v in percentiles([]).values())
    assert set(percentiles([])) == {"p50", "p95", "p99"}


def test_torch_threads_sets_the_count_inside_and_restores_it_after() -> None:
    before = torch.get_num_threads()
    outer = 2 if before != 2 else 3
    with torch_threads(outer):
        assert torch.get_num_threads() == outer
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == outer
    assert torch.get_num_threads() == before


def test_torch_threads_restores_the_count_when_the_section_fails() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(before + 1):
        raise RuntimeError("measured section failed")
    assert torch.get_num_threads() == before


def test_best_seconds_warms_up_once_then_keeps_the_fastest_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    clock = iter([0.0, 5.0, 10.0, 11.0, 20.0, 23.0])  # three timed calls: 5 s, 1 s, 3 s
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(clock))
    assert best_seconds(lambda: calls.append(1), reps=3) == 1.0
    assert len(calls) == 4  # the warm-up call is not timed


def test_a_progress_line_names_its_tool_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """stdout keeps only what a tool reports (its JSON)."""
    logger("bench")("scoring 1000 records")
    logger("bench-server", clock=True)("queue: version v1 after 41.2 s")
    out, err = capsys.readouterr()
    assert out == ""
    first, second = err.splitlines()
    assert first == "[bench] scoring 1000 records"
    assert re.fullmatch(r"\[bench-server \d\d:\d\d:\d\d\] queue: version v1 after 41\.2 s", second)
