"""The package's own JSONL records, read strictly (``data.read_jsonl``)."""

from __future__ import annotations

from pathlib import Path

from ..data import read_jsonl
from .base import Loaded, ReadOptions


def read(path: Path, options: ReadOptions) -> Loaded:
    return Loaded(read_jsonl(path), "jsonl")
