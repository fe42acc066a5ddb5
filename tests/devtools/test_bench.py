"""``lasl bench``: the LPN-size rows (one per size of the paper's Table 6 and the tagger alone, each measured
on a model that really has that loss net), the torch threads each section is measured with, and what a timed
part of one record includes. No speed is asserted: benchmarks print numbers."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from lasl_backend.devtools import bench_crf, bench_predict, bench_scoring, bench_training
from lasl_backend.devtools.synthetic import LABELS, make_records


def test_lpn_sizes_rows_measure_a_model_of_each_size(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str | None, int | None]] = []
    real_create = bench_scoring.NerModel.create

    def create(*args, **kwargs):  # record what each row measures
        model = real_create(*args, **kwargs)
        built.append((model.lossnet_kind, model.lpn_layers))
        return model

    monkeypatch.setattr(bench_scoring.NerModel, "create", create)
    texts = [r.text for r in make_records(6, seed=0, mean_chars=120, max_chars=250)]
    rows = bench_scoring.bench_lpn_sizes(texts, threads=1, one_reps=2, pool_reps=1)
    assert [r["lpn_layers"] for r in rows] == [2, 1, 0, None]
    assert built == [("lpn", 2), ("lpn", 1), ("lpn", 0), (None, None)]
    for r in rows:
        assert r["records_per_s"] > 0 and r["scoring_10k_s"] > 0
        assert 0 < r["one_record_p50_ms"] <= r["one_record_p95_ms"]


def test_server_bench_records_the_settings_the_backend_ran_with() -> None:
    """A report names the LPN size the backend really used, not "default" (a default can change)."""
    from lasl_backend.config import Settings
    from lasl_backend.devtools.backend_state import effective_settings as _effective_settings

    assert _effective_settings({})["LASL_LPN_LAYERS"] == Settings().lpn_layers
    got = _effective_settings({"LASL_LPN_LAYERS": "2", "LASL_TRAIN_SECONDS": "45"})
    assert got["LASL_LPN_LAYERS"] == 2 and got["LASL_TRAIN_SECONDS"] == 45.0


def _threads_seen_in(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, seen: list[int], only_with: str | None = None) -> None:
    """Wrap ``owner.name`` so that each call (with the keyword ``only_with``, if given) records the torch
    threads it ran with."""
    real = getattr(owner, name)

    def wrapped(*args, **kwargs):
        if only_with is None or only_with in kwargs:
            seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


def test_each_section_runs_with_the_torch_threads_its_numbers_are_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring: ``threads`` workers of one torch thread; one record, the CRF kernels and the LASL round: one
    torch thread; training steps: ``threads`` torch threads. Whatever the process had set before (warm-ups
    and the agreement check, which are not timed, run on it)."""
    records = make_records(40, seed=1, mean_chars=60, max_chars=120)
    texts = [r.text for r in records]
    model = bench_scoring.NerModel.create(list(LABELS), texts=texts, lossnet_kind="lpn", lpn_layers=0)
    torch.set_num_threads(3)  # the process's own setting: the sections must not inherit it
    try:
        predict_threads: list[int] = []
        _threads_seen_in(monkeypatch, bench_scoring.NerModel, "predict", predict_threads, only_with="workers")  # the timed calls
        bench_scoring.bench_scoring(model, texts, reps=1, workers=2)
        bench_scoring.bench_one_record(model, texts[0], n=2, workers=2)
        assert predict_threads and set(predict_threads) == {1}
        assert torch.get_num_threads() == 3  # restored

        kernel_threads: list[int] = []
        _threads_seen_in(monkeypatch, bench_crf.crfmod, "crf_bounds", kernel_threads)
        bench_crf.bench_crf_kernel(model, texts[:8], reps=1)
        assert kernel_threads[0] == 3 and set(kernel_threads[1:]) == {1}  # the agreement check, then the timed kernels

        step_threads: list[int] = []
        _threads_seen_in(monkeypatch, bench_training, "collate", step_threads)
        bench_training.bench_training(records, steps=2, threads=2)
        assert step_threads == [2, 2]

        round_threads: list[int] = []
        _threads_seen_in(monkeypatch, bench_training, "train_lasl", round_threads)
        predict_threads.clear()
        out = bench_training.bench_lasl_round(records, records[:3], threads=2, quick=True, lpn_layers=0)
        assert round_threads == [1, 1, 1] and set(predict_threads) == {1}
        assert out["round_s"] == pytest.approx(out["train_s"] + out["score_pool_s"] + out["test_eval_s"])
        assert out["step_s_without_mean_teacher"] > 0  # the first steps of the same round, timed without Mean Teacher
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(1)


def test_the_model_benchmarks_run_without_the_serving_stack_loaded() -> None:
    """With flask, the store and requests imported, the GC's passes over their objects slow the scoring
    numbers by about a quarter: ``lasl bench`` without ``--server`` must not import them."""
    code = "import sys, lasl_backend.devtools.bench; print(sorted(m for m in ('flask', 'requests', 'lasl_backend.serving') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_the_loss_nets_part_of_one_record_includes_bringing_its_output_to_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU the loss net's call returns before its kernels have run; its time must include the copy to
    the host that prediction makes (``.double().cpu().numpy()``), or it measures only the launch."""
    texts = [r.text for r in make_records(3, seed=2, mean_chars=60, max_chars=90)]
    model = bench_predict.NerModel.create(list(LABELS), texts=texts, lossnet_kind="lpn", lpn_layers=0)
    real = model.lossnet.predict_loss

    class SlowToHost:
        """A result whose copy to the CPU takes 50 ms, as a GPU's queued work would."""

        def __init__(self, t: torch.Tensor) -> None:
            self.t = t

        def double(self) -> "SlowToHost":
            return self

        def cpu(self) -> torch.Tensor:
            time.sleep(0.05)
            return self.t.double()

    monkeypatch.setattr(model.lossnet, "predict_loss", lambda *a: SlowToHost(real(*a)))
    parts = bench_predict._one_record_parts(model, texts[:2])
    assert len(parts["lpn"]) == 2 and min(parts["lpn"]) >= 0.05
    assert len(parts["enc"]) == len(parts["crf"]) == 2
