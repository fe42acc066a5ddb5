"""One training run: the student tagger, optionally its Mean Teacher and a loss-prediction net.

Total loss per step (the paper's Eq. 10): L_task + L_AL + λ·L_U, where
- L_task is the mean CRF negative log-likelihood of a batch of labeled chunks (Adam);
- L_AL is the pairwise ranking loss (Eq. 5) of the loss net against the detached true chunk losses
  (SGD, lr 0.01, momentum 0.9, weight decay 5e-4: Table 2). By default its gradient stops at the
  tagger's features (``lpn_backprop=False``): the ranking loss trains the loss net only and cannot bend
  the tagger's features toward losses that are easy to rank (docs/method.md, R5; Yoo & Kweon also stop it);
- L_U is the Mean-Teacher consistency (MSE of emissions) on a batch of unlabeled chunks, both models
  in train mode so each has its own dropout noise (docs/method.md, R6), λ = 0.05; the teacher is an EMA
  of the student (α = 0.999, with the warm-up ramp) updated after every optimizer step.

Training runs in evaluation periods (an epoch, or longer when the labeled set is tiny so that small
sets still get ``min_steps`` optimizer steps). With a dev set, the best period by dev F1 is kept and
training stops early after ``patience`` periods without improvement, never before ``min_steps``
steps; a dev split with too few entities to tell periods apart is not held out (``split_dev``). The model that serves users is
the better of student and teacher on the dev set, the teacher on ties (docs/method.md, R7); with no dev
set, the student (the EMA teacher lags the student by ~1/(1-α) = 1,000 steps, more than a fine-tuning run).

Fine-tuning (``base`` given) continues from the base model's weights (Algorithm 1): the base is cloned,
never modified.

``tagger_warmup_seconds``: a live backend's first run has a wall-clock budget of ~30 s; a Mean-Teacher +
LPN step costs ~6 plain tagger steps, so 30 s of joint training leaves the tagger barely trained (held-out
F1 ~0.0 after 30 steps, measured). Spending the first part of such a run on the tagger alone gives the
first version usable entities; the loss net and the consistency loss join for the rest of the run and
in every later (fine-tuning) run. The simulator never uses it.

``lpn_thread``: the loss net reads detached features, so its backward pass and SGD step share nothing
with the tagger's. With this on, they run on a helper thread while this thread runs the Mean-Teacher
forwards and the tagger's backward: two cores, assuming one torch thread per Python thread (the caller
sets ``torch.set_num_threads(1)`` once at process start; nested intra-op pools would spin). Every random
draw (dropout) still happens on this thread in the serial order, so the weights are bitwise those of the
serial run (tested). Measured (`lasl bench`, 300 labeled + 700 unlabeled CCKS records): 0.88 s per
Mean-Teacher + LPN step against 1.18 s on one thread, 1.34x; the main thread's share (both forwards,
the tagger's backward) is the larger one, so the split is not an even half.

The run's steps, in order: ``_check_inputs`` → ``split_dev`` → ``_label_set`` → ``_model_to_train`` →
``_training_chunks`` → ``_Run.run`` (periods of ``_Stepper.step``, each period evaluated by
``_BestPeriod``) → ``_finish``.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ..data import Record
from ..metrics import entity_prf
from .batching import Chunk, collate, length_batches, make_chunks
from .device import resolve_device
from .knowledge import DEFAULT_KNOWLEDGE, KnowledgeConfig, LexiconError, parse_sources
from .lossnet import DEFAULT_LPN_LAYERS, build_lossnet, lossnet_fits, make_lpn_optimizer, ranking_loss
from .model import NerModel
from .teacher import consistency_loss, ema_update, make_teacher

log = logging.getLogger(__name__)

#: the fewest gold entities a dev split must hold to be used for early stopping (``split_dev``)
MIN_DEV_ENTITIES = 2000


class TrainingCancelled(RuntimeError):
    """``should_stop`` asked the run to end; nothing is returned and nothing is saved."""


class TrainingError(RuntimeError):
    """A run that cannot start: no labeled data, labels that do not match the base model, ..."""


@dataclass
class TrainConfig:
    max_epochs: int = 40
    min_steps: int = 600
    max_steps: int | None = None
    patience: int = 5
    lr: float = 2e-3
    weight_decay: float = 1e-5
    batch_size: int = 16
    grad_clip: float = 5.0
    seed: int = 0
    max_len: int = 200
    encoder: str = "char"
    dev_fraction: float = 0.1
    min_dev_records: int = 10
    #: a dev split with fewer gold entities is not held out (see ``split_dev``)
    min_dev_entities: int = MIN_DEV_ENTITIES
    mean_teacher: bool = False
    ema_alpha: float = 0.999
    consistency_weight: float = 0.05
    #: the last share of a run's steps whose student weights are averaged into the weights it serves
    #: (0: the last step's weights; see ``_Stepper.average_in``)
    average_tail: float = 0.0
    #: the last share of a run's steps over which the tagger's learning rate falls linearly to 0 (0: constant;
    #: see ``_Stepper.anneal``)
    anneal_tail: float = 0.0
    lossnet: str | None = None
    #: the LPN's Bi-LSTM layers (paper Table 6): 2 = the paper's serial encoder, 0 = its shared encoder
    lpn_layers: int = DEFAULT_LPN_LAYERS
    lpn_margin: float = 1.0
    lpn_weight: float = 1.0
    lpn_backprop: bool = False
    max_seconds: float | None = None  # wall-clock budget: fine-tuning in a live backend must end in time
    lpn_thread: bool = False  # loss-net backward + step on a second thread (see the module doc)
    #: the run's first seconds train the tagger alone (no loss net, no consistency; the EMA still follows)
    tagger_warmup_seconds: float = 0.0
    device: str = "cpu"  # cpu, cuda, cuda:N or mps: where the models train (the CRF bounds stay on the CPU)
    #: where a fresh char model starts (``knowledge.KnowledgeConfig``): LAC's character vectors or random rows,
    #: packaged lexicons (comma-separated) and the user's term file for soft-lexicon features, bigrams
    char_vectors: str = DEFAULT_KNOWLEDGE.char_vectors
    lexicon_sources: str = ",".join(DEFAULT_KNOWLEDGE.lexicon_sources)
    lexicon: str | None = None
    bigrams: bool = DEFAULT_KNOWLEDGE.bigrams
    knowledge_cache: str | None = None
    lac_std: float | None = DEFAULT_KNOWLEDGE.lac_std  # LAC's vectors rescaled to this std (``KnowledgeConfig.lac_std``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def full_schedule(self, max_seconds: float | None = None) -> TrainConfig:
        """This config with the schedule of a model trained once, from scratch, on all it will get:
        the defaults' 40 epochs (at least 600 steps; early stopping only where the dev split holds
        enough entities), no Mean Teacher, no averaging or annealing, and ``max_seconds`` as its only
        budget. The all-data model is trained so; a final run repeats it on every annotation."""
        d = TrainConfig()
        return replace(self, max_epochs=d.max_epochs, min_steps=d.min_steps, max_steps=None, patience=d.patience,
                       dev_fraction=d.dev_fraction, mean_teacher=False, average_tail=0.0, anneal_tail=0.0,
                       max_seconds=max_seconds, tagger_warmup_seconds=0.0)

    def knowledge(self) -> KnowledgeConfig:
        return KnowledgeConfig(char_vectors=self.char_vectors, lexicon_sources=parse_sources(self.lexicon_sources),
                               lexicon_file=self.lexicon or None, bigrams=self.bigrams, cache=self.knowledge_cache, lac_std=self.lac_std)


@dataclass
class TrainResult:
    model: NerModel
    dev_f1: float | None
    served: str
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    n_train: int = 0
    n_dev: int = 0
    #: the run stopped because ``max_seconds`` ran out (not on its epochs or early stopping)
    out_of_time: bool = False


Progress = Callable[[dict[str, Any]], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def split_dev(records: Sequence[Record], fraction: float, min_records: int, seed: int, min_entities: int = 0) -> tuple[list[Record], list[Record]]:
    """Hold out a random ``fraction`` of the labeled records for early stopping and model choice, but
    only when the dev set gets at least ``min_records`` records and ``min_entities`` gold entities.

    Below the entity floor (``MIN_DEV_ENTITIES``) a dev F1 is too noisy to choose between periods: its
    standard error, sqrt(F1·(1 − F1)/n), is above 0.01 at n < 2,000 and F1 ≈ 0.7, more than one more period
    changes late in a run, so patience runs out on noise. Measured on CCKS 2019 (docs/results.md, Knowledge):
    with 540 dev entities early stopping ended runs at a third of their schedule and cost 3–4 F1; with
    1,800 it neither helped nor hurt. Below the floor the records are trained on instead and the run takes
    its full schedule."""
    n_dev = int(round(len(records) * fraction))
    if fraction <= 0 or n_dev < min_records:
        return list(records), []
    order = np.random.default_rng(seed).permutation(len(records))
    dev_idx = set(order[:n_dev].tolist())
    if sum(len(records[i].entities) for i in dev_idx) < min_entities:
        return list(records), []
    return [r for i, r in enumerate(records) if i not in dev_idx], [records[i] for i in sorted(dev_idx)]


def evaluate_model(model: NerModel, records: Sequence[Record], tagger: Any = None) -> dict:
    preds = model.predict([r.text for r in records], tagger=tagger, with_lossnet=False)
    return entity_prf([r.entities for r in records], [p.entities for p in preds])  # type: ignore[misc]


def train_lasl(
    labeled: Sequence[Record],
    unlabeled_texts: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    config: TrainConfig | None = None,
    base: NerModel | None = None,
    dev: Sequence[Record] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train (or fine-tune ``base``) on ``labeled``; see the module doc for what each option does."""
    cfg = config or TrainConfig()
    t0 = time.perf_counter()
    device = _check_inputs(labeled, cfg)
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if dev is None:
        train_recs, dev_recs = split_dev(labeled, cfg.dev_fraction, cfg.min_dev_records, cfg.seed, cfg.min_dev_entities)
    else:
        train_recs, dev_recs = list(labeled), list(dev)
    label_set = _label_set(labels, base, labeled, train_recs)
    model = _model_to_train(label_set, [r.text for r in labeled] + list(unlabeled_texts), base, cfg, device)
    chunks, u_chunks = _training_chunks(model, train_recs, unlabeled_texts, cfg)
    run = _Run(model, cfg, _Stepper(model, cfg, device, chunks, u_chunks, rng, t0), dev_recs)
    log.info("training on %d records (%d chunks), dev %d, unlabeled %d chunks; %d steps of batch %d in %d periods",
             len(train_recs), len(chunks), len(dev_recs), len(u_chunks), run.total_steps, cfg.batch_size, run.n_periods)
    out_of_time = run.run(progress, should_stop)
    return _finish(run, len(train_recs), len(dev_recs), out_of_time, t0)


