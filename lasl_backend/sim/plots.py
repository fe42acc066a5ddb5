"""The learning curves: mean ± std over seeds per strategy against records labeled (the paper's Fig. 4),
with the all-data line and 90%/95%/98% of it; beside it, F1 against characters labeled and against corrections
made to the pre-annotations, since annotation effort follows characters and corrections more than records and
strategies differ in the lengths they pick."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .settings import STRATEGY_MODELS

__all__ = ["Curve", "curves", "plot_curves"]

#: the panels: (row key for x, scale to the axis unit, axis label, title)
PANELS = (
    ("labeled_fraction", 100.0, "% of training records labeled", "F1 by records labeled (the paper's budget)"),
    ("labeled_chars", 1e-3, "thousands of characters labeled", "F1 by characters labeled"),
    ("corrections", 1.0, "corrections to the pre-annotations (add, delete, change)", "F1 by corrections made"),
)


@dataclass
class Curve:
    """One strategy's points, a round each: x per panel (the mean over seeds), the F1's mean and std over
    seeds, and whether every seed has reached the round (a matrix part-way through has rounds that not)."""

    strategy: str
    n_seeds: int
    x: dict[str, np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    full: np.ndarray

    @property
    def label(self) -> str:
        return f"{self.strategy} ({self.n_seeds} seed{'s' if self.n_seeds > 1 else ''}{'' if self.full.all() else '; dotted: fewer'})"


def _plot_order(name: str) -> tuple[int, str]:
    """Strategies in the order of ``STRATEGY_MODELS``, variants after their base; a name this version does not
    know (a run of a newer one sharing the directory) goes last instead of failing the plot."""
    base = name.split("+")[0]
    known = list(STRATEGY_MODELS)
    return (known.index(base) if base in known else len(known), name)


def curves(rows: Sequence[dict[str, Any]]) -> list[Curve]:
    """The plotted data, strategies in the order of ``STRATEGY_MODELS``."""
    out = []
    for name in sorted({r["strategy"] for r in rows}, key=_plot_order):
        by_round: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            if r["strategy"] == name:
                by_round.setdefault(int(r["round"]), []).append(r)
        rounds = sorted(by_round)
        f1 = [np.array([x["f1"] for x in by_round[t]]) for t in rounds]
        counts = np.array([len(v) for v in f1])
        x = {key: np.array([np.mean([r.get(key, np.nan) for r in by_round[t]]) * scale for t in rounds]) for key, scale, _, _ in PANELS}
        out.append(Curve(name, int(counts.max()), x, np.array([v.mean() for v in f1]), np.array([v.std() for v in f1]), counts == counts.max()))
    return out


def plot_curves(rows: Sequence[dict[str, Any]], path: Path, full_f1: float | None) -> None:
    """Draw :func:`curves` into ``path`` (a PNG, replaced atomically); rounds that not every seed has
    reached are drawn dotted."""
    # matplotlib only here: it is the simulator extra's, and the rest of the simulator runs without it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(19, 5.5), dpi=100)
    for c in curves(rows):
        lw = 2.2 if c.strategy.startswith("lasl") else 1.3
        for ax, (key, _, _, _) in zip(axes, PANELS):
            xs, full = c.x[key], c.full
            line = ax.plot(xs[full], c.mean[full], marker="o", ms=3, lw=lw, label=c.label)[0]
            ax.fill_between(xs[full], (c.mean - c.std)[full], (c.mean + c.std)[full], alpha=0.15, color=line.get_color())
            if not full.all():
                ax.plot(xs, c.mean, ls=":", lw=1.0, color=line.get_color())
    for ax, (_, _, xlabel, title) in zip(axes, PANELS):
        if full_f1:
            ax.axhline(full_f1, ls="--", color="k", lw=1, label=f"all data ({full_f1:.3f})")
            ax.axhline(0.98 * full_f1, ls=":", color="gray", lw=1, label="98% of all data")
            ax.axhline(0.95 * full_f1, ls="-.", color="gray", lw=1, label="95% of all data")
            ax.axhline(0.90 * full_f1, ls=(0, (1, 3)), color="silver", lw=1, label="90% of all data")
        ax.set_ylabel("strict micro F1 on the test records")
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Active learning on CCKS 2019, char Bi-LSTM-CRF")
    fig.tight_layout()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
