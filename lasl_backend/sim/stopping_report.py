"""Where the stop rule fires in a replay, against where the true curve first reaches 97% and 98% of the
all-data F1: ``python -m lasl_backend.sim.stopping_report --out <simulation dir> --full-f1 0.8194``.

Each round of a ``queue`` replay carries what the backend would have had after that version: the held-back
slice's per-record counts and kappa with the previous version on the stop set. The rule
(``stopping.recommend``) is applied to the rounds so far, exactly as the backend applies it after each run,
and the first round it says "stop" is the stop point. The test F1 there is the rule's score; the dev F1
(records kept out of the pool, ``--dev-records``) is what thresholds may be chosen on (``--choose``), so
the test set only scores the rule. Where ``final_model`` has trained the final model at a run's stop, the
report scores the rule on that model's F1 too (``final``). Writes ``stopping.json`` and ``stopping.png``
(the stop point, and the final model there, marked on each seed's learning curve).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

from ..stopping import STOP, StopRule, VersionSignal, micro_f1, recommend
from .all_data import ALL_DATA_FILE, read_all_data
from .effort import all_data_f1
from .results import ReplayFileError, collect_rows

__all__ = ["FINAL_FILE", "choose_rule", "read_final_models", "runs_by_seed", "stop_point", "stopping_report"]

#: what ``final_model`` writes: each seed's final model at its stop round
FINAL_FILE = "final_models.json"

#: the thresholds ``--choose`` searches
GRID = {"kappa_threshold": (0.95, 0.96, 0.97, 0.975, 0.98, 0.99), "kappa_window": (1, 2, 3, 4, 5, 6),
        "stop_gain": (0.005, 0.01, 0.02, 0.03, 0.05)}


def read_final_models(out: Path) -> dict[str, Any]:
    """``final_models.json`` by seed (as a string), or {} where there is none."""
    path = out / FINAL_FILE
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ValueError(f"{path}: not valid JSON; delete it to train the final models again") from None
    if not isinstance(found, dict) or not all(isinstance(v, dict) and isinstance(v.get("f1"), float) for v in found.values()):
        raise ValueError(f"{path}: not a seed → final model map; delete it to train the final models again")
    return found


def _signal(row: dict[str, Any]) -> VersionSignal:
    counts = row.get("heldout") or []
    f1 = micro_f1(counts)
    kappa = row.get("kappa")
    return VersionSignal(n_labeled=int(row["labeled_records"]), heldout_f1=f1, heldout_records=len(counts),
                         kappa=None if kappa is None or (isinstance(kappa, float) and math.isnan(kappa)) else float(kappa))


def stop_point(rows: Sequence[dict[str, Any]], rule: StopRule) -> int | None:
    """Index of the first round at which the rule says stop (None: it never does within the run)."""
    history: list[VersionSignal] = []
    for i, row in enumerate(rows):
        history.append(_signal(row))
        if recommend(history, rule).state == STOP:
            return i
    return None


def _first(rows: Sequence[dict[str, Any]], key: str, target: float) -> int | None:
    return next((i for i, r in enumerate(rows) if r.get(key) is not None and r[key] >= target), None)


def _passes(share_of_full: float, records_vs_reach: float | None) -> bool:
    """The target: at least 97% of the all-data F1, with at most 1.3× the records of the first 97% crossing."""
    return share_of_full >= 0.97 and records_vs_reach is not None and records_vs_reach <= 1.3


def _run_report(rows: Sequence[dict[str, Any]], rule: StopRule, full_f1: float, pool: int, key: str = "f1") -> dict[str, Any]:
    """One run: the stop point and the curve's first 97%/98% points, measured on ``key`` (f1 or dev_f1)."""
    i = stop_point(rows, rule)
    out: dict[str, Any] = {"stop": None if i is None else {"round": rows[i]["round"], "records": rows[i]["labeled_records"],
                                                           "chars": rows[i]["labeled_chars"], "f1": rows[i][key],
                                                           "share_of_full": rows[i][key] / full_f1,
                                                           "records_saved": pool - rows[i]["labeled_records"]}}
    for share in (0.97, 0.98):
        j = _first(rows, key, share * full_f1)
        out[f"reach_{share:.2f}"] = None if j is None else {"records": rows[j]["labeled_records"], "chars": rows[j]["labeled_chars"]}
    reach = out["reach_0.97"]
    out["records_vs_reach_0.97"] = (out["stop"]["records"] / reach["records"]) if out["stop"] and reach else None
    out["passes"] = bool(out["stop"]) and _passes(out["stop"]["share_of_full"], out["records_vs_reach_0.97"])
    return out


