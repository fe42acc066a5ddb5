"""``lasl simulate``: replay active learning on a labeled train/test pair with an oracle.

For each strategy and seed: round 0 labels a random ``init`` fraction of the training records (the
same records for every strategy of one seed), trains from scratch, and evaluates on the test records;
each later round scores the unlabeled pool with the current model, queries ``step`` × N records,
reveals their gold labels, fine-tunes the previous round's models (Algorithm 1) for a bounded budget,
and evaluates again. The budget unit is records, as in the paper; characters labeled are recorded too.

Which models each strategy trains:

| strategy | loss net | Mean Teacher |
|---|---|---|
| random, lc, tod, mlp | – | – |
| loss | learning-loss net (Yoo & Kweon) | – |
| lpn, dbs | LPN | – |
| lasl | LPN | yes |

Results are written after every round (``results.csv``, ``results.json``, ``learning_curves.png``) and
each run keeps its state (labeled set, model, previous marginals for TOD) under ``state/``, so a killed
simulation continues from its last finished round; finished rounds are never recomputed. Runs for
different (strategy, seed) pairs can go in parallel processes (``--jobs``), one thread each.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

COLUMNS = ["strategy", "seed", "round", "labeled_records", "labeled_fraction", "labeled_chars", "f1", "lambda_t", "round_seconds"]
STRATEGY_MODELS = {
    "random": (None, False),
    "lc": (None, False),
    "tod": (None, False),
    "mlp": (None, False),
    "loss": ("learning_loss", False),
    "lpn": ("lpn", False),
    "dbs": ("lpn", False),
    "lasl": ("lpn", True),
}


@dataclass
class SimSettings:
    data: str
    strategies: list[str]
    seeds: list[int]
    init: float
    step: float
    rounds: int
    encoder: str = "char"
    #: cores per run: ≥ 2 runs the loss net's backward on a second thread and scores the pool in two
    #: batches at once. Results are bitwise the same for any value (tested), so resuming may change it.
    threads: int = 1
    first_round_min_steps: int = 600
    round_epochs: int = 2
    round_min_steps: int = 100
    normalize_length: bool = False
    #: the ``loss`` baseline's chunk → record aggregation (``LearningLossSampling.reduction``)
    loss_reduction: str = "mean"
    max_test: int | None = None
    full_f1: float | None = None
    #: where the models train and score (cpu, cuda, cuda:N, mps). A GPU run is not bitwise a CPU run,
    #: so one output directory holds runs of one device type only
    device: str = "cpu"
    #: the LPN's Bi-LSTM layers (paper Table 6): 2 = the paper's serial encoder, 0 = its shared encoder
    lpn_layers: int = 2

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _emit(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_one(settings: SimSettings, strategy_name: str, seed: int, out: Path) -> list[dict[str, Any]]:
    """One (strategy, seed) run, resumable; returns all its rows. Results files are rewritten after
    every round, so a long matrix shows its curves as they come."""
    import torch

    from ..data import read_jsonl
    from ..metrics import entity_prf
    from ..ner import NerModel
    from ..strategies import get_strategy
    from ..strategies.base import PoolScores
    from ..strategies.schedules import get_schedule
    from ..strategies.tod import temporal_output_discrepancy
    from ..ner import TrainConfig, train_lasl

    torch.set_num_threads(1)  # more cores go to threads of our own (see SimSettings.threads)
    data = Path(settings.data)
    train = read_jsonl(data / "train.jsonl")
    test = read_jsonl(data / "test.jsonl")
    if settings.max_test:
        test = test[: settings.max_test]
    labels = sorted({e.label for r in train for e in r.entities})
    N = len(train)
    n_init = max(1, int(round(settings.init * N)))
    k = max(1, int(round(settings.step * N)))
    lossnet, mean_teacher = STRATEGY_MODELS[strategy_name]
    kwargs: dict[str, Any] = {}
    if settings.normalize_length and strategy_name in ("dbs", "lasl", "mlp", "lpn"):
        kwargs["normalize_length"] = True
    if strategy_name == "loss":
        kwargs["reduction"] = settings.loss_reduction
    strategy = get_strategy(strategy_name, **kwargs)

    sdir = out / "state" / f"{strategy_name}-s{seed}"
    sdir.mkdir(parents=True, exist_ok=True)
    state_path = sdir / "state.json"
    rows: list[dict[str, Any]] = []
    labeled: list[int]
    model: NerModel | None = None
    # TOD compares the current model's marginals with the previous round's model's: keep both.
    last_marg: list[np.ndarray] | None = None  # marginals of the latest model (the one that queries next)
    prev_marg: list[np.ndarray] | None = None  # marginals of the model before it
    if state_path.is_file():
        st = json.loads(state_path.read_text())
        rows, labeled = st["rows"], st["labeled"]
        if rows:
            model = NerModel.load(sdir / "model", device=settings.device)
            last_marg, prev_marg = _load_marginals(sdir / "marginals.npz"), _load_marginals(sdir / "marginals_prev.npz")
            _emit(f"[{strategy_name} s{seed}] resuming after round {rows[-1]['round']}")
    else:
        labeled = sorted(np.random.default_rng(seed).choice(N, n_init, replace=False).tolist())
    test_texts = [r.text for r in test]

    start_round = rows[-1]["round"] + 1 if rows else 0
    pending: tuple[list[int], list[Any]] | None = None
    for rnd in range(start_round, settings.rounds + 1):
        t0 = time.perf_counter()
        rnd_seed = seed * 1000 + rnd
        if rnd > 0:
            # query with the previous round's model
            assert model is not None
            pool_idx = [i for i in range(N) if i not in set(labeled)]
            if pending is not None and pending[0] == pool_idx:
                scores = pending[1]  # scored right after the last round's training: same model, same pool
            else:  # resumed run: score again
                scores = model.predict([train[i].text for i in pool_idx], return_marginals=strategy_name == "tod", workers=settings.threads)
            tod = None
            if strategy_name == "tod":
                cur = [s.marginals for s in scores]
                if prev_marg is not None:
                    prev_pool = [prev_marg[i] for i in pool_idx]
                    tod = temporal_output_discrepancy(cur, prev_pool)  # type: ignore[arg-type]
                else:
                    tod = np.zeros(len(pool_idx))
            pool = PoolScores.from_scores(
                scores, round=rnd, l_pred_vanilla=np.array([s.l_pred for s in scores]) if lossnet == "learning_loss" else None, tod=tod
            )
            if lossnet == "learning_loss":
                pool.l_pred = None
            picked = strategy.query(pool, min(k, pool.n), np.random.default_rng(rnd_seed))
            labeled = sorted(labeled + [pool_idx[i] for i in picked])
        lab_recs = [train[i] for i in labeled]
        unl_texts = [train[i].text for i in range(N) if i not in set(labeled)] if mean_teacher else []
        if model is None:
            cfg = TrainConfig(max_epochs=40, min_steps=settings.first_round_min_steps, dev_fraction=0.0, seed=rnd_seed,
                              encoder=settings.encoder, mean_teacher=mean_teacher, lossnet=lossnet, patience=10**6,
                              lpn_thread=settings.threads >= 2, device=settings.device, lpn_layers=settings.lpn_layers)
        else:
            cfg = TrainConfig(max_epochs=settings.round_epochs, min_steps=settings.round_min_steps, dev_fraction=0.0, seed=rnd_seed,
                              encoder=settings.encoder, mean_teacher=mean_teacher, lossnet=lossnet, patience=10**6,
                              lpn_thread=settings.threads >= 2, device=settings.device, lpn_layers=settings.lpn_layers)
        result = train_lasl(lab_recs, unl_texts, labels=labels, config=cfg, base=model)
        model = result.model
        test_scores = model.predict(test_texts, with_lossnet=False, workers=settings.threads)
        f1 = entity_prf([r.entities for r in test], [s.entities for s in test_scores])["micro"]["f1"]  # type: ignore[misc]
        # Λ_t of Eq. 7 on the remaining pool (for every strategy: it shows how confident the model is)
        rest = [i for i in range(N) if i not in set(labeled)]
        lam = float("nan")
        new_marg = None
        if rest and rnd < settings.rounds:
            sc = model.predict([train[i].text for i in rest], return_marginals=strategy_name == "tod", workers=settings.threads)
            pending = (rest, sc)
            lam = float(get_schedule("pool_confidence")(PoolScores.from_scores(sc)))
            if strategy_name == "tod":
                full = [np.zeros((0, 0), np.float32)] * N
                for i, s in zip(rest, sc):
                    full[i] = s.marginals  # type: ignore[assignment]
                new_marg = full
        row = {
            "strategy": strategy_name,
            "seed": seed,
            "round": rnd,
            "labeled_records": len(labeled),
            "labeled_fraction": len(labeled) / N,
            "labeled_chars": sum(len(train[i].text) for i in labeled),
            "f1": f1,
            "lambda_t": lam,
            "round_seconds": round(time.perf_counter() - t0, 2),
        }
        rows.append(row)
        # persist: model, marginals, then the state that names them (so a crash between leaves the old round)
        model.save(sdir / "model")
        if new_marg is not None:
            prev_marg, last_marg = last_marg, new_marg
            for name, marg in (("marginals_prev.npz", prev_marg), ("marginals.npz", last_marg)):
                if marg is not None:
                    tmp = sdir / f"tmp.{name}"
                    np.savez(tmp, **{f"m{i}": m for i, m in enumerate(marg)})
                    os.replace(tmp, sdir / name)
        tmp_state = sdir / "state.tmp.json"
        tmp_state.write_text(json.dumps({"rows": rows, "labeled": labeled}))
        os.replace(tmp_state, state_path)
        write_results(out, settings, settings.full_f1)
        _emit(f"[{strategy_name} s{seed}] round {rnd:2d}: {len(labeled):4d} records ({row['labeled_fraction']:.0%}), "
              f"F1 {f1:.4f}, Λ {lam:.3f}, {row['round_seconds']:.1f}s")
    return rows


def _load_marginals(path: Path) -> list[np.ndarray] | None:
    if not path.is_file():
        return None
    z = np.load(path)
    return [z[f"m{i}"] for i in range(len(z.files))]


def collect_rows(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for st in sorted((out / "state").glob("*/state.json")):
        rows += json.loads(st.read_text())["rows"]
    return sorted(rows, key=lambda r: (r["strategy"], r["seed"], r["round"]))


def write_results(out: Path, settings: SimSettings, full_f1: float | None) -> list[dict[str, Any]]:
    rows = collect_rows(out)
    tag = f"{os.getpid()}.tmp"  # several simulate processes may share one --out
    with (out / f"results.csv.{tag}").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: r[c] for c in COLUMNS})
    os.replace(out / f"results.csv.{tag}", out / "results.csv")
    (out / f"results.json.{tag}").write_text(json.dumps({"settings": settings.to_dict(), "full_data_f1": full_f1, "rows": rows}, indent=1))
    os.replace(out / f"results.json.{tag}", out / "results.json")
    if rows:
        plot_curves(rows, out / "learning_curves.png", full_f1)
    return rows


def plot_curves(rows: Sequence[dict[str, Any]], path: Path, full_f1: float | None) -> None:
    """Mean ± std over seeds per strategy against records labeled (Fig. 4 of the paper), with the all-data
    line and 95%/98% of it; and, beside it, F1 against characters labeled, since annotation effort
    follows characters more than records and strategies differ in the lengths they pick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), dpi=110)
    names = sorted({r["strategy"] for r in rows}, key=list(STRATEGY_MODELS).index)
    for name in names:
        by_round: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            if r["strategy"] == name:
                by_round.setdefault(int(r["round"]), []).append(r)
        rounds = sorted(by_round)
        f1 = [np.array([x["f1"] for x in by_round[t]]) for t in rounds]
        mean = np.array([v.mean() for v in f1])
        std = np.array([v.std() for v in f1])
        counts = np.array([len(v) for v in f1])
        n_seeds = int(counts.max())
        # rounds that not every seed has reached yet (a matrix part-way through) are drawn dotted
        full = counts == n_seeds
        label = f"{name} ({n_seeds} seed{'s' if n_seeds > 1 else ''}{'' if full.all() else '; dotted: fewer'})"
        lw = 2.2 if name == "lasl" else 1.3
        for ax, key, scale in ((axes[0], "labeled_fraction", 100.0), (axes[1], "labeled_chars", 1e-3)):
            xs = np.array([np.mean([x[key] for x in by_round[t]]) * scale for t in rounds])
            line = ax.plot(xs[full], mean[full], marker="o", ms=3, lw=lw, label=label)[0]
            ax.fill_between(xs[full], (mean - std)[full], (mean + std)[full], alpha=0.15, color=line.get_color())
            if not full.all():
                ax.plot(xs, mean, ls=":", lw=1.0, color=line.get_color())
    for ax in axes:
        if full_f1:
            ax.axhline(full_f1, ls="--", color="k", lw=1, label=f"all data ({full_f1:.3f})")
            ax.axhline(0.98 * full_f1, ls=":", color="gray", lw=1, label="98% of all data")
            ax.axhline(0.95 * full_f1, ls="-.", color="gray", lw=1, label="95% of all data")
        ax.set_ylabel("strict micro F1 on the test records")
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("% of training records labeled")
    axes[1].set_xlabel("thousands of characters labeled")
    axes[0].set_title("F1 by records labeled (the paper's budget)")
    axes[1].set_title("F1 by characters labeled")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Active learning on CCKS 2019, char Bi-LSTM-CRF")
    fig.tight_layout()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _worker(args: tuple[SimSettings, str, int, str]) -> int:
    settings, name, seed, out = args
    logging.basicConfig(level=logging.WARNING)
    return len(run_one(settings, name, seed, Path(out)))