# ---- before the first step ---------------------------------------------------------------------
def _check_inputs(labeled: Sequence[Record], cfg: TrainConfig) -> torch.device:
    """The device to train on, or a TrainingError that says why the run cannot start."""
    if not labeled:
        raise TrainingError("no labeled records to train on")
    for name in ("average_tail", "anneal_tail"):
        share = getattr(cfg, name)
        if not 0.0 <= share < 1.0:
            raise TrainingError(f"{name} must be in [0, 1), got {share}")
    try:
        return resolve_device(cfg.device)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


def _label_set(labels: Sequence[str] | None, base: NerModel | None, labeled: Sequence[Record], train_recs: Sequence[Record]) -> list[str]:
    """The given labels, else the base model's, else those the records use; every training entity in it."""
    if labels is not None:
        out = list(labels)
    elif base is not None:
        out = base.labels
    else:
        out = sorted({e.label for r in labeled for e in r.entities})
    if not out:
        raise TrainingError("no labels: give the label set or records with entities")
    unknown = {e.label for r in train_recs for e in r.entities} - set(out)
    if unknown:
        raise TrainingError(f"records use labels outside the label set: {sorted(unknown)}")
    return out


def _model_to_train(labels: list[str], all_texts: list[str], base: NerModel | None, cfg: TrainConfig, device: torch.device) -> NerModel:
    """A fresh model, or a clone of ``base`` with room for new characters and the configured loss net
    (a new one, which learns from this run on, when its kind or size changed); on ``device``."""
    try:
        return _build_or_clone(labels, all_texts, base, cfg, device)
    except LexiconError as exc:  # the run's term file went bad: the run fails, saying where
        raise TrainingError(str(exc)) from None


