"""A variant of a corpus whose records vary widely in length, to measure the queue where they do:
``python -m lasl_backend.devtools.merged_records --data DIR --out DIR [--max-group 4] [--seed 0]``.

EMR pools mix short notes with discharge summaries many times longer. In a corpus of records of alike
lengths (CCKS 2019: 80% within 235–604 characters) a ranking per character has little room to prefer one
length over another. This writes ``train.jsonl`` with the training records shuffled and joined, a random
1 to ``--max-group`` at a time, into documents (a newline between two records; every entity keeps its
text, its offsets shifted). ``test.jsonl`` is copied unchanged, so test F1 still scores the original
records. The output goes where ``--out`` says, never into the repository.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path
from typing import Sequence

from ..data import Entity, Record, read_jsonl, write_jsonl
from .near_copies import check_variant_dirs

__all__ = ["join_records", "merged_corpus"]

SEPARATOR = "\n"


def join_records(records: Sequence[Record], rid: str) -> Record:
    """One document of ``records`` in order, a newline between two, each entity shifted to its place."""
    text, entities = "", []
    for r in records:
        if text:
            text += SEPARATOR
        entities += [Entity(e.start + len(text), e.end + len(text), e.label) for e in r.entities]
        text += r.text
    return Record(id=rid, text=text, entities=entities)


def merged_corpus(records: Sequence[Record], max_group: int, seed: int = 0) -> list[Record]:
    """The records shuffled and joined into documents of 1 to ``max_group`` records each (uniform)."""
    if max_group < 1:
        raise ValueError(f"max_group must be ≥ 1, got {max_group}")
    rng = random.Random(seed)
    order = list(records)
    rng.shuffle(order)
    docs: list[Record] = []
    while order:
        n = rng.randint(1, max_group)
        group, order = order[:n], order[n:]
        docs.append(join_records(group, "+".join(r.id for r in group)))
    return docs


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="a directory with train.jsonl and test.jsonl")
    p.add_argument("--out", required=True, type=Path, help="where the merged train.jsonl and the test.jsonl go")
    p.add_argument("--max-group", type=int, default=4, help="the most records joined into one document")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    check_variant_dirs(p, args.data, args.out)
    try:
        docs = merged_corpus(read_jsonl(args.data / "train.jsonl"), args.max_group, args.seed)
    except ValueError as exc:  # a bad record (with its file and line) or a bad group size
        p.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(docs, args.out / "train.jsonl")
    shutil.copyfile(args.data / "test.jsonl", args.out / "test.jsonl")
    lengths = sorted(len(d.text) for d in docs)
    print(f"{args.out / 'train.jsonl'}: {len(docs)} documents of {lengths[0]}–{lengths[-1]} characters "
          f"(median {lengths[len(lengths) // 2]})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
