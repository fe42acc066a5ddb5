"""Torch threads and GPU synchronisation for measured sections.

The product sets torch threads once at process start (the server's boot, the CLI command, the simulator
worker). A benchmark is a measurement driver instead: each of its sections says how many torch threads its
number is for and sets them with :func:`torch_threads`, so the number keeps its meaning whatever ran before
it in the same process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["sync", "torch_threads"]


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the count it found.

    Scoring with ``workers`` threads is measured under ``torch_threads(1)``: one torch thread per worker, as
    the backend runs. One record likewise: its two Bi-LSTM directions already take the two cores, and an
    intra-op pool on top made it 1.5x slower (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