def _build_or_clone(labels: list[str], all_texts: list[str], base: NerModel | None, cfg: TrainConfig, device: torch.device) -> NerModel:
    if base is None:
        model = NerModel.create(labels, texts=all_texts, encoder=cfg.encoder, max_len=cfg.max_len, lossnet_kind=cfg.lossnet, seed=cfg.seed,
                                lpn_layers=cfg.lpn_layers, knowledge=_knowledge(cfg))
    else:
        if base.labels != labels:
            raise TrainingError(f"the base model's labels {base.labels} differ from {labels}; train from scratch")
        model = base.clone()
        if not cfg.mean_teacher and model.teacher is not None:  # a stale copy would only grow every checkpoint
            model.teacher, model.serve = None, "student"
        model.extend_vocab(all_texts, _knowledge(cfg))
        if not lossnet_fits(model.lossnet, cfg.lossnet, cfg.lpn_layers):
            model.lossnet = build_lossnet(cfg.lossnet, model.student.encoder, cfg.lpn_layers)
    if cfg.mean_teacher and model.teacher is None:
        model.teacher = make_teacher(model.student)
    return model.to(device)  # after the teacher's copy: it packs every LSTM's weights for cuDNN


def _knowledge(cfg: TrainConfig) -> KnowledgeConfig:
    """The run's knowledge sources; an unknown one is a TrainingError that says which."""
    try:
        return cfg.knowledge()
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


