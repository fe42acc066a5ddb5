"""A training run as named steps: fetch → split → fit → evaluate → score the pool → persist → push → activate.

* fetch: every task of the project through the SDK, as D_L (annotated) and D_U (the rest). Fewer than
  ``LASL_MIN_LABELED`` annotated tasks end the run as "waiting" (:class:`NotEnoughLabeledError`).
* split: a fixed slice of D_L, chosen by a hash of the task id, is held back to measure F1.
* fit: ``train_lasl`` (Mean Teacher + LPN) within ``LASL_TRAIN_SECONDS``, fine-tuned from the serving
  model when the label set is unchanged, from scratch otherwise.
* evaluate: entity F1 on the held-back slice.
* score the pool: the store allocates the next version, whose number gives the round t of the Λ
  schedule; D_U is predicted and the DBS normalizer frozen on it (see :mod:`.scores`).
* persist: the version is written atomically; it is on disk but not served.
* push: one prediction per unlabeled task in large imports, then ``project.model_version`` is PATCHed
  (Label Studio accepts a version only once predictions of it exist).
* activate: the store's current pointer names the new version and the serving model is swapped.

A failure in any step before activate leaves the old version serving and the current pointer where
it was; the written version stays on disk and is never served (docs/serving.md, "A training run").

A final run (:mod:`.final_run`, reason ``FINAL_TRAINING``) holds nothing back, trains from scratch for the
full schedule and adds no entry to the stopping signal; the other steps are the same.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..config import Settings
from ..data import Entity
from ..labelstudio import Dataset, LabeledTask, LSClient, NerConfig, prediction_import
from ..metrics import entity_prf
from ..ner import NerModel, TrainConfig, TrainResult, train_lasl
from ..stopping import holdout_key
from ..strategies import DBSNormalizer, PoolScores
from .connection import LabelStudioConnection
from .final_run import FINAL_REASON, final_due, fine_tuning_base, replaced_version
from .history import ProjectHistory
from .model_slot import ModelSlot, ServedModel
from .prediction import predictions_for
from .ranking import diversify, fit_project_cost
from .run_state import RunTracker, utc_now
from .scores import record_costs, record_entity_rates
from .stop_signal import draw_stop_set, measure_version, recommendation, stop_rule
from .store import MODEL_SUBDIR, NORMALIZER, ModelStore

__all__ = [
    "CONTINUE_REASON",
    "FollowUpRule",
    "NotEnoughLabeledError",
    "RunContext",
    "TrainingRun",
    "final_train_config",
    "holdout_key",
    "split_holdout",
    "train_config",
]

log = logging.getLogger(__name__)

#: reason of a follow-up run that continues a run cut short by its time budget
CONTINUE_REASON = "CONTINUE_TRAINING"
#: a follow-up run needs dev F1 up by more than this over the version it fine-tuned
MIN_DEV_F1_GAIN = 0.002

TrainFn = Callable[..., TrainResult]


class NotEnoughLabeledError(RuntimeError):
    """Fewer annotated tasks than ``LASL_MIN_LABELED``: nothing to train on yet (not a fault)."""


def split_holdout(labeled: Sequence[LabeledTask], settings: Settings) -> tuple[list[LabeledTask], list[LabeledTask]]:
    """(trained on, held back): nothing is held back below ``LASL_HOLDOUT_MIN_LABELED`` annotated tasks."""
    s = settings
    if s.holdout_fraction <= 0 or len(labeled) < s.holdout_min_labeled:
        return list(labeled), []
    held = [t for t in labeled if holdout_key(t.task_id, s.seed) < s.holdout_fraction]
    train = [t for t in labeled if holdout_key(t.task_id, s.seed) >= s.holdout_fraction]
    if not train:
        return list(labeled), []
    return train, held


def train_config(settings: Settings, first_run: bool = False) -> TrainConfig:
    """The run's training settings. Every run, the first included, gets the wall-clock budget: the
    queue is reordered within about a minute of a trigger, and a model still learning continues in
    follow-up runs (:class:`FollowUpRule`). A first run (no model yet) spends part of its budget on
    the tagger alone (``LASL_FIRST_RUN_WARMUP``), so its version already finds entities."""
    s = settings
    return TrainConfig(
        max_epochs=s.epochs,
        min_steps=s.min_steps,
        max_steps=s.max_steps or None,
        seed=s.seed,
        encoder=s.encoder,
        mean_teacher=s.mean_teacher,
        average_tail=s.average_tail,
        anneal_tail=s.anneal_tail,
        lossnet="lpn",
        lpn_layers=s.lpn_layers,
        max_seconds=s.train_seconds or None,
        lpn_thread=s.train_threads >= 2,
        tagger_warmup_seconds=(s.train_seconds * s.first_run_warmup) if first_run and s.train_seconds else 0.0,
        device=s.device,
        char_vectors=s.char_vectors,
        lexicon_sources=s.lexicon_sources,
        lexicon=s.lexicon,
        bigrams=s.bigrams,
        knowledge_cache=s.knowledge_cache,
    )


def final_train_config(settings: Settings) -> TrainConfig:
    """A final run's settings: the regular ones with the full schedule, within ``LASL_FINAL_TRAIN_SECONDS``."""
    return train_config(settings).full_schedule(max_seconds=settings.final_train_seconds or None)


