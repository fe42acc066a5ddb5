"""Why a saving per character is bounded: the gold entities each strategy's picks hold per character
labeled, against the most any choice of records could hold (the pool's records, densest first).

Labeling a record teaches the tagger through its entities, and an annotator pays for its characters. So no
strategy can learn much faster per character than its picks are dense in entities, unless each entity is
worth more. ``python -m lasl_backend.sim.entity_yield --out <simulation dir> --chars 40000,90000`` reads a
replay's picks and its pool (the data and dev split named in ``settings.json``). It prints a table and
writes ``entity_yield.json``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data import DataError, Record, read_jsonl
from .replay import split_dev
from .results import collect_rows

__all__ = ["density_ceiling", "entity_yield", "labeled_at", "yield_markdown"]


def labeled_at(rows: Sequence[dict[str, Any]], lengths: np.ndarray, budget: int) -> list[int] | None:
    """The records one run had labeled when its characters first reached ``budget`` (None: never);
    ValueError for picks that are not records of this pool."""
    labeled: list[int] = []
    chars = 0
    for r in sorted(rows, key=lambda r: r["round"]):
        new = list(r.get("labeled") or []) if r["round"] == 0 else list(r.get("picked") or [])
        bad = next((i for i in new if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(lengths)), None)
        if bad is not None:
            raise ValueError(f"{r.get('strategy')} seed {r.get('seed')}, round {r['round']}: pick {bad!r} is not one of "
                             f"the pool's {len(lengths)} records (another data directory or dev split?)")
        labeled += new
        chars += int(lengths[new].sum()) if new else 0
        if chars >= budget:
            return labeled
    return None


def density_ceiling(lengths: np.ndarray, entities: np.ndarray, budget: int) -> dict[str, float]:
    """Entities per character of the densest records whose characters first reach ``budget``."""
    order = np.argsort(-entities / np.maximum(lengths, 1), kind="stable")
    n = min(int(np.searchsorted(np.cumsum(lengths[order]), budget)) + 1, len(order))
    top = order[:n]
    return {"records": n, "entities_per_char": float(entities[top].sum() / max(lengths[top].sum(), 1))}


def _run_yield(labeled: list[int], lengths: np.ndarray, entities: np.ndarray) -> dict[str, float]:
    idx = np.array(labeled, dtype=int)
    return {"records": len(idx), "chars_per_record": float(lengths[idx].mean()), "entities": float(entities[idx].sum()),
            "entities_per_char": float(entities[idx].sum() / lengths[idx].sum())}


def entity_yield(rows: Sequence[dict[str, Any]], pool: Sequence[Record], budgets: Sequence[int]) -> dict[str, Any]:
    """Per budget: each strategy's mean over the seeds that reached it, and the ceiling."""
    lengths = np.array([len(r.text) for r in pool])
    entities = np.array([len(r.entities) for r in pool])
    by_run: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_run[(r["strategy"], int(r["seed"]))].append(r)
    report: dict[str, Any] = {"pool": {"records": len(pool), "entities_per_char": float(entities.sum() / lengths.sum())}}
    for budget in budgets:
        per: dict[str, list[dict[str, float]]] = defaultdict(list)
        for (name, _), run in sorted(by_run.items()):
            labeled = labeled_at(run, lengths, budget)
            if labeled is not None:
                per[name].append(_run_yield(labeled, lengths, entities))
        report[str(budget)] = {"ceiling": density_ceiling(lengths, entities, budget),
                               "strategies": {name: {k: float(np.mean([y[k] for y in ys])) for k in ys[0]} | {"seeds": len(ys)}
                                              for name, ys in per.items()}}
    return report


def yield_markdown(report: dict[str, Any]) -> str:
    """One table per budget: records, characters per record, entities and entities per character."""
    out = [f"The pool: {report['pool']['records']} records, {report['pool']['entities_per_char']:.4f} entities per character.", ""]
    for budget, part in report.items():
        if budget == "pool":
            continue
        out += [f"At {int(budget):,} characters labeled:", "",
                "| picks | seeds | records | chars per record | entities | entities per char |", "|---|---|---|---|---|---|"]
        for name, y in part["strategies"].items():
            out.append(f"| {name} | {y['seeds']} | {y['records']:.0f} | {y['chars_per_record']:.0f} | {y['entities']:.0f} | "
                       f"{y['entities_per_char']:.4f} |")
        c = part["ceiling"]
        out += [f"| densest first (the ceiling) | – | {c['records']} | – | – | {c['entities_per_char']:.4f} |", ""]
    return "\n".join(out)


def _pool(out: Path, data: Path | None) -> list[Record]:
    """The replay's pool: the data directory's training records less its dev split (ValueError, naming the
    file, for settings or data that cannot be read)."""
    path = out / "settings.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    if not isinstance(settings, dict) or not (data or isinstance(settings.get("data"), str)):
        raise ValueError(f"{path}: names no data directory (give --data)")
    dev = settings.get("dev_records") or 0
    if not isinstance(dev, int) or isinstance(dev, bool) or dev < 0:
        raise ValueError(f"{path}: dev_records must be a whole number >= 0, got {dev!r}")
    return split_dev(read_jsonl(Path(data or settings["data"]) / "train.jsonl"), dev)[0]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="a lasl simulate output directory")
    p.add_argument("--data", type=Path, help="the data directory (default: the one in settings.json)")
    p.add_argument("--chars", default="40000,90000", help="comma-separated budgets in characters labeled")
    args = p.parse_args(argv)
    try:
        budgets = [int(x) for x in args.chars.split(",") if x.strip()]
    except ValueError:
        p.error(f"--chars must be comma-separated integers, got {args.chars!r}")
    if not budgets or min(budgets) <= 0:
        p.error("--chars needs at least one positive budget")
    if not (args.out / "settings.json").is_file():
        p.error(f"{args.out} holds no settings.json: not a lasl simulate output directory")
    try:
        report = entity_yield(collect_rows(args.out), _pool(args.out, args.data), budgets)
    except (DataError, ValueError) as exc:  # ReplayFileError is a ValueError
        p.error(str(exc))
    (args.out / "entity_yield.json").write_text(json.dumps(report, indent=1))
    print(yield_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