def _device_type(name: str) -> str:
    """cuda:0 and cuda:1 compute alike; cpu and cuda do not (see ``SimSettings.device``)."""
    return name.split(":")[0]


def main_from_args(args: argparse.Namespace) -> int:
    from ..strategies import STRATEGIES

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES or s not in STRATEGY_MODELS]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; known: {sorted(STRATEGY_MODELS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    data = Path(args.data)
    for f in ("train.jsonl", "test.jsonl"):
        if not (data / f).is_file():
            raise ValueError(f"{data / f}: missing (the simulator needs train.jsonl and test.jsonl)")
    if args.threads < 1:
        raise ValueError("--threads must be >= 1")
    from ..ner import resolve_device

    resolve_device(args.device)  # a clear error now, not in a worker process after the data is read
    if not (0 < args.init < 1 and 0 < args.step < 1 and args.rounds >= 0):
        raise ValueError("--init and --step must be fractions in (0, 1) and --rounds >= 0")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = SimSettings(
        data=str(data), strategies=strategies, seeds=seeds, init=args.init, step=args.step, rounds=args.rounds,
        encoder=args.encoder, threads=args.threads, normalize_length=args.normalize_length, loss_reduction=args.loss_reduction,
        round_epochs=args.epochs_per_round, max_test=args.max_test,
        first_round_min_steps=args.first_round_steps, round_min_steps=args.round_steps, device=args.device,
        lpn_layers=args.lpn_layers,
    )
    settings_path = out / "settings.json"
    if settings_path.is_file():
        old = json.loads(settings_path.read_text())
        keys = ("data", "init", "step", "encoder", "normalize_length", "loss_reduction", "round_epochs", "first_round_min_steps", "round_min_steps", "max_test", "device", "lpn_layers")
        # a record written before loss_reduction (device, lpn_layers) existed was made with the plain sum
        # (on the CPU, with the paper's 2-layer LPN)
        legacy = {"loss_reduction": "sum", "device": "cpu", "lpn_layers": 2}
        keep = {k: old.get(k, legacy.get(k)) for k in keys}
        new = {k: settings.to_dict()[k] for k in keep}
        keep["device"], new["device"] = _device_type(keep["device"]), _device_type(new["device"])
        if keep != new:
            raise ValueError(f"{out} holds a simulation with other settings {keep}; use another --out")
        # several invocations (one strategy each, say) share one --out: the record lists them all
        settings.strategies = list(dict.fromkeys(list(old.get("strategies") or []) + strategies))
        settings.seeds = list(dict.fromkeys(list(old.get("seeds") or []) + seeds))
    settings_path.write_text(json.dumps(settings.to_dict(), indent=1))
    full_f1 = args.full_f1
    settings.full_f1 = full_f1
    if args.report_only:
        rows = write_results(out, settings, full_f1)
        _emit(f"{len(rows)} rows from {out / 'state'} → {out / 'results.csv'}, {out / 'learning_curves.png'}")
        return 0
    jobs = [(settings, s, seed, str(out)) for seed in seeds for s in strategies]
    t0 = time.perf_counter()
    _emit(f"simulating {len(jobs)} runs ({', '.join(strategies)} × seeds {seeds}), {args.rounds} rounds, {args.jobs} in parallel; results in {out}")
    if args.jobs <= 1:
        for j in jobs:
            _worker(j)
            write_results(out, settings, full_f1)
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as ex:
            futs = {ex.submit(_worker, j): j for j in jobs}
            for f in as_completed(futs):
                f.result()
                write_results(out, settings, full_f1)
    rows = write_results(out, settings, full_f1)
    _emit(f"done: {len(rows)} rows in {time.perf_counter() - t0:.0f}s → {out / 'results.csv'}, {out / 'learning_curves.png'}")
    return 0