def runs_by_seed(out: Path, strategy: str) -> dict[int, list[dict[str, Any]]]:
    """The strategy's saved rounds under ``out``, by seed, each run's in round order."""
    runs: dict[int, list[dict[str, Any]]] = {}
    for r in collect_rows(out):
        if r["strategy"] == strategy:
            runs.setdefault(int(r["seed"]), []).append(r)
    return {s: sorted(rs, key=lambda r: r["round"]) for s, rs in sorted(runs.items())}


def choose_rule(runs: dict[int, list[dict[str, Any]]], full_f1: float, pool: int, base: StopRule = StopRule()) -> StopRule:
    """The grid's rule that passes on the dev curve in most runs; among those, the one whose worst stop keeps
    the most of the all-data F1, then the one that stops earliest (dev F1 only, never test). A run the rule
    never stops in counts as keeping nothing: labeling on forever is no answer."""
    best: tuple[Any, ...] | None = None
    for values in itertools.product(*GRID.values()):
        picked = dict(zip(GRID, values))
        rule = replace(base, **picked, slow_gain=max(base.slow_gain, picked["stop_gain"]))  # "slowing" never below "flat"
        reps = [_run_report(rows, rule, full_f1, pool, key="dev_f1") for rows in runs.values()]
        passed = sum(r["passes"] for r in reps)
        worst = min(r["stop"]["share_of_full"] if r["stop"] else 0.0 for r in reps)
        used = sum(r["stop"]["records"] if r["stop"] else 10**9 for r in reps)
        key = (-passed, -round(worst, 3), used)
        if best is None or key < best[0]:
            best = (key, rule)
    assert best is not None
    return best[1]


def stopping_report(out: Path, strategy: str, full_f1: float, pool: int, rule: StopRule, dev_full_f1: float | None = None) -> dict[str, Any]:
    runs = runs_by_seed(out, strategy)
    report = {"strategy": strategy, "full_f1": full_f1, "rule": asdict(rule),
              "runs": {str(s): _run_report(rows, rule, full_f1, pool) for s, rows in runs.items()}}
    if dev_full_f1:
        report["dev"] = {str(s): _run_report(rows, rule, dev_full_f1, pool, key="dev_f1") for s, rows in runs.items()}
    finals = read_final_models(out)  # a final model counts only where it was trained at this rule's stop
    for part, key, full in (("runs", "f1", full_f1), ("dev", "dev_f1", dev_full_f1)):
        for seed, rep in report.get(part, {}).items():
            _add_final(rep, finals.get(seed), key, full)
    return report


def _add_final(rep: dict[str, Any], final: dict[str, Any] | None, key: str, full: float | None) -> None:
    """The final model at the run's stop (``final_model``): its F1 and whether the rule passes on it."""
    stop = rep["stop"]
    if not final or not stop or final.get("round") != stop["round"] or final.get(key) is None or not full:
        return
    share = final[key] / full
    ratio = rep["records_vs_reach_0.97"]
    rep["final"] = {"f1": final[key], "share_of_full": share, "records": final["records"],
                    "passes": _passes(share, ratio)}


