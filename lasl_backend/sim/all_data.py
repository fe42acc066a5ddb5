"""The all-data F1 a replay is measured against: the default model trained on every record of the pool.

``lasl simulate --full-f1 train`` trains it once per output directory, before the runs, with the
settings' knowledge options and ``lasl train``'s defaults otherwise (early stopping on a share of the
pool it holds out itself). It scores the test records and the replay's dev split, and keeps both, with
the pool's size, in ``all_data.json``; the stopping report reads them from there. A later invocation on
the same directory reuses the file, so the number never changes under a directory's curves.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_text_atomic
from ..data import read_jsonl

if TYPE_CHECKING:
    from ..ner import TrainConfig
    from .settings import SimSettings

ALL_DATA_FILE = "all_data.json"


def read_all_data(out: Path) -> dict[str, Any] | None:
    """The directory's all-data numbers, or None where they were never trained."""
    path = out / ALL_DATA_FILE
    if not path.is_file():
        return None
    try:
        numbers = json.loads(path.read_text())
    except ValueError:
        raise ValueError(f"{path}: not valid JSON; delete it to train the all-data model again") from None
    if not isinstance(numbers, dict) or not isinstance(numbers.get("test_f1"), float):
        raise ValueError(f"{path}: no test_f1; delete it to train the all-data model again")
    return numbers


def all_data_numbers(settings: SimSettings, out: Path) -> dict[str, Any]:
    """The all-data model's test and dev F1 and the pool's size: read from ``out``, else trained now."""
    known = read_all_data(out)
    if known is not None:
        return known
    from ..ner import train_lasl  # torch: only to train, never to read the file (the stopping report)
    from .replay import f1_of, split_dev  # the replay's own dev draw, so "the pool" is the replay's pool

    data = Path(settings.data)
    pool, dev = split_dev(read_jsonl(data / "train.jsonl"), settings.dev_records)
    test = read_jsonl(data / "test.jsonl")[: settings.max_test or None]
    t0 = time.perf_counter()
    print(f"training the all-data model on the {len(pool)} pool records (once for {out})", file=sys.stderr, flush=True)
    result = train_lasl(pool, config=all_data_config(settings), progress=_progress)
    numbers = {"test_f1": f1_of(result.model, test, settings.threads), "dev_f1": f1_of(result.model, dev, settings.threads) if dev else None,
               "pool_records": len(pool), "test_records": len(test), "steps": result.steps,
               "seconds": round(time.perf_counter() - t0, 1)}
    write_text_atomic(out / ALL_DATA_FILE, json.dumps(numbers, indent=1))
    print(f"all-data F1 {numbers['test_f1']:.4f} on test → {out / ALL_DATA_FILE}", file=sys.stderr, flush=True)
    return numbers


def all_data_config(s: SimSettings) -> TrainConfig:
    """The all-data model's training config: ``TrainConfig``'s defaults with the settings' knowledge options."""
    from ..ner import TrainConfig

    return TrainConfig(encoder=s.encoder, device=s.device, lpn_layers=s.lpn_layers, char_vectors=s.char_vectors,
                       lexicon_sources=s.lexicon_sources, lexicon=s.lexicon, bigrams=s.bigrams, knowledge_cache=s.knowledge_cache)


def _progress(row: dict[str, Any]) -> None:
    dev = f", dev F1 {row['dev_f1']:.4f}" if "dev_f1" in row else ""
    print(f"  all-data model: epoch {row['epoch']}/{row['total_epochs']}, step {row['step']}{dev}, {row['seconds']:.0f} s",
          file=sys.stderr, flush=True)