class FollowUpRule:
    """Whether a run cut short by its time budget gets a follow-up run: yes while the model still
    improves (dev F1 up by more than 0.002, or nothing to compare yet: no dev set, no previous dev F1,
    or a previous F1 of 0 from a model too young to find entities), at most ``LASL_CONTINUE_RUNS`` in a
    row; any other trigger starts a new chain. This keeps every trigger-to-queue time near
    ``LASL_TRAIN_SECONDS`` and still lets a first model train to convergence, publishing a better
    version each time."""

    def __init__(self, max_follow_ups: int) -> None:
        self.max_follow_ups = max_follow_ups
        self._chain = 0  # follow-up runs in a row so far

    def decide(self, reason: str, out_of_time: bool, dev_f1: float | None, prev_dev_f1: float | None) -> bool:
        self._chain = self._chain + 1 if reason == CONTINUE_REASON else 0
        if not out_of_time or self._chain >= self.max_follow_ups:
            return False
        if dev_f1 is None or prev_dev_f1 is None or float(prev_dev_f1) <= 0.0:
            return True
        return float(dev_f1) > float(prev_dev_f1) + MIN_DEV_F1_GAIN


@dataclass(frozen=True)
class RunContext:
    """The parts of a project's backend that a run uses; built once, shared by its runs."""

    project_id: int
    settings: Settings
    store: ModelStore
    connection: LabelStudioConnection
    slot: ModelSlot
    tracker: RunTracker
    follow_up: FollowUpRule
    stop: threading.Event
    train_fn: TrainFn = train_lasl
    history: ProjectHistory | None = None


@dataclass
class _Fetched:
    client: LSClient
    ner: NerConfig
    data: Dataset


@dataclass
class _Fitted:
    result: TrainResult
    base: ServedModel | None  # the serving version it was fine-tuned from (None: from scratch)
    seconds: float

    @property
    def model(self) -> NerModel:
        return self.result.model


@dataclass
class _Scored:
    version: str
    normalizer: DBSNormalizer | None
    predictions: list[dict[str, Any]]
    meta: dict[str, Any]