def _training_chunks(model: NerModel, train_recs: Sequence[Record], unlabeled_texts: Sequence[str], cfg: TrainConfig) -> tuple[list[Chunk], list[Chunk]]:
    """Labeled chunks with their tags, and the unlabeled chunks the Mean Teacher reads (none without it)."""
    chunks = make_chunks([r.text for r in train_recs], model.encode, cfg.max_len, [r.entities for r in train_recs], model.scheme)
    if not cfg.mean_teacher:
        return chunks, []
    u_chunks = make_chunks(list(unlabeled_texts), model.encode, cfg.max_len)
    if not u_chunks:  # Mean Teacher still needs unlabeled text: reuse the labeled text
        u_chunks = [Chunk(c.record, c.start, c.ids) for c in chunks]
    return chunks, u_chunks


def _batch_stream(items: list[Chunk], batch_size: int, rng: np.random.Generator) -> Iterator[list[Chunk]]:
    """Length-grouped batches in a fresh random order every pass, forever."""
    while True:
        for b in length_batches(items, max_batch=batch_size, rng=rng):
            yield [items[i] for i in b]


# ---- one optimizer step ------------------------------------------------------------------------
@dataclass
class _PeriodLosses:
    task: list[float] = field(default_factory=list)
    rank: list[float] = field(default_factory=list)
    consistency: list[float] = field(default_factory=list)


