"""``lasl bench``'s LPN-size rows: one row per size of the paper's Table 6 and the tagger alone, each
measured on a model that really has that loss net (no timing is asserted: benchmarks print numbers)."""

from __future__ import annotations

import pytest

from lasl_backend.devtools import bench
from lasl_backend.devtools.synthetic import make_records


def test_lpn_sizes_rows_measure_a_model_of_each_size(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str | None, int | None]] = []
    real_create = bench.NerModel.create

    def create(*args, **kwargs):  # record what each row measures
        model = real_create(*args, **kwargs)
        built.append((model.lossnet_kind, model.lpn_layers))
        return model

    monkeypatch.setattr(bench.NerModel, "create", create)
    texts = [r.text for r in make_records(6, seed=0, mean_chars=120, max_chars=250)]
    rows = bench.bench_lpn_sizes(texts, threads=1, one_reps=2, pool_reps=1)
    assert [r["lpn_layers"] for r in rows] == [2, 1, 0, None]
    assert built == [("lpn", 2), ("lpn", 1), ("lpn", 0), (None, None)]
    for r in rows:
        assert r["records_per_s"] > 0 and r["scoring_10k_s"] > 0
        assert 0 < r["one_record_p50_ms"] <= r["one_record_p95_ms"]


def test_server_bench_records_the_settings_the_backend_ran_with() -> None:
    """A report names the LPN size the backend really used, not "default" (a default can change)."""
    from lasl_backend.devtools.bench_server import _effective_settings
    from lasl_backend.config import Settings

    assert _effective_settings({})["LASL_LPN_LAYERS"] == Settings().lpn_layers
    got = _effective_settings({"LASL_LPN_LAYERS": "2", "LASL_TRAIN_SECONDS": "45"})
    assert got["LASL_LPN_LAYERS"] == 2 and got["LASL_TRAIN_SECONDS"] == 45.0
