"""Print the simulator's results as a Markdown table beside the paper's Table 3 and Table 4 rows, then
the active-learning targets checked on the mean over seeds: LASL at least random from 5% to 30% labeled,
at least least confidence at 10%, 20% and 30%, and 95% of the all-data F1 by 15%.

    python -m lasl_backend.sim.results_table docs/results/ccks2019/results.csv [--full-f1 0.8062]

A cell is mean ± std over the seeds that reached that point; when fewer seeds reached it than the
strategy has, the count follows in brackets (runs resume, so a matrix may be part-way through).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

POINTS = [5, 10, 15, 20, 25, 30]
PAPER_TABLE3 = {  # the paper's Table 3: MC-BERT tagger, CCKS 2019, at POINTS % labeled
    "random": [0.223, 0.643, 0.728, 0.761, 0.788, 0.803],
    "lc": [0.449, 0.734, 0.796, 0.813, 0.819, 0.823],
    "tod": [0.368, 0.731, 0.777, 0.804, 0.812, 0.824],
    "loss": [0.484, 0.735, 0.768, 0.788, 0.805, 0.810],
    "mlp": [0.449, 0.740, 0.794, 0.813, 0.821, 0.822],
    "lpn": [0.485, 0.752, 0.792, 0.802, 0.813, 0.815],
    "dbs": [0.478, 0.766, 0.804, 0.814, 0.824, 0.827],
    "lasl": [0.508, 0.771, 0.806, 0.819, 0.826, 0.832],
}
#: the paper's Table 4: the LSTM-CRF tagger, at the points it reports
PAPER_TABLE4_LSTM = {"random": {5: 0.171, 10: 0.633, 20: 0.754, 30: 0.791}, "lasl": {5: 0.523, 10: 0.766, 20: 0.815, 30: 0.824}}

F1 = dict[str, dict[int, dict[str, float]]]  # strategy → percent labeled → seed → F1


def load(path: str) -> F1:
    """F1 by strategy, percent labeled (rounded to an integer) and seed, from a simulator results.csv."""
    by: F1 = defaultdict(lambda: defaultdict(dict))
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            by[r["strategy"]][round(100 * float(r["labeled_fraction"]))][r["seed"]] = float(r["f1"])
    return by


def cell(values: dict[str, float], n_seeds: int) -> str:
    """mean ± std of the seeds' F1, with the count in brackets when fewer than ``n_seeds`` reached the point."""
    if not values:
        return "–"
    v = np.array(list(values.values()))
    more = f" ({len(v)})" if len(v) < n_seeds else ""
    return f"{v.mean():.3f} ± {v.std():.3f}{more}"


def table(by: F1) -> None:
    """The Markdown table: each strategy's row, then the paper's rows for it."""
    print("| strategy | seeds | " + " | ".join(f"{p}%" for p in POINTS) + " |")
    print("|---|---|" + "---|" * len(POINTS))
    for name in PAPER_TABLE3:
        if name not in by:
            continue
        n_seeds = len({s for pts in by[name].values() for s in pts})
        cells = [cell(by[name].get(p, {}), n_seeds) for p in POINTS]
        print(f"| **{name}** (ours, char Bi-LSTM-CRF) | {n_seeds} | " + " | ".join(cells) + " |")
        print(f"| {name} (paper Table 3, MC-BERT) | | " + " | ".join(f"{x:.3f}" for x in PAPER_TABLE3[name]) + " |")
        if name in PAPER_TABLE4_LSTM:
            t4 = PAPER_TABLE4_LSTM[name]
            print(f"| {name} (paper Table 4, LSTM-CRF) | | " + " | ".join(f"{t4[p]:.3f}" if p in t4 else "–" for p in POINTS) + " |")


def compare(by: F1, a: str, b: str, p: int) -> str:
    """a against b at p%: the means over each one's seeds, and the difference on the seeds both have."""
    fa, fb = by.get(a, {}).get(p, {}), by.get(b, {}).get(p, {})
    if not fa or not fb:
        return f"{p}%: not reached"
    ma, mb = np.mean(list(fa.values())), np.mean(list(fb.values()))
    shared = sorted(set(fa) & set(fb))
    diffs = [fa[s] - fb[s] for s in shared]
    verdict = "met" if ma >= mb else "missed"
    paired = ", ".join(f"{d:+.3f}" for d in diffs)
    return f"{p}%: {verdict} ({ma:.3f} over {len(fa)} seed(s) vs {mb:.3f} over {len(fb)}; per shared seed {paired})"


def first_reaching(by: F1, name: str, level: float) -> str:
    """Per seed, the first percent labeled at which ``name`` reaches ``level`` (or the last point it reached)."""
    seeds = sorted({s for pts in by.get(name, {}).values() for s in pts})
    out = []
    for s in seeds:
        hit = [p for p in sorted(by[name]) if by[name][p].get(s, -1.0) >= level]
        reached = max(p for p in by[name] if s in by[name][p])
        out.append(f"seed {s}: {hit[0]}%" if hit else f"seed {s}: not by {reached}%")
    return ", ".join(out)


def targets(by: F1, full_f1: float | None) -> None:
    """Each target, met or missed, on the mean over the seeds that reached its point."""
    print()
    print("Targets, on the mean over the seeds that reached each point:")
    print("- LASL >= random, 5% to 30%:")
    for p in POINTS:
        print(f"  - {compare(by, 'lasl', 'random', p)}")
    print("- LASL >= least confidence at 10%, 20%, 30%:")
    for p in (10, 20, 30):
        print(f"  - {compare(by, 'lasl', 'lc', p)}")
    if full_f1:
        level = 0.95 * full_f1
        print(f"- 95% of the all-data F1 ({level:.3f}) by 15%, first point reached per seed:")
        for name in ("lasl", "lc", "random"):
            if name in by:
                print(f"  - {name}: {first_reaching(by, name, level)}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m lasl_backend.sim.results_table", description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="?", default="docs/results/ccks2019/results.csv")
    ap.add_argument("--full-f1", type=float, default=None, help="the all-data F1, for the 95%% target")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        by = load(args.csv)
    except (OSError, KeyError, ValueError) as exc:
        print(f"results_table: {args.csv}: cannot read a simulator results.csv ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    table(by)
    targets(by, args.full_f1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
