"""A templated variant of a corpus, to measure the queue's diversity where records are near-copies:
``python -m lasl_backend.devtools.near_copies --data DIR --out DIR [--share 0.2] [--copies 3]``.

Real EMR pools hold many records filled in from one template: the same sections, other dates, doses
and a word or two. A public NER corpus has few of them, so the diversity of the queue cannot show there.
This writes ``train.jsonl`` with, for a random ``share`` of the records, ``copies`` near-copies each:
every digit outside the entities drawn anew, and a few other characters outside the entities replaced by
characters of the same record. The edits keep the length, so every entity keeps its offsets and its
text. ``test.jsonl`` is copied unchanged, so test F1 still scores on the original records. The output
goes where ``--out`` says, never into the repository: corpora under research-only terms stay where the
user keeps them.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path
from typing import Sequence

from ..data import Record, read_jsonl, write_jsonl

__all__ = ["check_variant_dirs", "near_copy", "templated_corpus"]

DIGITS = "0123456789"


def near_copy(record: Record, rng: random.Random, edits: int = 3, suffix: str = "copy") -> Record:
    """``record`` with its digits outside the entities redrawn and ``edits`` other characters outside them
    replaced by characters of the same text; same length, same entities."""
    inside = {i for e in record.entities for i in range(e.start, e.end)}
    chars = list(record.text)
    outside = [i for i, c in enumerate(chars) if i not in inside and not c.isspace()]
    for i in outside:
        if chars[i] in DIGITS:
            chars[i] = rng.choice(DIGITS)
    others = [i for i in outside if chars[i] not in DIGITS]
    pool = [c for c in record.text if not c.isspace()]
    for i in rng.sample(others, min(edits, len(others))):
        chars[i] = rng.choice(pool)
    return Record(id=f"{record.id}-{suffix}", text="".join(chars), entities=list(record.entities))


def templated_corpus(records: Sequence[Record], share: float, copies: int, seed: int = 0) -> list[Record]:
    """The records, then ``copies`` near-copies of each record of a random ``share`` of them."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    if copies < 0:
        raise ValueError(f"copies must be ≥ 0, got {copies}")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(records)), round(share * len(records))))
    extra = [near_copy(records[i], rng, suffix=f"copy{k + 1}") for i in chosen for k in range(copies)]
    return list(records) + extra


def check_variant_dirs(p: argparse.ArgumentParser, data: Path, out: Path) -> None:
    """A corpus variant reads ``data``'s train/test pair and never writes over it."""
    for name in ("train.jsonl", "test.jsonl"):
        if not (data / name).is_file():
            p.error(f"{data / name}: no such file")
    if out.resolve() == data.resolve():
        p.error("--out must differ from --data: the originals are never overwritten")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="a directory with train.jsonl and test.jsonl")
    p.add_argument("--out", required=True, type=Path, help="where the templated train.jsonl and test.jsonl go")
    p.add_argument("--share", type=float, default=0.2, help="share of the training records that get near-copies")
    p.add_argument("--copies", type=int, default=3, help="near-copies of each of those records")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    check_variant_dirs(p, args.data, args.out)
    try:
        records = read_jsonl(args.data / "train.jsonl")
        out = templated_corpus(records, args.share, args.copies, args.seed)
    except ValueError as exc:  # a bad record (with its file and line) or a bad share / count
        p.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out, args.out / "train.jsonl")
    shutil.copyfile(args.data / "test.jsonl", args.out / "test.jsonl")
    print(f"{args.out / 'train.jsonl'}: {len(records)} records and {len(out) - len(records)} near-copies", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
