"""Numbers every benchmark here reports (wall times, percentiles, the machine's load average) and the
tools' progress lines.

Standard library only, so the HTTP load generator imports no torch (``torch_timing`` has the torch side).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence

__all__ = ["best_seconds", "loadavg", "logger", "percentiles", "seconds"]


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def best_seconds(fn: Callable[[], object], reps: int) -> float:
    """The fastest of ``reps`` calls after one warm-up call: the machine's noise only ever adds time."""
    fn()
    return min(seconds(fn) for _ in range(reps))


def percentiles(xs: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """Linear-interpolation percentiles (numpy's default) in the units of ``xs``; NaN for no samples."""
    if not xs:
        return {f"p{q:g}": float("nan") for q in qs}
    s = sorted(xs)
    out = {}
    for q in qs:
        pos = (len(s) - 1) * q / 100
        lo, hi = math.floor(pos), math.ceil(pos)
        out[f"p{q:g}"] = s[lo] + (s[hi] - s[lo]) * (pos - lo)
    return out


def loadavg() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages: on a shared machine, how contended a number is."""
    return [round(x, 2) for x in os.getloadavg()]


def logger(prefix: str, clock: bool = False) -> Callable[[str], None]:
    """A function that prints ``[prefix] msg`` to stderr, flushed, so that stdout keeps only what a tool
    reports; with ``clock``, the time after the prefix (long runs: which step took the minutes)."""

    def log(msg: str) -> None:
        stamp = f" {time.strftime('%H:%M:%S')}" if clock else ""
        print(f"[{prefix}{stamp}] {msg}", file=sys.stderr, flush=True)

    return log