class TrainingRun:
    """One run for one trigger (``reason``). ``ner`` is the label config known so far (None: read it
    from the project); ``adopt_label_config`` makes the backend use the one read."""

    def __init__(
        self,
        ctx: RunContext,
        reason: str,
        ner: NerConfig | None,
        adopt_label_config: Callable[[object], NerConfig],
    ) -> None:
        self.ctx = ctx
        self.reason = reason
        self._ner = ner
        self._adopt_label_config = adopt_label_config
        self._t0 = time.monotonic()  # a run is built when its trigger is taken up, and run at once
        self._started_at = utc_now()
        self.final = reason == FINAL_REASON
        #: the annotated tasks the run found (None until fetched): the run history keeps it, failed or not
        self.n_labeled: int | None = None

    def run(self) -> dict[str, Any]:
        """All steps; returns the summary (the version's meta plus push results and ``follow_up``)."""
        fetched = self.fetch()
        trained_on, held = self.split(fetched.data.labeled)
        fitted = self.fit(fetched, trained_on)
        signal, stop_tags = self.measure(fetched, fitted, held)
        # the signal has already scored the held-back tasks (its micro F1 is this F1): score them once
        f1 = signal["f1_held_out"] if "f1_held_out" in signal else self.evaluate(fitted.model, held)
        scored = self.score_pool(fetched, fitted, len(trained_on), len(held), f1)
        served = self.persist(scored, fitted.model)
        t_push = time.monotonic()
        pushed = self.push(fetched, scored)
        push_s = time.monotonic() - t_push
        self.activate(served)
        self.record_signal(scored, signal, stop_tags)
        return self.summary(scored, fitted, pushed, push_s)

    # ---- the steps ------------------------------------------------------------------------------
    def fetch(self) -> _Fetched:
        conn, pid, s = self.ctx.connection, self.ctx.project_id, self.ctx.settings
        client = conn.client()
        ner = self._ner
        if ner is None:
            project = conn.retry("get project", lambda: client.get_project(pid))
            ner = self._adopt_label_config(project.get("label_config"))
        data = conn.retry("fetch tasks", lambda: client.fetch_dataset(pid, ner, s.max_text_chars))
        self.ctx.tracker.saw_annotations(data.annotation_ids)
        self.n_labeled = len(data.labeled)
        if len(data.labeled) < s.min_labeled:
            raise NotEnoughLabeledError(f"{len(data.labeled)} annotated task(s); training starts at {s.min_labeled} (LASL_MIN_LABELED)")
        return _Fetched(client, ner, data)

    def split(self, labeled: Sequence[LabeledTask]) -> tuple[list[LabeledTask], list[LabeledTask]]:
        return (list(labeled), []) if self.final else split_holdout(labeled, self.ctx.settings)

    def fit(self, fetched: _Fetched, trained_on: Sequence[LabeledTask]) -> _Fitted:
        ctx, labels = self.ctx, list(fetched.ner.labels)
        base = None if self.final else fine_tuning_base(ctx.slot.current(), labels, ctx.store, ctx.project_id, ctx.settings.device)
        config = final_train_config(ctx.settings) if self.final else train_config(ctx.settings, first_run=base is None)
        t = time.monotonic()
        result = self.ctx.train_fn(
            labeled=[task.to_record() for task in trained_on],
            unlabeled_texts=[u.text for u in fetched.data.unlabeled],
            labels=labels,
            config=config,
            base=base.model if base is not None else None,
            progress=self.ctx.tracker.progress,
            should_stop=self.ctx.stop.is_set,
        )
        return _Fitted(result, base, time.monotonic() - t)

    def evaluate(self, model: NerModel, held: Sequence[LabeledTask]) -> float | None:
        """Micro entity F1 on the held-back tasks (None when nothing is held back)."""
        if not held:
            return None
        preds = model.predict([t.text for t in held], max_batch=self.ctx.settings.predict_batch)
        prf = entity_prf([t.entities for t in held], [[Entity(e.start, e.end, e.label) for e in p.entities] for p in preds])
        return prf["micro"]["f1"]

    def measure(self, fetched: _Fetched, fitted: _Fitted, held: Sequence[LabeledTask]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The stopping signal's numbers for this version (:mod:`.stop_signal`); the stop set is drawn at
        the project's first run."""
        history, s = self.ctx.history, self.ctx.settings
        if history is None or self.final:
            return {}, {}
        stop_ids = history.stop_set()
        if stop_ids is None:
            stop_ids = draw_stop_set(fetched.data, s.stop_set, s.seed, self.ctx.project_id)
            history.set_stop_set(stop_ids)
        return measure_version(fitted.model, fetched.data, held, stop_ids, history.stop_tags(), s.predict_batch)

    def record_signal(self, scored: _Scored, signal: dict[str, Any], stop_tags: dict[str, Any]) -> None:
        """Keep the published version's signal and its stop-set tags (after activation: a run that failed
        earlier leaves no entry). A failing disk here only logs: the version already serves."""
        history = self.ctx.history
        if history is None or self.final:
            return
        entry = {"version": scored.version, "trained_at": scored.meta.get("trained_at"), "lambda_t": scored.meta.get("lambda_t")} | signal
        try:
            history.append_signal(entry)
            if stop_tags:
                history.save_stop_tags(stop_tags)
        except OSError as exc:
            log.warning("project %s: could not record the stopping signal: %s", self.ctx.project_id, exc)

    def score_pool(self, fetched: _Fetched, fitted: _Fitted, n_trained: int, n_held: int, f1: float | None) -> _Scored:
        s, pid = self.ctx.settings, self.ctx.project_id
        t = time.monotonic()
        version = self.ctx.store.allocate_version(pid)
        round_t = version.number - 1  # round t of the paper's Eq. 11-12: 0 for a project's first version
        texts = [u.text for u in fetched.data.unlabeled]
        records = fitted.model.predict(texts, max_batch=s.predict_batch, workers=s.score_workers) if texts else []
        cost_model = fit_project_cost(fetched.data.labeled, s.queue_cost, s.cost_min_annotations)
        normalizer = None
        if records and all(r.l_pred is not None for r in records):
            per_cost = s.queue_cost != "none"
            costs = record_costs(records, cost_model) if per_cost else None
            pool = PoolScores.from_scores(records, round=round_t, cost=costs)
            pool.entity_rate = record_entity_rates(records, costs)
            normalizer = DBSNormalizer.from_pool(pool, s.schedule, normalize_length=per_cost, entity_beta=s.entity_weight)
        meta = self._meta(fetched, fitted, n_trained, n_held, f1, normalizer, round_t)
        meta["cost_model"] = cost_model.to_dict() if cost_model is not None else None
        meta["cost_unit"] = "none" if s.queue_cost == "none" else ("seconds" if cost_model is not None else "chars")
        served = ServedModel(version.name, fitted.model, normalizer, meta)
        predictions = predictions_for(served, texts, records, fetched.ner, pid)
        meta["diversity"] = diversify(predictions, texts, s.diversity_window)
        meta["score_seconds"] = round(time.monotonic() - t, 3)
        return _Scored(version.name, normalizer, predictions, meta)

    def persist(self, scored: _Scored, model: NerModel) -> ServedModel:
        """Write the version (atomically: all of it or nothing) and read back what a restart would load."""

        def writer(d: Path) -> None:
            model.save(d / MODEL_SUBDIR)
            if scored.normalizer is not None:
                (d / NORMALIZER).write_text(json.dumps(scored.normalizer.to_dict()), encoding="utf-8")

        scored.meta["trained_at"] = utc_now()
        store, pid = self.ctx.store, self.ctx.project_id
        store.write_version(pid, scored.version, writer, scored.meta)
        return ServedModel(scored.version, model, scored.normalizer, store.read_meta(pid, scored.version))

    def push(self, fetched: _Fetched, scored: _Scored) -> int:
        """Publish the pool's predictions and make the version the project's; returns the number created."""
        if not fetched.data.unlabeled:
            return 0
        conn, client, pid, s = self.ctx.connection, fetched.client, self.ctx.project_id, self.ctx.settings
        items = [prediction_import(u.task_id, p) for u, p in zip(fetched.data.unlabeled, scored.predictions)]
        pushed = 0
        for i in range(0, len(items), s.push_chunk):
            part = items[i : i + s.push_chunk]
            pushed += conn.retry("push predictions", lambda part=part: client.push_predictions(pid, part, chunk=len(part)))
        conn.retry("set model_version", lambda: client.set_model_version(pid, scored.version, s.uncertainty_sampling))
        return pushed

    def activate(self, served: ServedModel) -> None:
        store, pid = self.ctx.store, self.ctx.project_id
        store.set_current(pid, served.version)
        self.ctx.slot.swap(served)
        try:
            store.prune(pid, self.ctx.settings.versions_kept)
        except OSError as exc:  # retention must never fail a run that already published
            log.warning("project %s: pruning old versions failed: %s", pid, exc)

    # ---- what the run reports -------------------------------------------------------------------
    def _meta(
        self, fetched: _Fetched, fitted: _Fitted, n_trained: int, n_held: int, f1: float | None, normalizer: DBSNormalizer | None, round_t: int
    ) -> dict[str, Any]:
        """The version's ``meta.json`` (the store adds version, project, complete, written_at)."""
        ner, data, result = fetched.ner, fetched.data, fitted.result
        return {
            "reason": self.reason,
            "started_at": self._started_at,
            "base_version": fitted.base.version if fitted.base is not None else None,
            "labels": list(ner.labels),
            "label_config_names": {"from_name": ner.from_name, "to_name": ner.to_name, "value_key": ner.value_key},
            "n_labeled": len(data.labeled),
            "n_trained": n_trained,
            "n_entities": sum(len(t.entities) for t in data.labeled),
            "n_held_out": n_held,
            "n_unlabeled": len(data.unlabeled),
            "n_skipped_tasks": len(data.skipped),
            "n_region_warnings": len(data.warnings),
            "f1_held_out": f1,
            "dev_f1": getattr(result, "dev_f1", None),
            "served_tagger": getattr(result, "served", None),
            "steps": getattr(result, "steps", None),
            "lambda_t": normalizer.lambda_t if normalizer is not None else None,
            "entity_weight": self.ctx.settings.entity_weight,
            "schedule": self.ctx.settings.schedule,
            "round": round_t,
            "train_seconds": round(fitted.seconds, 3),
            "out_of_time": bool(getattr(result, "out_of_time", False)),
            "final": self.final,
            "regular_base": replaced_version(self.ctx.slot.current()) if self.final else None,
        }

    def _final_due(self, n_labeled: int) -> bool:
        """Whether this version's recommendation calls for a final run (:func:`.final_run.final_due`)."""
        history, s = self.ctx.history, self.ctx.settings
        if history is None or not s.final_run:
            return False
        state = recommendation(history.signals(), stop_rule(s)).state
        return final_due(s, state, n_labeled, history.runs())

    def summary(self, scored: _Scored, fitted: _Fitted, pushed: int, push_s: float) -> dict[str, Any]:
        meta = scored.meta
        prev_dev_f1 = fitted.base.meta.get("dev_f1") if fitted.base is not None else None
        summary = dict(
            meta,
            version=scored.version,
            pushed=pushed,
            finished_at=utc_now(),
            duration_s=round(time.monotonic() - self._t0, 3),
            push_seconds=round(push_s, 3),
            follow_up=False if self.final else self.ctx.follow_up.decide(self.reason, meta["out_of_time"], meta["dev_f1"], prev_dev_f1),
            final_due=not self.final and self._final_due(meta["n_labeled"]),
        )
        log.info(
            "project %s: version %s serving (labeled %d, unlabeled %d, held-out F1 %s, Λ %s) in %.1f s",
            self.ctx.project_id, scored.version, meta["n_labeled"], meta["n_unlabeled"],
            "n/a" if meta["f1_held_out"] is None else f"{meta['f1_held_out']:.3f}",
            "n/a" if scored.normalizer is None else f"{scored.normalizer.lambda_t:.3f}", summary["duration_s"],
        )
        return summary
