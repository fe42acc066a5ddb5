"""Learning curves of DBS with each LPN size beside least confidence: the active-learning side of
``LASL_LPN_LAYERS`` in one picture (the speed side is ``python -m lasl_backend.devtools.lpn_speed``).

    python -m lasl_backend.sim.compare_lpn_sizes [--results docs/results] [--out docs/results/lpn_sizes_learning_curves.png]

Reads the simulator's ``results.csv`` files under ``--results``: the matrix (``ccks2019``: ``dbs`` with the
paper's 2-layer LPN, and ``lc``) and the runs with ``--lpn-layers 0`` and ``1``. Draws mean ± std over
the seeds that reached each point, and prints the means at 5/10/15/20/25/30%.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: label, results.csv under the results directory, strategy
CURVES = (
    ("DBS, paper LPN (2 Bi-LSTM layers)", "ccks2019/results.csv", "dbs"),
    ("DBS, LPN with 1 layer", "ccks2019-lpn-1layer/results.csv", "dbs"),
    ("DBS, shared-encoder LPN (0 layers)", "ccks2019-lpn-shared/results.csv", "dbs"),
    ("least confidence", "ccks2019/results.csv", "lc"),
)
POINTS = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)


def curve(path: Path, strategy: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(% labeled, mean F1, std F1, how many seeds) over every round some seed of ``strategy`` reached;
    a run still going gives its later points fewer seeds ("1-2 seeds")."""
    by_round: dict[float, list[float]] = {}
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            if r["strategy"] == strategy:
                by_round.setdefault(round(100 * float(r["labeled_fraction"]), 1), []).append(float(r["f1"]))
    pts = sorted(by_round)
    f1 = [np.array(by_round[p]) for p in pts]
    counts = sorted({len(v) for v in f1})
    n = "0" if not counts else f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return np.array(pts), np.array([v.mean() for v in f1]), np.array([v.std() for v in f1]), n


def means_at_points(x: np.ndarray, mean: np.ndarray) -> str:
    """The means at the reported points that the curve reached, as "5%: 0.712  10%: ..."."""
    at = dict(zip(x.tolist(), mean.tolist()))
    return "  ".join(f"{p:.0f}%: {at[p]:.3f}" for p in POINTS if p in at)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m lasl_backend.sim.compare_lpn_sizes", description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("docs/results"), help="directory holding the simulations' folders")
    ap.add_argument("--out", type=Path, default=None, help="the PNG (default RESULTS/lpn_sizes_learning_curves.png)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = args.results / "lpn_sizes_learning_curves.png"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # matplotlib only here: it is the simulator extra's, and curve() is usable without it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for label, rel, strategy in CURVES:
        path = args.results / rel
        if not path.is_file():
            print(f"{label}: no {path}")
            continue
        x, mean, std, n = curve(path, strategy)
        if len(x) == 0:
            continue
        ax.plot(x, mean, marker=".", lw=1.4, label=f"{label} ({n} seed{'' if n == '1' else 's'})")
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        print(f"{label:40s} " + means_at_points(x, mean))
    ax.set_xlabel("% of training records labeled")
    ax.set_ylabel("strict micro F1 on the test records")
    ax.set_title("CCKS 2019: DBS with each loss-prediction-net size (paper Table 6)")
    ax.set_ylim(0.6, 0.82)
    ax.set_xlim(4, 31)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
