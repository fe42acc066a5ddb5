"""Checkpoint directories: written atomically (``atomic.atomic_directory``), loaded safely.

A checkpoint is a directory (``config.json`` + ``weights.pt`` [+ ``encoder/``]). It is written into a
hidden temporary sibling, every file is fsynced, and only then renamed into place, so a reader (or a
restart after SIGKILL) sees either the old directory or the complete new one, never half of one.
``config.json`` records the SHA-256 of ``weights.pt``; a mismatch on load is an error, not a guess.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

CONFIG = "config.json"
WEIGHTS = "weights.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete or corrupt."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checkpoint(directory: Path, config: dict[str, Any], weights: dict[str, Any]) -> None:
    """Write weights then config (with the weights' hash) into an already-private directory."""
    wpath = directory / WEIGHTS
    torch.save(weights, wpath)
    config = dict(config, weights_sha256=sha256_file(wpath))
    (directory / CONFIG).write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")


def read_checkpoint(directory: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """Config and weights, verified; weights load with ``weights_only=True`` (no pickle execution)."""
    d = Path(directory)
    cpath, wpath = d / CONFIG, d / WEIGHTS
    if not cpath.is_file() or not wpath.is_file():
        raise CheckpointError(f"{d}: not a complete checkpoint (needs {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(cpath.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{d}: unreadable {CONFIG}: {exc}") from None
    if config.get("weights_sha256") != sha256_file(wpath):
        raise CheckpointError(f"{d}: {WEIGHTS} does not match the hash in {CONFIG} (corrupt or partial)")
    try:
        weights = torch.load(wpath, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(f"{d}: cannot load {WEIGHTS}: {exc}") from None
    return config, weights