class _Stepper:
    """The optimizers and batch streams of a run, and one optimizer step at a time (``step``)."""

    def __init__(self, model: NerModel, cfg: TrainConfig, device: torch.device, chunks: list[Chunk], u_chunks: list[Chunk], rng: np.random.Generator, t0: float) -> None:
        self.model, self.cfg, self.device, self.t0 = model, cfg, device, t0
        self.student = model.student
        self.teacher = model.teacher if cfg.mean_teacher else None
        self.lossnet = model.lossnet
        self.opt = torch.optim.Adam(self.student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.lpn_opt = make_lpn_optimizer(self.lossnet.parameters()) if self.lossnet is not None else None
        self.n_chunks = len(chunks)
        self.labeled = _batch_stream(chunks, cfg.batch_size, rng)
        self.unlabeled = _batch_stream(u_chunks, cfg.batch_size, rng) if u_chunks else None
        self.steps = 0
        self.ema_step = int(model.meta.get("ema_step", 0))
        split = cfg.lpn_thread and self.lossnet is not None and not cfg.lpn_backprop
        self.helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lpn-step") if split else None
        self.pending: Future | None = None  # the loss net's step running on the helper thread
        #: the run's planned steps, the steps after which every student is averaged in and the learning
        #: rate anneals (``_Run`` sets them), the average and its count
        self.total_steps = 0
        self.average_from: int | None = None
        self.anneal_from: int | None = None
        self.average: torch.nn.Module | None = None
        self.averaged = 0

    def step(self, losses: _PeriodLosses) -> None:
        """Forward every loss of this step, then one step of each optimizer and the EMA."""
        ids, mask, tags = collate(next(self.labeled), self.device)
        em, layers = self.student(ids, mask)
        nll = self.student.nll(em, tags, mask)  # type: ignore[arg-type]
        loss = nll.mean()
        cfg = self.cfg
        warm = cfg.tagger_warmup_seconds > 0 and time.perf_counter() - self.t0 < cfg.tagger_warmup_seconds
        if self.lossnet is not None and not warm:
            l_al = self._ranking_loss(em, layers, mask, nll, losses)
            if self.helper is not None:  # backward + step of the loss net, beside the tagger's
                self.pending = self.helper.submit(self._lossnet_step, cfg.lpn_weight * l_al)
            else:
                loss = loss + cfg.lpn_weight * l_al
        if self.teacher is not None and self.unlabeled is not None and not warm:
            loss = loss + cfg.consistency_weight * self._consistency_loss(losses)
        self.anneal()
        self._optimizer_steps(loss, warm)
        if self.teacher is not None:
            ema_update(self.teacher, self.student, cfg.ema_alpha, step=self.ema_step)
            self.ema_step += 1
        self.steps += 1
        if self._tail_progress(self.average_from, self.cfg.average_tail) is not None:
            self.average_in()
        losses.task.append(float(nll.detach().mean()))

    def _tail_progress(self, from_step: int | None, share: float) -> float | None:
        """How far the run is into its last ``share`` (above 0 once in it, 1 at its end): by steps, or by
        the clock where a time budget may end the run before its last steps (the live backend's runs).
        None before the tail, or without one."""
        if from_step is None:
            return None
        progress = (self.steps - from_step) / max(1, self.total_steps - from_step)
        budget = self.cfg.max_seconds
        if budget is not None:
            progress = max(progress, (time.perf_counter() - self.t0 - (1.0 - share) * budget) / (share * budget))
        return min(progress, 1.0) if progress > 0 else None

    def anneal(self) -> None:
        """The tagger's learning rate for the next step: constant, then falling linearly to 0 over the
        annealed tail. A run ends near a minimum instead of jittering around it at Adam's full step size,
        and the next version's run starts again at the full rate. Replayed on the queue it left F1 where it
        was and made consecutive versions agree early, so the stop rule fired too soon (docs/results.md,
        "Annealed learning rate"); it is off by default."""
        progress = self._tail_progress(self.anneal_from, self.cfg.anneal_tail)
        lr = self.cfg.lr * (1.0 - progress) if progress is not None else self.cfg.lr
        for group in self.opt.param_groups:
            group["lr"] = lr

    def average_in(self) -> None:
        """Add the student's weights to the run's uniform tail average: with Adam's constant learning
        rate the last step's weights jitter around where the run heads, and their mean is steadier.
        Replayed on the queue it did not raise F1, as runs of two epochs per version still move
        (docs/results.md, "Averaged weights"), so it is off by default."""
        if self.average is None:
            self.average, self.averaged = make_teacher(self.student), 1
            return
        ema_update(self.average, self.student, 1.0, step=self.averaged)  # α = k/(k+1): the running mean
        self.averaged += 1

    def _ranking_loss(self, em: torch.Tensor, layers: list[torch.Tensor], mask: torch.Tensor, nll: torch.Tensor, losses: _PeriodLosses) -> torch.Tensor:
        """L_AL of the loss net's prediction against the true chunk losses (Eq. 5)."""
        assert self.lossnet is not None
        bounds = self.student.bounds(em, mask, with_marginals=False) if self.lossnet.needs_bounds else None
        feats = layers if self.cfg.lpn_backprop else [x.detach() for x in layers]
        pred = self.lossnet.predict_loss(feats, mask, bounds)
        l_al = ranking_loss(pred, nll.detach(), margin=self.cfg.lpn_margin)
        losses.rank.append(float(l_al.detach()))
        return l_al

    def _consistency_loss(self, losses: _PeriodLosses) -> torch.Tensor:
        """L_U between the student's and the teacher's emissions on a batch of unlabeled chunks (Eq. 9)."""
        assert self.teacher is not None and self.unlabeled is not None
        uids, umask, _ = collate(next(self.unlabeled), self.device)
        s_em, _ = self.student(uids, umask)
        with torch.no_grad():
            t_em, _ = self.teacher(uids, umask)
        l_u = consistency_loss(s_em, t_em, umask)
        losses.consistency.append(float(l_u.detach()))
        return l_u

    def _optimizer_steps(self, loss: torch.Tensor, warm: bool) -> None:
        """The tagger's backward and Adam step; the loss net's SGD step here, or waited for on the helper."""
        clip = self.cfg.grad_clip
        self.opt.zero_grad(set_to_none=True)
        if self.lpn_opt is not None and self.pending is None:
            self.lpn_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), clip)
        self.opt.step()
        if self.pending is not None:
            job, self.pending = self.pending, None
            job.result()  # re-raises a failure of the loss net's step
        elif self.lpn_opt is not None and not warm:
            torch.nn.utils.clip_grad_norm_(self.lossnet.parameters(), clip)  # type: ignore[union-attr]
            self.lpn_opt.step()

    def _lossnet_step(self, l_al: torch.Tensor) -> None:
        """The loss net's backward and SGD step (on the helper thread)."""
        assert self.lpn_opt is not None and self.lossnet is not None
        self.lpn_opt.zero_grad(set_to_none=True)
        l_al.backward()
        torch.nn.utils.clip_grad_norm_(self.lossnet.parameters(), self.cfg.grad_clip)
        self.lpn_opt.step()

    def close(self) -> None:
        """Let a step still on the helper thread finish (its failure was raised already), then stop it."""
        if self.helper is None:
            return
        if self.pending is not None:
            self.pending.exception()
        self.helper.shutdown(wait=True)


