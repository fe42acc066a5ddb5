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
different (strategy, seed) pairs can go in parallel processes (``--jobs``), one torch thread each.

The modules: ``settings`` (what a run is made with), ``replay`` (one run, round by round), ``run_state``
(its state on disk), ``results`` and ``plots`` (the results files); this one checks the command line and
the output directory and runs the (strategy, seed) pairs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from ..atomic import write_text_atomic
from ..ner import check_term_file, resolve_device
from .all_data import all_data_numbers
from .replay import run_one
from .results import write_results
from ..strategies import SCHEDULES
from .settings import SimSettings, comparable, split_name

__all__ = ["main_from_args"]


def _emit(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _worker(args: tuple[SimSettings, str, int, str]) -> int:
    """A simulator worker: one torch thread (more cores go to threads of its own, ``SimSettings.threads``)."""
    settings, name, seed, out = args
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    return len(run_one(settings, name, seed, Path(out)))


def _settings_from_args(args: argparse.Namespace) -> SimSettings:
    """The command line checked and turned into settings; a ValueError says what is wrong."""
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    for name in strategies:
        split_name(name)  # a ValueError names an unknown strategy or flag
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
    resolve_device(args.device)  # a clear error now, not in a worker process after the data is read
    if args.lexicon:
        check_term_file(args.lexicon)  # a bad line: its file and line now, not from a worker
    if not (0 < args.init < 1 and 0 < args.step < 1 and args.rounds >= 0):
        raise ValueError("--init and --step must be fractions in (0, 1) and --rounds >= 0")
    if args.train_every < 1 or args.lag < 0 or args.annotators < 1 or args.stop_set < 0:
        raise ValueError("--train-every and --annotators must be >= 1, --lag and --stop-set >= 0")
    if args.lag >= args.train_every:
        raise ValueError(f"--lag {args.lag} must be below --train-every {args.train_every}")
    if args.dev_records < 0:
        raise ValueError("--dev-records must be >= 0")
    for option, share in (("--average-tail", args.average_tail), ("--anneal-tail", args.anneal_tail)):
        if not 0.0 <= share < 1.0:
            raise ValueError(f"{option} {share} must be in [0, 1)")
    if args.max_chars is not None and args.max_chars < 1:
        raise ValueError("--max-chars must be >= 1")
    if args.schedule not in SCHEDULES:
        raise ValueError(f"--schedule {args.schedule!r}: known schedules are {', '.join(sorted(SCHEDULES))}")
    return SimSettings(
        data=str(data), strategies=strategies, seeds=seeds, init=args.init, step=args.step, rounds=args.rounds,
        encoder=args.encoder, threads=args.threads, normalize_length=args.normalize_length, loss_reduction=args.loss_reduction,
        round_epochs=args.epochs_per_round, max_test=args.max_test,
        first_round_min_steps=args.first_round_steps, round_min_steps=args.round_steps, device=args.device,
        lpn_layers=args.lpn_layers, char_vectors=args.char_vectors, lexicon_sources=args.lexicon_sources, lexicon=args.lexicon,
        bigrams=args.bigrams, knowledge_cache=args.knowledge_cache, serving=args.serving, train_every=args.train_every,
        lag=args.lag, annotators=args.annotators, stop_set=args.stop_set, max_chars=args.max_chars,
        dev_records=args.dev_records, schedule=args.schedule, average_tail=args.average_tail,
        anneal_tail=args.anneal_tail,
    )


def _record_settings(out: Path, settings: SimSettings) -> None:
    """Write ``settings.json``; a directory that holds runs made with other settings is refused, and one
    shared by several invocations (one strategy each, say) lists them all."""
    path = out / "settings.json"
    if path.is_file():
        old = json.loads(path.read_text())
        keep, new = comparable(old, settings)
        if keep != new:
            raise ValueError(f"{out} holds a simulation with other settings {keep}; use another --out")
        settings.strategies = list(dict.fromkeys(list(old.get("strategies") or []) + settings.strategies))
        settings.seeds = list(dict.fromkeys(list(old.get("seeds") or []) + settings.seeds))
    write_text_atomic(path, json.dumps(settings.to_dict(), indent=1))  # another invocation may be reading it


def main_from_args(args: argparse.Namespace) -> int:
    """``lasl simulate``: check, record the settings, then run every (strategy, seed) pair or, with
    ``--report-only``, only rewrite the results files."""
    settings = _settings_from_args(args)
    strategies, seeds = list(settings.strategies), list(settings.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _record_settings(out, settings)
    full_f1 = all_data_numbers(settings, out)["test_f1"] if args.full_f1 == "train" else args.full_f1
    settings.full_f1 = full_f1
    if args.report_only:
        rows = write_results(out, settings, full_f1)
        _emit(f"{len(rows)} rows from {out / 'state'} → {out / 'results.csv'}, {out / 'learning_curves.png'}")
        return 0
    jobs = [(settings, s, seed, str(out)) for seed in seeds for s in strategies]
    t0 = time.perf_counter()
    _emit(f"simulating {len(jobs)} runs ({', '.join(strategies)} × seeds {seeds}), {args.rounds} rounds, {args.jobs} in parallel; results in {out}")
    _run_jobs(jobs, args.jobs, out, settings, full_f1)
    rows = write_results(out, settings, full_f1)
    _emit(f"done: {len(rows)} rows in {time.perf_counter() - t0:.0f}s → {out / 'results.csv'}, {out / 'learning_curves.png'}")
    return 0


def _run_jobs(jobs: list[tuple[SimSettings, str, int, str]], n_parallel: int, out: Path, settings: SimSettings, full_f1: float | None) -> None:
    """Each job in turn, or ``n_parallel`` at a time in worker processes; the results after each."""
    if n_parallel <= 1:
        for j in jobs:
            _worker(j)
            write_results(out, settings, full_f1)
        return
    with ProcessPoolExecutor(max_workers=n_parallel) as ex:
        futs = {ex.submit(_worker, j): j for j in jobs}
        for f in as_completed(futs):
            f.result()
            write_results(out, settings, full_f1)
