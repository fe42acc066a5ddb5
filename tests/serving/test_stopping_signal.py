"""The stopping signal a training run records, against a fake Label Studio: one entry per published
version (held-back F1 and its interval, the annotations' label counts, kappa with the previous version on
a stop set drawn once), nothing for a failed run, every outcome in runs.json, the history kept past
pruning and across a restart, and what /metrics says about the recommendation and the queue's cost unit.

Training is replaced by ``train_fn`` handing out the checked-in fixture model (test_training_run.py)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from lasl_backend.config import Settings
from lasl_backend.devtools.synthetic import make_records
from lasl_backend.labelstudio import LabelStudioServerError, LSClient
from lasl_backend.ner import NerModel, TrainResult
from lasl_backend.serving.backend import LaslBackend, NotEnoughLabeledError
from lasl_backend.serving.history import ProjectHistory
from lasl_backend.serving.routes import init_app
from lasl_backend.serving.store import ModelStore
from lasl_backend.stopping import NOT_ENOUGH_DATA

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.test_training_run import CFG, MODEL_DIR, Trainer, no_sdk_retries

PID = 1
FIRST_TASK = 100
N_TASKS = 24
N_ANNOTATED = 10  # tasks 100..109; with holdout_fraction 0.3 the hash holds back 100, 103, 106 and 107
STOP_SET = 6


@pytest.fixture(scope="module")
def fixture_model() -> NerModel:
    return NerModel.load(MODEL_DIR)


RECORDS = make_records(N_TASKS, seed=5, mean_chars=40)


def regions(tid: int) -> list[tuple[int, int, str]]:
    """The synthetic record's gold entities of task ``tid``."""
    return [(e.start, e.end, e.label) for e in RECORDS[tid - FIRST_TASK].entities]


@pytest.fixture()
def fake() -> Iterator[FakeLabelStudio]:
    with FakeLabelStudio() as f:
        f.add_project(PID, CFG)
        for i, r in enumerate(RECORDS):
            f.add_task(PID, FIRST_TASK + i, r.text)
        yield f


def annotate(fake: FakeLabelStudio, tids: range | list[int], **kw: Any) -> None:
    for tid in tids:
        fake.annotate(tid, regions(tid), **kw)


def settings(model_dir: Path, fake: FakeLabelStudio, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        model_dir=model_dir, label_studio_url=fake.url, label_studio_api_key=fake.token, retry_backoff_s=0.0,
        train_retries=1, schedule="linear", epochs=1, min_steps=1, max_steps=2, holdout_fraction=0.3,
        holdout_min_labeled=6, stop_set=STOP_SET, retry_later_s=0.0,
    )
    base.update(kw)
    return Settings(**base)


def make_backend(model_dir: Path, fake: FakeLabelStudio, trainer: Any, **kw: Any) -> LaslBackend:
    s = settings(model_dir, fake, **kw)
    return LaslBackend(PID, CFG, settings=s, store=ModelStore(s.model_dir), ls_factory=no_sdk_retries, train_fn=trainer)


def gold_label_counts(fake: FakeLabelStudio) -> dict[str, int]:
    """Regions per label over the project's annotated tasks, read from the fake itself."""
    counts: Counter[str] = Counter()
    for t in fake.tasks.values():
        if t["project"] == PID:
            for ann in t["annotations"]:
                if not ann["was_cancelled"]:
                    counts.update(r["value"]["labels"][0] for r in ann["result"])
    return dict(counts)


def unlabeled_ids(fake: FakeLabelStudio) -> set[int]:
    return {tid for tid, t in fake.tasks.items() if t["project"] == PID and not t["annotations"]}


class Perturbed(Trainer):
    """The fixture model with noise on its tagger's weights from call ``from_call`` on: another version
    whose tags differ from the fixture's."""

    def __init__(self, model: NerModel, from_call: int) -> None:
        super().__init__(model)
        self.from_call = from_call

    def __call__(self, **kw: Any) -> TrainResult:
        result = super().__call__(**kw)
        if len(self.calls) >= self.from_call:
            gen = torch.Generator().manual_seed(len(self.calls))
            with torch.no_grad():
                for p in result.model.served.parameters():
                    p.add_(torch.randn(p.shape, generator=gen) * 0.5)
        return result


