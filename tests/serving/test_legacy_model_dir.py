"""A MODEL_DIR written by the flat-layout code still loads and predicts exactly what it predicted then."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lasl_backend.config import Settings
from lasl_backend.ner import NerModel
from lasl_backend.serving.routes import init_app
from lasl_backend.serving.store import ModelStore

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_model_dir"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))
PROJECT = 7


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE / "models", tmp_path / "models")
    return tmp_path / "models"


def test_old_checkpoint_gives_the_same_record_scores(model_dir: Path) -> None:
    store = ModelStore(model_dir)
    model = NerModel.load(store.model_path(PROJECT, EXPECTED["version"]))
    got = model.predict(EXPECTED["texts"])
    for g, want in zip(got, EXPECTED["record_scores"], strict=True):
        assert [[e.start, e.end, e.label] for e in g.entities] == want["entities"]
        assert g.l_min == pytest.approx(want["l_min"], rel=1e-9, abs=1e-9)
        assert g.l_max == pytest.approx(want["l_max"], rel=1e-9, abs=1e-9)
        assert g.l_pred == pytest.approx(want["l_pred"], rel=1e-5, abs=1e-6)
        assert g.n_chunks == want["n_chunks"]
    assert sum(len(w["entities"]) for w in EXPECTED["record_scores"]) > 10  # the fixture really tags


def test_old_model_dir_serves_the_same_predictions(model_dir: Path) -> None:
    store = ModelStore(model_dir)
    assert store.latest_good(PROJECT) == EXPECTED["version"]
    app = init_app(settings=Settings(model_dir=model_dir))
    client = app.test_client()
    tasks = [{"id": i + 1, "data": {"text": t}} for i, t in enumerate(EXPECTED["texts"])]
    resp = client.post("/predict", json={"tasks": tasks, "project": f"{PROJECT}.1700000000", "label_config": EXPECTED["label_config"]})
    assert resp.status_code == 200, resp.get_json()
    results = resp.get_json()["results"]
    assert len(results) == len(EXPECTED["predict"])
    for got, want in zip(results, EXPECTED["predict"]):
        assert got["model_version"] == want["model_version"] == EXPECTED["version"]
        # the score is a function of the model's float32 losses, so it carries their tolerance: float32 sums
        # differ in the last bits from one CPU's vector units to another's
        assert got["score"] == pytest.approx(want["score"], rel=1e-5, abs=1e-7)
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["text"], r["value"]["labels"]) for r in got["result"]] == \
               [(r["value"]["start"], r["value"]["end"], r["value"]["text"], r["value"]["labels"]) for r in want["result"]]
        assert [r["score"] for r in got["result"]] == pytest.approx([r["score"] for r in want["result"]], rel=1e-6, abs=1e-7)
    versions = client.get(f"/versions?project={PROJECT}").get_json()["versions"]
    assert versions == sorted(p.name for p in (model_dir / "projects" / str(PROJECT) / "versions").iterdir())[::-1]
