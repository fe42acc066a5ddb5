"""Which annotated tasks are held back from training to measure each version: a fixed slice chosen by a
hash of the task id, so the same tasks stay held back across runs (and across a restart), F1 of successive
versions is measured on mostly the same records, and a held-back task is never trained on."""

from __future__ import annotations

import hashlib

__all__ = ["holdout_key"]


def holdout_key(task_id: int, seed: int) -> float:
    """A stable uniform number in [0, 1) per task."""
    h = hashlib.sha256(f"lasl-holdout:{seed}:{task_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64