def plot_stops(out: Path, strategy: str, report: dict[str, Any], path: Path) -> None:
    """Each seed's test curve by records, its stop point marked, and the 97%/98% lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = runs_by_seed(out, strategy)
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    full = report["full_f1"]
    starred = False
    for seed, rows in runs.items():
        line = ax.plot([r["labeled_records"] for r in rows], [r["f1"] for r in rows], marker="o", ms=2.5, lw=1.3, label=f"seed {seed}")[0]
        stop = report["runs"][str(seed)]["stop"]
        if stop:
            ax.axvline(stop["records"], color=line.get_color(), ls="--", lw=1)
            ax.plot([stop["records"]], [stop["f1"]], marker="X", ms=11, color=line.get_color(), label=f"seed {seed}: stop at {stop['records']} records")
        final = report["runs"][str(seed)].get("final")
        if final:
            ax.plot([stop["records"]], [final["f1"]], marker="*", ms=13, color=line.get_color(), mec="black", mew=0.6,
                    label=None if starred else "★ the final model at the stop")
            starred = True
    for share, style in ((1.0, "-"), (0.98, ":"), (0.97, "-.")):
        ax.axhline(share * full, color="gray", ls=style, lw=1, label=f"{share:.0%} of all data ({share * full:.3f})")
    ax.set_xlabel("records labeled")
    ax.set_ylabel("strict micro F1 on the test records")
    ax.set_title(f"Where the stop rule fires ({strategy})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _missing(out: Path, runs: dict[int, list[dict[str, Any]]], key: str) -> str | None:
    """The first saved round without a ``key`` value, as its file and round, or None."""
    for seed, rows in runs.items():
        for r in rows:
            if r.get(key) is None:
                path = out / "state" / f"{r['strategy']}-s{seed}" / "state.json"
                return f"{path}: round {r['round']}"
    return None


def _read_runs(p: argparse.ArgumentParser, args: argparse.Namespace) -> dict[int, list[dict[str, Any]]]:
    """The strategy's runs, or a usage error that says what is wrong with the directory."""
    try:
        runs = runs_by_seed(args.out, args.strategy)
    except ReplayFileError as exc:
        p.error(str(exc))
    if not runs:
        p.error(f"{args.out / 'state'}: no run of {args.strategy!r}")
    needed = [("labeled_records", "record count"), ("labeled_chars", "character count"), ("f1", "test F1")]
    for key, flag in needed + ([("dev_f1", "dev F1")] if args.dev_full_f1 else []):
        where = _missing(args.out, runs, key)
        if where:
            hint = " (replay with --dev-records to have one)" if key == "dev_f1" else ""
            p.error(f"{where} has no {flag}{hint}")
    return runs


def _all_data(p: argparse.ArgumentParser, out: Path) -> dict[str, Any]:
    """What ``--full-f1 train`` recorded in ``out`` (empty where it did not run)."""
    try:
        return read_all_data(out) or {}
    except ValueError as exc:
        p.error(str(exc))


def _fill_f1s(p: argparse.ArgumentParser, args: argparse.Namespace, known: dict[str, Any]) -> None:
    """The all-data F1s the options leave out, from what ``--full-f1 train`` recorded."""
    args.full_f1 = args.full_f1 or known.get("test_f1")
    args.dev_full_f1 = args.dev_full_f1 or known.get("dev_f1")
    if not args.full_f1:
        p.error(f"--full-f1 is needed: {args.out} has no {ALL_DATA_FILE} (replay with --full-f1 train to have one)")


def _pool_from_settings(p: argparse.ArgumentParser, out: Path) -> int:
    """The replay's pool: its training records less its dev split, as its settings name them."""
    try:
        settings = json.loads((out / "settings.json").read_text())
        with (Path(settings["data"]) / "train.jsonl").open(encoding="utf-8") as fh:
            n = sum(1 for line in fh if line.strip())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        p.error(f"--pool is needed: the replay's training records could not be counted from {out / 'settings.json'} ({exc})")
    dev = int(settings.get("dev_records") or 0)
    return n - min(dev, n - 1) if dev > 0 else n


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="a lasl simulate output directory (queue protocol)")
    p.add_argument("--strategy", default="lasl+cost+div")
    p.add_argument("--full-f1", type=all_data_f1, help="the all-data test F1 (default: from --out's all_data.json, which --full-f1 train wrote)")
    p.add_argument("--dev-full-f1", type=all_data_f1, help="the all-data dev F1, for --choose (default: from all_data.json)")
    p.add_argument("--pool", type=_positive_int, help="records in the pool, what labeling everything costs (default: the replay's pool)")
    p.add_argument("--choose", action="store_true", help="choose the thresholds on the dev curve (needs --dev-full-f1)")
    args = p.parse_args(argv)
    if not (args.out / "state").is_dir():
        p.error(f"{args.out}: no state/ directory, so not a lasl simulate output directory")
    known = _all_data(p, args.out)
    _fill_f1s(p, args, known)
    if args.choose and not args.dev_full_f1:
        p.error("--choose needs --dev-full-f1")
    runs = _read_runs(p, args)
    args.pool = args.pool or known.get("pool_records") or _pool_from_settings(p, args.out)
    try:
        rule = choose_rule(runs, args.dev_full_f1, args.pool) if args.choose else StopRule()
        report = stopping_report(args.out, args.strategy, args.full_f1, args.pool, rule, args.dev_full_f1)
    except ValueError as exc:  # held-back counts that cannot be entity counts
        p.error(f"{args.out}: {exc}")
    (args.out / "stopping.json").write_text(json.dumps(report, indent=1, allow_nan=False))
    plot_stops(args.out, args.strategy, report, args.out / "stopping.png")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
