"""One training run: the student tagger, optionally its Mean Teacher and a loss-prediction net.

Total loss per step (METHOD.md Eq. 10): L_task + L_AL + λ·L_U, where
- L_task is the mean CRF negative log-likelihood of a batch of labeled chunks (Adam);
- L_AL is the pairwise ranking loss (Eq. 5) of the loss net against the detached true chunk losses
  (SGD, lr 0.01, momentum 0.9, weight decay 5e-4: Table 2). By default its gradient stops at the
  tagger's features (``lpn_backprop=False``): the ranking loss trains the loss net only and cannot bend
  the tagger's features toward losses that are easy to rank (METHOD.md gap 5; Yoo & Kweon also stop it);
- L_U is the Mean-Teacher consistency (MSE of emissions) on a batch of unlabeled chunks, both models
  in train mode so each has its own dropout noise (gap 6), λ = 0.05; the teacher is an EMA of the
  student (α = 0.999, with the warm-up ramp) updated after every optimizer step.

Training runs in evaluation periods (an epoch, or longer when the labeled set is tiny so that small
sets still get ``min_steps`` optimizer steps). With a dev set, the best period by dev F1 is kept and
training stops early after ``patience`` periods without improvement. The model that serves users is
the better of student and teacher on the dev set, the teacher on ties (gap 7); with no dev set, the
student (the EMA teacher lags the student by ~1/(1-α) = 1,000 steps, more than a fine-tuning run).

Fine-tuning (``base`` given) continues from the base model's weights (Algorithm 1): the base is cloned,
never modified.

``tagger_warmup_seconds``: a live backend's first run has a wall-clock budget of ~30 s; a Mean-Teacher +
LPN step costs ~6 plain tagger steps, so 30 s of joint training leaves the tagger barely trained (held-out
F1 ~0.0 after 30 steps, measured). Spending the first part of such a run on the tagger alone gives the
first version usable entities; the loss net and the consistency loss join for the rest of the run and
in every later (fine-tuning) run. The simulator never uses it.

``lpn_thread``: the loss net reads detached features, so its backward pass and SGD step share nothing
with the tagger's. With this on, they run on a helper thread while this thread runs the Mean-Teacher
forwards and the tagger's backward (each thread one torch thread: two cores). Every random draw
(dropout) still happens on this thread in the serial order, so the weights are bitwise those of the
serial run (tested). Measured (`lasl bench`, 300 labeled + 700 unlabeled CCKS records): 0.88 s per
Mean-Teacher + LPN step against 1.18 s on one thread, 1.34x; the main thread's share (both forwards,
the tagger's backward) is the larger one, so the split is not an even half.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .batching import Chunk, collate, length_batches, make_chunks
from ..data import Record
from .lossnet import make_lpn_optimizer, ranking_loss
from ..metrics import entity_prf
from .model import DEFAULT_LPN_LAYERS, NerModel, build_lossnet, resolve_device
from .spans import LabelScheme
from .teacher import consistency_loss, ema_update, make_teacher

log = logging.getLogger(__name__)


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
    mean_teacher: bool = False
    ema_alpha: float = 0.999
    consistency_weight: float = 0.05
    lossnet: str | None = None
    #: the LPN's Bi-LSTM layers (paper Table 6): 2 = the paper's serial encoder, 0 = its shared encoder
    lpn_layers: int = DEFAULT_LPN_LAYERS
    lpn_margin: float = 1.0
    lpn_weight: float = 1.0
    lpn_backprop: bool = False
    threads: int | None = None
    max_seconds: float | None = None  # wall-clock budget: fine-tuning in a live backend must end in time
    lpn_thread: bool = False  # loss-net backward + step on a second thread (see the module doc)
    #: the run's first seconds train the tagger alone (no loss net, no consistency; the EMA still follows)
    tagger_warmup_seconds: float = 0.0
    device: str = "cpu"  # cpu, cuda, cuda:N or mps: where the models train (the CRF bounds stay on the CPU)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def split_dev(records: Sequence[Record], fraction: float, min_records: int, seed: int) -> tuple[list[Record], list[Record]]:
    """Hold out a random ``fraction`` of the labeled records for early stopping and model choice,
    but only when that leaves at least ``min_records`` in the dev set."""
    n_dev = int(round(len(records) * fraction))
    if fraction <= 0 or n_dev < min_records:
        return list(records), []
    order = np.random.default_rng(seed).permutation(len(records))
    dev_idx = set(order[:n_dev].tolist())
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
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not labeled:
        raise TrainingError("no labeled records to train on")
    try:
        device = resolve_device(cfg.device)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if dev is None:
        train_recs, dev_recs = split_dev(labeled, cfg.dev_fraction, cfg.min_dev_records, cfg.seed)
    else:
        train_recs, dev_recs = list(labeled), list(dev)

    labels = list(labels) if labels is not None else (base.labels if base is not None else None)
    if labels is None:
        labels = sorted({e.label for r in labeled for e in r.entities})
    if not labels:
        raise TrainingError("no labels: give the label set or records with entities")
    unknown = {e.label for r in train_recs for e in r.entities} - set(labels)
    if unknown:
        raise TrainingError(f"records use labels outside the label set: {sorted(unknown)}")

    all_texts = [r.text for r in labeled] + list(unlabeled_texts)
    if base is None:
        model = NerModel.create(labels, texts=all_texts, encoder=cfg.encoder, max_len=cfg.max_len, lossnet_kind=cfg.lossnet, seed=cfg.seed, lpn_layers=cfg.lpn_layers)
    else:
        if base.labels != list(labels):
            raise TrainingError(f"the base model's labels {base.labels} differ from {list(labels)}; train from scratch")
        model = base.clone()
        model.extend_vocab(all_texts)
        resized = cfg.lossnet == "lpn" and model.lpn_layers != cfg.lpn_layers
        if cfg.lossnet != model.lossnet_kind or resized:  # a new loss net learns from this run on
            model.lossnet, model.lossnet_kind = build_lossnet(cfg.lossnet, model.student, cfg.lpn_layers), cfg.lossnet
    scheme: LabelScheme = model.scheme
    student = model.student
    if cfg.mean_teacher and model.teacher is None:
        model.teacher = make_teacher(student)
    model.to(device)  # after the teacher's copy: it packs every LSTM's weights for cuDNN
    teacher = model.teacher if cfg.mean_teacher else None
    lossnet = model.lossnet

    chunks = make_chunks([r.text for r in train_recs], model.encode, cfg.max_len, [r.entities for r in train_recs], scheme)
    u_chunks = make_chunks(list(unlabeled_texts), model.encode, cfg.max_len) if teacher is not None else []
    if teacher is not None and not u_chunks:  # Mean Teacher still needs unlabeled text: reuse the labeled text
        u_chunks = [Chunk(c.record, c.start, c.ids) for c in chunks]

    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lpn_opt = make_lpn_optimizer(lossnet.parameters()) if lossnet is not None else None
    steps_per_epoch = math.ceil(len(chunks) / cfg.batch_size)
    period = max(steps_per_epoch, math.ceil(cfg.min_steps / max(cfg.max_epochs, 1)))
    total_steps = period * cfg.max_epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    ema_step = int(model.meta.get("ema_step", 0))

    def batch_stream(items: list[Chunk]):
        while True:
            for b in length_batches(items, max_batch=cfg.batch_size, rng=rng):
                yield [items[i] for i in b]

    lab_stream = batch_stream(chunks)
    unl_stream = batch_stream(u_chunks) if u_chunks else None

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    best_f1 = -1.0
    bad_periods = 0
    step = 0
    n_periods = math.ceil(total_steps / period)
    log.info("training on %d records (%d chunks), dev %d, unlabeled %d chunks; %d steps of batch %d in %d periods",
             len(train_recs), len(chunks), len(dev_recs), len(u_chunks), total_steps, cfg.batch_size, n_periods)
    stopped_by_budget = False
    split = cfg.lpn_thread and lossnet is not None and not cfg.lpn_backprop
    helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lpn-step") if split else None
    threads_before = torch.get_num_threads()
    if split:
        torch.set_num_threads(1)  # two Python threads on two cores; nested OpenMP pools would spin

    def lossnet_step(l_al: torch.Tensor) -> None:
        assert lpn_opt is not None and lossnet is not None
        lpn_opt.zero_grad(set_to_none=True)
        l_al.backward()
        torch.nn.utils.clip_grad_norm_(lossnet.parameters(), cfg.grad_clip)
        lpn_opt.step()

    pending: Future | None = None  # the loss net's step running on the helper thread
    try:
        for p in range(n_periods):
            tp = time.perf_counter()
            losses: list[float] = []
            al_losses: list[float] = []
            u_losses: list[float] = []
            for m in model.modules():
                m.train()
            out_of_time = False
            for _ in range(min(period, total_steps - step)):
                if should_stop is not None and should_stop():
                    raise TrainingCancelled("training was asked to stop")
                if cfg.max_seconds is not None and time.perf_counter() - t0 > cfg.max_seconds and step > 0:
                    out_of_time = True
                    break
                ids, mask, tags = collate(next(lab_stream), device)
                em, layers = student(ids, mask)
                nll = student.nll(em, tags, mask)  # type: ignore[arg-type]
                loss = nll.mean()
                warm = cfg.tagger_warmup_seconds > 0 and time.perf_counter() - t0 < cfg.tagger_warmup_seconds
                if lossnet is not None and not warm:
                    if model.lossnet_kind == "lpn":
                        b = student.bounds(em, mask, with_marginals=False)
                        feats = layers[-1] if cfg.lpn_backprop else layers[-1].detach()
                        pred = lossnet(feats, mask, torch.stack([b.l_min, b.l_max], 1).float())
                    else:
                        feats_l = layers if cfg.lpn_backprop else [x.detach() for x in layers]
                        pred = lossnet(feats_l, mask)
                    l_al = ranking_loss(pred, nll.detach(), margin=cfg.lpn_margin)
                    al_losses.append(float(l_al.detach()))
                    if helper is not None:  # backward + step of the loss net, beside the tagger's
                        pending = helper.submit(lossnet_step, cfg.lpn_weight * l_al)
                    else:
                        loss = loss + cfg.lpn_weight * l_al
                if teacher is not None and unl_stream is not None and not warm:
                    uids, umask, _ = collate(next(unl_stream), device)
                    s_em, _ = student(uids, umask)
                    with torch.no_grad():
                        t_em, _ = teacher(uids, umask)
                    l_u = consistency_loss(s_em, t_em, umask)
                    loss = loss + cfg.consistency_weight * l_u
                    u_losses.append(float(l_u.detach()))
                opt.zero_grad(set_to_none=True)
                if lpn_opt is not None and pending is None:
                    lpn_opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
                opt.step()
                if pending is not None:
                    job, pending = pending, None
                    job.result()  # re-raises a failure of the loss net's step
                elif lpn_opt is not None and not warm:
                    torch.nn.utils.clip_grad_norm_(lossnet.parameters(), cfg.grad_clip)  # type: ignore[union-attr]
                    lpn_opt.step()
                if teacher is not None:
                    ema_update(teacher, student, cfg.ema_alpha, step=ema_step)
                    ema_step += 1
                step += 1
                losses.append(float(nll.detach().mean()))
            for m in model.modules():
                m.eval()

            row: dict[str, Any] = {
                "epoch": p + 1,
                "step": step,
                "loss": float(np.mean(losses)) if losses else float("nan"),
                "seconds": round(time.perf_counter() - tp, 2),
            }
            if al_losses:
                row["rank_loss"] = float(np.mean(al_losses))
            if u_losses:
                row["consistency"] = float(np.mean(u_losses))
            if dev_recs:
                row["student_f1"] = evaluate_model(model, dev_recs, tagger=student)["micro"]["f1"]
                if teacher is not None:
                    row["teacher_f1"] = evaluate_model(model, dev_recs, tagger=teacher)["micro"]["f1"]
                row["dev_f1"] = max(row["student_f1"], row.get("teacher_f1", -1.0))
                # ties go to the later, longer-trained period (an all-zero F1 early on must not pin epoch 1);
                # only a strict improvement resets the patience
                bad_periods = 0 if row["dev_f1"] > best_f1 else bad_periods + 1
                if row["dev_f1"] >= best_f1:
                    best_f1 = row["dev_f1"]
                    serve = "teacher" if teacher is not None and row["teacher_f1"] >= row["student_f1"] else "student"
                    best = {"state": _snapshot(model), "serve": serve, "epoch": p + 1}
            history.append(row)
            if progress is not None:
                progress(dict(row, total_epochs=n_periods))
            if out_of_time:
                stopped_by_budget = True
                log.info("time budget of %.0fs used after %d steps", cfg.max_seconds, step)
                break
            if dev_recs and bad_periods >= cfg.patience:
                log.info("early stop after period %d (best %d, dev F1 %.4f)", p + 1, best["epoch"] if best else -1, best_f1)
                break
    finally:
        if helper is not None:
            if pending is not None:
                pending.exception()  # let it finish before the pool goes (a failure was raised already)
            helper.shutdown(wait=True)
            torch.set_num_threads(threads_before)

    if best is not None:
        _restore(model, best["state"])
        model.serve = best["serve"]
    else:  # no dev set: the student. With α = 0.999 and rounds of ~100 steps the EMA teacher lags far
        # behind (measured in the simulator: it scored below random), so it serves only when it measures better
        model.serve = "student"
    model.meta.update({"ema_step": ema_step, "train_config": cfg.to_dict(), "n_train_records": len(train_recs)})
    for m in model.modules():
        m.eval()
    return TrainResult(
        model=model,
        dev_f1=best_f1 if dev_recs else None,
        served=model.serve,
        history=history,
        steps=step,
        seconds=time.perf_counter() - t0,
        n_train=len(train_recs),
        n_dev=len(dev_recs),
        out_of_time=stopped_by_budget,
    )


def _snapshot(model: NerModel) -> dict[str, Any]:
    return {k: copy.deepcopy(m.state_dict()) for k, m in (("student", model.student), ("teacher", model.teacher), ("lossnet", model.lossnet)) if m is not None}


def _restore(model: NerModel, state: dict[str, Any]) -> None:
    for k, sd in state.items():
        getattr(model, k).load_state_dict(sd)