# ---- periods, evaluation and the kept model ----------------------------------------------------
class _BestPeriod:
    """The best period by dev F1 so far: its weights, which tagger serves, and the periods since."""

    def __init__(self) -> None:
        self.f1 = -1.0
        self.bad_periods = 0
        self.epoch = -1
        self.serve = "student"
        self.state: dict[str, Any] | None = None

    def update(self, model: NerModel, row: dict[str, Any], epoch: int) -> None:
        """Ties go to the later, longer-trained period (an all-zero F1 early on must not pin epoch 1);
        only a strict improvement resets the patience."""
        self.bad_periods = 0 if row["dev_f1"] > self.f1 else self.bad_periods + 1
        if row["dev_f1"] >= self.f1:
            self.f1 = row["dev_f1"]
            self.serve = "teacher" if "teacher_f1" in row and row["teacher_f1"] >= row["student_f1"] else "student"
            self.state = _snapshot(model)
            self.epoch = epoch


def _tail_start(total_steps: int, share: float) -> int | None:
    """The step after which a run's last ``share`` begins (at least one step long); None without a tail."""
    return total_steps - max(1, round(total_steps * share)) if share > 0 else None


class _Run:
    """A run's periods: steps, a history row each, the dev evaluation, early stopping and the time budget."""

    def __init__(self, model: NerModel, cfg: TrainConfig, stepper: _Stepper, dev_recs: list[Record]) -> None:
        self.model, self.cfg, self.stepper, self.dev_recs = model, cfg, stepper, dev_recs
        steps_per_epoch = math.ceil(stepper.n_chunks / cfg.batch_size)
        self.period = max(steps_per_epoch, math.ceil(cfg.min_steps / max(cfg.max_epochs, 1)))
        total = self.period * cfg.max_epochs
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps is not None else total
        self.n_periods = math.ceil(self.total_steps / self.period)
        self.history: list[dict[str, Any]] = []
        self.best = _BestPeriod()
        stepper.total_steps = self.total_steps
        stepper.average_from = _tail_start(self.total_steps, cfg.average_tail)
        stepper.anneal_from = _tail_start(self.total_steps, cfg.anneal_tail)

    def run(self, progress: Progress | None, should_stop: Callable[[], bool] | None) -> bool:
        """Every period until the last, early stopping or the time budget; True when the budget ended it."""
        try:
            for p in range(self.n_periods):
                tp = time.perf_counter()
                losses, out_of_time = self._train_period(should_stop)
                row = self._period_row(p + 1, losses, tp)
                self.history.append(row)
                if progress is not None:
                    progress(dict(row, total_epochs=self.n_periods))
                if out_of_time:
                    log.info("time budget of %.0fs used after %d steps", self.cfg.max_seconds, self.stepper.steps)
                    return True
                if self.dev_recs and self.best.bad_periods >= self.cfg.patience and self.stepper.steps >= self.cfg.min_steps:
                    log.info("early stop after period %d (best %d, dev F1 %.4f)", p + 1, self.best.epoch, self.best.f1)
                    break
        finally:
            self.stepper.close()
        return False

    def _train_period(self, should_stop: Callable[[], bool] | None) -> tuple[_PeriodLosses, bool]:
        """One period's steps in train mode; True as well when the time budget ran out inside it."""
        cfg, stepper = self.cfg, self.stepper
        losses = _PeriodLosses()
        out_of_time = False
        for m in self.model.modules():
            m.train()
        for _ in range(min(self.period, self.total_steps - stepper.steps)):
            if should_stop is not None and should_stop():
                raise TrainingCancelled("training was asked to stop")
            if cfg.max_seconds is not None and time.perf_counter() - stepper.t0 > cfg.max_seconds and stepper.steps > 0:
                out_of_time = True
                break
            stepper.step(losses)
        for m in self.model.modules():
            m.eval()
        return losses, out_of_time

    def _period_row(self, epoch: int, losses: _PeriodLosses, tp: float) -> dict[str, Any]:
        """The history row of a period, with its dev F1s (which also update the best period)."""
        row: dict[str, Any] = {
            "epoch": epoch,
            "step": self.stepper.steps,
            "loss": float(np.mean(losses.task)) if losses.task else float("nan"),
            "seconds": round(time.perf_counter() - tp, 2),
        }
        if losses.rank:
            row["rank_loss"] = float(np.mean(losses.rank))
        if losses.consistency:
            row["consistency"] = float(np.mean(losses.consistency))
        if self.dev_recs:
            row["student_f1"] = evaluate_model(self.model, self.dev_recs, tagger=self.model.student)["micro"]["f1"]
            if self.stepper.teacher is not None:
                row["teacher_f1"] = evaluate_model(self.model, self.dev_recs, tagger=self.stepper.teacher)["micro"]["f1"]
            row["dev_f1"] = max(row["student_f1"], row.get("teacher_f1", -1.0))
            self.best.update(self.model, row, epoch)
        return row


