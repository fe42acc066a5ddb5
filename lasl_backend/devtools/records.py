"""The benchmarks' records: the CCKS 2019 training data where it lies beside the checkout, else synthetic
records of CCKS-like lengths (the data is research-only and never enters the repository)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data import Record, read_jsonl
from .synthetic import make_records

__all__ = ["default_data_dir", "load_records", "pad_with_synthetic"]


def default_data_dir() -> Path | None:
    """``../shared/data/ccks2019`` from the current directory, else beside this source checkout (an editable
    install); None where neither holds a train.jsonl."""
    for p in (Path("../shared/data/ccks2019"), Path(__file__).resolve().parents[3] / "shared/data/ccks2019"):
        if (p / "train.jsonl").is_file():
            return p
    return None


def load_records(data_dir: Path | None, n: int) -> tuple[list[Record], str]:
    """The first ``n`` records of ``data_dir/train.jsonl`` if it exists, else ``n`` synthetic ones; with
    where they came from."""
    if data_dir is not None and (data_dir / "train.jsonl").is_file():
        return read_jsonl(data_dir / "train.jsonl")[:n], str(data_dir / "train.jsonl")
    return make_records(n, seed=0, mean_chars=418), "generated (synthetic.make_records, CCKS-like lengths)"


def pad_with_synthetic(records: Sequence[Record], n: int, seed: int) -> list[Record]:
    """``n`` records: the first ``n`` given ones, then synthetic ones of CCKS-like length if they are fewer."""
    out = list(records[:n])
    if len(out) < n:
        out += make_records(n - len(out), seed=seed, mean_chars=418)
    return out