# ---- one entry per published version -----------------------------------------------------------------------
def test_each_published_version_adds_one_entry(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    annotate(fake, range(FIRST_TASK, FIRST_TASK + N_ANNOTATED))
    unlabeled_at_first = unlabeled_ids(fake)
    b = make_backend(tmp_path / "models", fake, Trainer(fixture_model))
    expected: list[tuple[str, int, dict[str, int]]] = []

    first = b.train("START_TRAINING")
    expected.append((first["version"], N_ANNOTATED, gold_label_counts(fake)))
    stop_file = b.history.dir / "stop_set.json"
    stop_bytes = stop_file.read_bytes()
    stop_ids = b.history.stop_set()
    assert stop_ids is not None and len(stop_ids) == STOP_SET and set(stop_ids) <= unlabeled_at_first

    annotate(fake, [stop_ids[0], stop_ids[1]])  # stop-set tasks labeled later are still compared
    second = b.train("ANNOTATION_CREATED")
    expected.append((second["version"], N_ANNOTATED + 2, gold_label_counts(fake)))
    annotate(fake, sorted(unlabeled_ids(fake) - set(stop_ids))[:3])
    third = b.train("ANNOTATION_CREATED")
    expected.append((third["version"], N_ANNOTATED + 5, gold_label_counts(fake)))

    signals = b.history.signals()
    assert [(s["version"], s["n_labeled"], s["label_counts"]) for s in signals] == expected
    assert len({v for v, _, _ in expected}) == 3
    for s in signals:
        assert s["n_held_out"] > 0
        assert 0.0 <= s["f1_lo"] <= s["f1_held_out"] <= s["f1_hi"] <= 1.0
        assert set(s["per_label"]) <= set(s["label_counts"])
        assert s["stop_set"] == STOP_SET
    assert signals[0]["kappa"] is None
    assert signals[1]["kappa"] == pytest.approx(1.0) and signals[2]["kappa"] == pytest.approx(1.0)  # the same model
    assert stop_file.read_bytes() == stop_bytes  # drawn once
    assert [s["version"] for s in b.history.signals()] == [r["version"] for r in b.history.runs()]


def test_nothing_held_back_leaves_the_interval_out(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    annotate(fake, range(FIRST_TASK, FIRST_TASK + 4))  # below holdout_min_labeled
    b = make_backend(tmp_path / "models", fake, Trainer(fixture_model))
    b.train("START_TRAINING")
    (entry,) = b.history.signals()
    assert entry["n_held_out"] == 0 and entry.get("f1_held_out") is None and "f1_lo" not in entry
    assert entry["label_counts"] == gold_label_counts(fake) and entry["kappa"] is None


def test_kappa_of_a_different_model_is_a_kappa(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    annotate(fake, range(FIRST_TASK, FIRST_TASK + N_ANNOTATED))
    b = make_backend(tmp_path / "models", fake, Perturbed(fixture_model, from_call=2))
    for _ in range(3):
        b.train("START_TRAINING")
    kappas = [s["kappa"] for s in b.history.signals()]
    assert kappas[0] is None
    for k in kappas[1:]:
        assert isinstance(k, float) and math.isfinite(k) and -1.0 <= k <= 1.0
    assert kappas[1] < 1.0  # the perturbed tagger tags the stop set differently


# ---- failures and waits ---------------------------------------------------------------------------------------
def test_a_failed_run_adds_no_entry_and_is_recorded(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    annotate(fake, range(FIRST_TASK, FIRST_TASK + N_ANNOTATED))
    trainer = Trainer(fixture_model)
    b = make_backend(tmp_path / "models", fake, trainer)
    v1 = b.train("START_TRAINING")["version"]
    tags_file = b.history.dir / "stop_tags.npz"
    tags_bytes = tags_file.read_bytes()

    trainer.fail = RuntimeError("loss is NaN")
    with pytest.raises(RuntimeError):
        b.train("ANNOTATION_CREATED")
    fake.fail[f"/api/projects/{PID}/import"] = [500, 500]  # the try and its one retry
    with pytest.raises(LabelStudioServerError):
        b.train("ANNOTATION_CREATED")

    assert [s["version"] for s in b.history.signals()] == [v1]
    assert tags_file.read_bytes() == tags_bytes  # the next kappa compares with the published version
    runs = b.history.runs()
    assert [r["status"] for r in runs] == ["ok", "failed", "failed"]
    assert runs[0]["version"] == v1 and runs[0]["error"] is None and runs[0]["steps"] == 2
    assert runs[1]["error"] == "RuntimeError: loss is NaN" and runs[1]["version"] is None
    assert runs[2]["error"].startswith("LabelStudioServerError") and runs[2]["version"] is None
    for r in runs:
        assert r["reason"] in ("START_TRAINING", "ANNOTATION_CREATED") and r["started_at"] and r["finished_at"]

    after = b.train("ANNOTATION_CREATED")
    signals = b.history.signals()
    assert [s["version"] for s in signals] == [v1, after["version"]] and signals[1]["kappa"] == pytest.approx(1.0)


def test_too_few_annotations_are_recorded_as_waiting(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    annotate(fake, range(FIRST_TASK, FIRST_TASK + 3))
    b = make_backend(tmp_path / "models", fake, Trainer(fixture_model), min_labeled=5)
    with pytest.raises(NotEnoughLabeledError):
        b.train("START_TRAINING")
    (run,) = b.history.runs()
    assert run["status"] == "waiting" and "LASL_MIN_LABELED" in run["error"] and run["version"] is None
    assert b.history.signals() == [] and b.history.stop_set() is None  # nothing drawn before a first real run


# ---- pruning and a restart ---------------------------------------------------------------------------------------
def test_pruning_keeps_every_entry_and_a_restart_reads_them(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    annotate(fake, range(FIRST_TASK, FIRST_TASK + N_ANNOTATED))
    trainer = Trainer(fixture_model)
    kw: dict[str, Any] = dict(versions_kept=2, stop_min_annotations=0)
    b = make_backend(tmp_path / "models", fake, trainer, **kw)
    versions = []
    for i in range(4):
        annotate(fake, [FIRST_TASK + N_ANNOTATED + i])
        versions.append(b.train("ANNOTATION_CREATED")["version"])
    assert b.store.list_versions(PID) == versions[-2:]
    signals = b.history.signals()
    assert [s["version"] for s in signals] == versions
    assert [s["n_labeled"] for s in signals] == [N_ANNOTATED + 1 + i for i in range(4)]

    restarted = make_backend(tmp_path / "models", fake, trainer, **kw)
    assert restarted.history.signals() == signals
    assert restarted.stopping() == b.stopping()
    assert restarted.stopping()["versions"] == 4 and restarted.stopping()["latest"] == signals[-1]
    fifth = restarted.train("START_TRAINING")  # the stop tags of the fourth version survived the restart
    assert restarted.history.signals()[-1]["version"] == fifth["version"]
    assert restarted.history.signals()[-1]["kappa"] == pytest.approx(1.0)
    assert len(ProjectHistory(restarted.store.project_dir(PID)).signals()) == 5


# ---- /metrics ----------------------------------------------------------------------------------------------------
def app_client(model_dir: Path, fake: FakeLabelStudio, trainer: Any, ls_factory: Any = no_sdk_retries, **kw: Any) -> Any:
    s = settings(model_dir, fake, **kw)
    app = init_app(LaslBackend, settings=s, store=ModelStore(s.model_dir), ls_factory=ls_factory, train_fn=trainer)
    return app.test_client()


def project_metrics(client: Any) -> dict[str, Any]:
    r = client.get("/metrics")
    assert r.status_code == 200
    return r.get_json()["projects"][str(PID)]


def test_metrics_without_lead_times_rank_per_character(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    annotate(fake, range(FIRST_TASK, FIRST_TASK + N_ANNOTATED))
    client = app_client(tmp_path / "models", fake, Trainer(fixture_model), cost_min_annotations=5)
    service = client.application.extensions["lasl"]
    summary = service.backend(PID).train("START_TRAINING")
    m = project_metrics(client)
    stopping = m["stopping"]
    assert stopping["recommendation"]["state"] == NOT_ENOUGH_DATA  # 10 annotations, the rule starts at 100
    assert stopping["recommendation"]["rule"]["min_annotations"] == 100
    assert stopping["versions"] == 1 and stopping["latest"]["version"] == summary["version"]
    queue = m["queue"]
    assert queue["cost_unit"] == "chars" and queue["cost_model"] is None
    assert queue["model_version"] == summary["version"] and queue["labeled"] == N_ANNOTATED
    assert queue["unlabeled"] == N_TASKS - N_ANNOTATED and queue["pushed"] == N_TASKS - N_ANNOTATED


def test_metrics_with_enough_lead_times_rank_per_second(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    for tid in range(FIRST_TASK, FIRST_TASK + N_ANNOTATED):
        fake.annotate(tid, regions(tid), lead_time=5.0 + 0.3 * len(fake.tasks[tid]["data"]["text"]))
    client = app_client(tmp_path / "models", fake, Trainer(fixture_model), cost_min_annotations=5)
    client.application.extensions["lasl"].backend(PID).train("START_TRAINING")
    queue = project_metrics(client)["queue"]
    assert queue["cost_unit"] == "seconds"
    cost = queue["cost_model"]
    assert cost["n"] == N_ANNOTATED and 3 <= cost["n_used"] <= N_ANNOTATED
    assert cost["per_char"] == pytest.approx(0.3, abs=0.05)


def test_too_few_lead_times_stay_per_character(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    for i, tid in enumerate(range(FIRST_TASK, FIRST_TASK + N_ANNOTATED)):
        fake.annotate(tid, regions(tid), **({"lead_time": 12.0} if i < 4 else {}))
    client = app_client(tmp_path / "models", fake, Trainer(fixture_model), cost_min_annotations=5)
    client.application.extensions["lasl"].backend(PID).train("START_TRAINING")
    assert project_metrics(client)["queue"]["cost_unit"] == "chars"


GARBAGE = [None, -5, "abc", 1e9, float("nan"), float("inf"), 0, True, [3], {"s": 1}]


def raw_lead_times(fake: FakeLabelStudio) -> Any:
    """An ``ls_factory`` whose client hands each annotation's ``lead_time`` through exactly as the fake
    holds it (the SDK turns NaN and infinities into None on the way)."""

    class Raw(LSClient):
        def fetch_tasks(self, project_id: int, page_size: int = 1000) -> list[dict[str, Any]]:
            tasks = super().fetch_tasks(project_id, page_size)
            for t in tasks:
                for ann in t.get("annotations") or []:
                    stored = fake.find_annotation(ann["id"])
                    if stored is not None and "lead_time" in stored:
                        ann["lead_time"] = stored["lead_time"]
            return tasks

    return lambda url, key: Raw(url, key, timeout=10, max_retries=0)


def test_garbage_lead_times_never_break_a_run(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    tids = list(range(FIRST_TASK, FIRST_TASK + N_ANNOTATED))
    for tid, value in zip(tids, GARBAGE):
        fake.annotate(tid, regions(tid), lead_time=value)
    client = app_client(tmp_path / "models", fake, Trainer(fixture_model), raw_lead_times(fake), cost_min_annotations=3)
    backend = client.application.extensions["lasl"].backend(PID)
    first = backend.train("START_TRAINING")
    seen = sorted(map(repr, (t.lead_time for t in backend.ls().fetch_dataset(PID, backend.ner).labeled)))
    assert seen == sorted(map(repr, GARBAGE))  # what the run read: NaN and inf as they are
    assert first["cost_unit"] == "chars" and project_metrics(client)["queue"]["cost_unit"] == "chars"

    for i, tid in enumerate(range(FIRST_TASK + N_ANNOTATED, FIRST_TASK + N_ANNOTATED + 4)):
        fake.annotate(tid, regions(tid), lead_time=20.0 + i)  # four usable ones among the garbage
    second = backend.train("ANNOTATION_CREATED")
    queue = project_metrics(client)["queue"]
    assert second["cost_unit"] == queue["cost_unit"] == "seconds"
    assert queue["cost_model"]["n"] == N_ANNOTATED + 4 and queue["cost_model"]["n_used"] <= 4
    assert all(math.isfinite(queue["cost_model"][k]) for k in ("intercept", "per_char", "per_region", "mad_seconds"))
    assert [s["version"] for s in backend.history.signals()] == [first["version"], second["version"]]
    assert [r["status"] for r in backend.history.runs()] == ["ok", "ok"]


# ---- retries in runs.json ------------------------------------------------------------------------------------------
def runs_file(b: LaslBackend) -> list[dict[str, Any]]:
    """runs.json as written to the project's directory."""
    return json.loads((b.history.dir / "runs.json").read_text(encoding="utf-8"))


def test_a_transient_push_failure_is_counted_as_a_retry(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    """A clean run records 0 retries; a run whose push fails once with a 500 and then succeeds is ok with 1."""
    annotate(fake, range(FIRST_TASK, FIRST_TASK + N_ANNOTATED))
    b = make_backend(tmp_path / "models", fake, Trainer(fixture_model))
    first = b.train("START_TRAINING")

    imports = f"/api/projects/{PID}/import"
    pushes_before = sum(1 for _, path in fake.requests if path.startswith(imports))
    fake.fail[imports] = [500]  # one transient failure; the one retry allowed (train_retries=1) goes through
    annotate(fake, [FIRST_TASK + N_ANNOTATED])
    second = b.train("ANNOTATION_CREATED")
    assert fake.fail[imports] == []
    assert sum(1 for _, path in fake.requests if path.startswith(imports)) > pushes_before + 1  # the failed push was sent again

    runs = runs_file(b)
    assert runs == b.history.runs()
    assert [(r["status"], r["version"]) for r in runs] == [("ok", first["version"]), ("ok", second["version"])]
    assert runs[0]["retries"] == 0
    assert runs[1]["retries"] == 1

    third = b.train("ANNOTATION_CREATED")  # the count is per run: the next clean one is back at 0
    assert runs_file(b)[-1]["version"] == third["version"] and runs_file(b)[-1]["retries"] == 0


def test_a_run_failing_after_its_retries_records_them(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    """A push failing on the try and its one retry leaves a failed run with 1 retry."""
    annotate(fake, range(FIRST_TASK, FIRST_TASK + N_ANNOTATED))
    b = make_backend(tmp_path / "models", fake, Trainer(fixture_model))
    fake.fail[f"/api/projects/{PID}/import"] = [500, 500]
    with pytest.raises(LabelStudioServerError):
        b.train("START_TRAINING")
    (run,) = runs_file(b)
    assert run["status"] == "failed" and run["retries"] == 1