def _finish(run: _Run, n_train: int, n_dev: int, out_of_time: bool, t0: float) -> TrainResult:
    """Restore the best period and choose the served tagger; the run's settings go into the model's meta."""
    model, best = run.model, run.best
    if best.state is not None:
        _restore(model, best.state)
        model.serve = best.serve
    else:  # no dev set: the student. With α = 0.999 and rounds of ~100 steps the EMA teacher lags far
        # behind (measured in the simulator: it scored below random), so it serves only when it measures better
        model.serve = "student"
    averaged = _serve_average(run) if run.stepper.average is not None else 0
    model.meta.update({"ema_step": run.stepper.ema_step, "train_config": run.cfg.to_dict(), "n_train_records": n_train,
                       "averaged_steps": averaged})
    for m in model.modules():
        m.eval()
    return TrainResult(
        model=model,
        dev_f1=best.f1 if n_dev else None,
        served=model.serve,
        history=run.history,
        steps=run.stepper.steps,
        seconds=time.perf_counter() - t0,
        n_train=n_train,
        n_dev=n_dev,
        out_of_time=out_of_time,
    )


def _serve_average(run: _Run) -> int:
    """The student takes the tail average's weights: always without a dev set, with one only where the
    average scores at least the kept period's dev F1 (the student's next run starts from them). Returns
    the steps averaged into the served weights (0: the average lost on dev)."""
    model, best, average = run.model, run.best, run.stepper.average
    assert average is not None
    if run.dev_recs:
        f1 = evaluate_model(model, run.dev_recs, tagger=average)["micro"]["f1"]
        run.history[-1]["average_f1"] = f1
        if f1 < best.f1:
            return 0
        best.f1 = f1
    model.student.load_state_dict(average.state_dict())
    model.serve = "student"
    return run.stepper.averaged


def _snapshot(model: NerModel) -> dict[str, Any]:
    return {k: copy.deepcopy(m.state_dict()) for k, m in (("student", model.student), ("teacher", model.teacher), ("lossnet", model.lossnet)) if m is not None}


def _restore(model: NerModel, state: dict[str, Any]) -> None:
    for k, sd in state.items():
        getattr(model, k).load_state_dict(sd)
