"""The model a team gets where the stop rule fires: one final run, from scratch, on every record labeled
by then (the held-back slice included), with the all-data model's schedule (``TrainConfig.full_schedule``).
``python -m lasl_backend.sim.final_model --out <simulation dir>``.

The versions of a replay are fine-tuned a little after every 10 annotations, and each leaves its held-back
10% out; the all-data F1 they are measured against comes from one full training on the whole pool. Once the
rule says stop, the backend trains such a model on all the project's annotations (``LASL_FINAL_RUN``). This
tool replays that step: for each seed, the stop round (``stopping_report.stop_point``), the labeled records
there (round 0's and every pick since), the final model trained on them, and its test and dev F1. The
results go to ``final_models.json``, written after each seed; a seed already there is not trained again.
The stopping report reads the file and scores the rule on the final model's F1 as well.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..atomic import write_text_atomic
from ..stopping import StopRule
from .all_data import all_data_config
from .results import ReplayFileError
from .settings import SimSettings
from .stopping_report import FINAL_FILE, read_final_models, runs_by_seed, stop_point

if TYPE_CHECKING:
    from ..ner import TrainConfig

__all__ = ["final_config", "final_model", "final_models", "labeled_at", "read_settings"]


def labeled_at(rows: Sequence[dict[str, Any]], i: int) -> list[int]:
    """The pool records labeled after round ``rows[i]``: round 0's and every pick since (ReplayFileError
    where they do not add up to the round's count)."""
    if not rows or "labeled" not in rows[0]:
        raise ReplayFileError("the run's round 0 lists no labeled records")
    labeled = set(rows[0]["labeled"])
    for r in rows[1 : i + 1]:
        labeled.update(r.get("picked") or [])
    if len(labeled) != rows[i]["labeled_records"]:
        raise ReplayFileError(f"round {rows[i]['round']}: {len(labeled)} records from the picks, {rows[i]['labeled_records']} in the row")
    return sorted(labeled)


def read_settings(out: Path) -> SimSettings:
    """The replay's settings from ``out/settings.json`` (ValueError, naming the file, where unreadable)."""
    path = out / "settings.json"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(SimSettings)}
        return SimSettings(**{k: v for k, v in recorded.items() if k in known})
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a replay's settings ({exc})") from None


def final_config(settings: SimSettings, seed: int) -> TrainConfig:
    """The final run's config: the all-data model's, with the run's seed."""
    return replace(all_data_config(settings).full_schedule(), seed=seed)


def final_model(settings: SimSettings, strategy: str, seed: int, rows: Sequence[dict[str, Any]], i: int) -> dict[str, Any]:
    """Train the final model on the records labeled after round ``rows[i]``; its numbers."""
    import torch

    from ..ner import train_lasl  # torch: only when training

    torch.set_num_threads(1)  # as a replay's workers: two torch pools on two cores spin against each other
    from .replay import Replay, f1_of

    rp = Replay.load(settings, strategy, seed)
    ids = labeled_at(rows, i)
    t0 = time.perf_counter()
    result = train_lasl([rp.train[j] for j in ids], labels=rp.labels, config=final_config(settings, seed), progress=_progress(seed))
    return {"round": rows[i]["round"], "records": len(ids), "chars": rows[i]["labeled_chars"],
            "f1": f1_of(result.model, rp.test, settings.threads),
            "dev_f1": f1_of(result.model, rp.dev, settings.threads) if rp.dev else None,
            "version_f1": rows[i]["f1"], "version_dev_f1": rows[i].get("dev_f1"), "steps": result.steps,
            "seconds": round(time.perf_counter() - t0, 1)}


def final_models(out: Path, strategy: str, rule: StopRule, seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Each seed's final model at its stop round, trained where ``final_models.json`` lacks it."""
    settings = read_settings(out)
    done = read_final_models(out)
    for seed, rows in runs_by_seed(out, strategy).items():
        i = stop_point(rows, rule)
        if (seeds and seed not in seeds) or i is None or done.get(str(seed), {}).get("round") == rows[i]["round"]:
            continue
        _emit(f"[s{seed}] the rule stops at round {rows[i]['round']} ({rows[i]['labeled_records']} records): training the final model")
        done[str(seed)] = final_model(settings, strategy, seed, rows, i)
        _emit(f"[s{seed}] final model: test F1 {done[str(seed)]['f1']:.4f} (the version there: {rows[i]['f1']:.4f})")
        write_text_atomic(out / FINAL_FILE, json.dumps(done, indent=1))
    return done


def _emit(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress(seed: int) -> Any:
    def show(row: dict[str, Any]) -> None:
        _emit(f"  [s{seed}] final model: epoch {row['epoch']}/{row['total_epochs']}, step {row['step']}, {row['seconds']:.0f} s")

    return show


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="a lasl simulate output directory (queue protocol)")
    p.add_argument("--strategy", default="lasl+cost+div")
    p.add_argument("--seeds", help="comma-separated seeds (default: every seed of the strategy)")
    args = p.parse_args(argv)
    if not (args.out / "state").is_dir():
        p.error(f"{args.out}: no state/ directory, so not a lasl simulate output directory")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else None
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    try:
        done = final_models(args.out, args.strategy, StopRule(), seeds)
    except ValueError as exc:  # ReplayFileError is one
        p.error(str(exc))
    print(json.dumps(done, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
