"""Write a JSONL file's records in every foreign shape ``lasl convert`` reads, read each back with
``--format auto``, and count the records that come back identical (text and entities).

    python -m lasl_backend.devtools.format_roundtrip --data $CCKS/train.jsonl --out /tmp/shapes

The files are written under ``--out`` (outside the repository for data under research-only terms).
The BIO shape drops whitespace characters, as character-level corpora do, so records with whitespace
cannot come back identical in it; the report counts them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

from ..data import Record, read_jsonl
from ..formats import read_records


def _region(r: Record, e) -> dict:  # type: ignore[no-untyped-def]
    return {"start": e.start, "end": e.end, "text": r.text[e.start:e.end], "labels": [e.label]}


def label_studio(recs: list[Record]) -> str:
    return json.dumps([{"id": i, "data": {"text": r.text}, "annotations": [{"id": i, "was_cancelled": False, "result": [
        {"from_name": "label", "to_name": "text", "type": "labels", "value": _region(r, e)} for e in r.entities]}]}
        for i, r in enumerate(recs)], ensure_ascii=False)


def label_studio_min(recs: list[Record]) -> str:
    return json.dumps([{"id": i, "text": r.text, "annotator": "a@example.org", "annotation_id": i,
                        **({"label": [_region(r, e) for e in r.entities]} if r.entities else {})}
                       for i, r in enumerate(recs)], ensure_ascii=False)


def cmeee(recs: list[Record]) -> str:
    return json.dumps([{"text": r.text, "entities": [{"start_idx": e.start, "end_idx": e.end - 1, "type": e.label,
                                                       "entity": r.text[e.start:e.end]} for e in r.entities]} for r in recs],
                      ensure_ascii=False)


def yidu(recs: list[Record]) -> str:
    return "\n".join(json.dumps({"originalText": r.text, "entities": [{"label_type": e.label, "start_pos": e.start,
                                                                     "end_pos": e.end} for e in r.entities]}, ensure_ascii=False)
                     for r in recs)


def cluener(recs: list[Record]) -> str:
    lines = []
    for r in recs:
        label: dict[str, dict[str, list[list[int]]]] = {}
        for e in r.entities:
            label.setdefault(e.label, {}).setdefault(r.text[e.start:e.end], []).append([e.start, e.end - 1])
        lines.append(json.dumps({"text": r.text, "label": label}, ensure_ascii=False))
    return "\n".join(lines)


def bio(recs: list[Record]) -> str:
    blocks = []
    for r in recs:
        tags = ["O"] * len(r.text)
        for e in r.entities:
            tags[e.start:e.end] = [f"B-{e.label}"] + [f"I-{e.label}"] * (e.end - e.start - 1)
        blocks.append("\n".join(f"{c}\t{t}" for c, t in zip(r.text, tags) if not c.isspace()))
    return "\n\n".join(blocks) + "\n"


SHAPES: dict[str, Callable[[list[Record]], str]] = {
    "label-studio JSON": label_studio, "label-studio JSON-MIN": label_studio_min, "CMeEE": cmeee,
    "Yidu-S4K": yidu, "CLUENER": cluener, "BIO": bio}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="a JSONL file of records")
    ap.add_argument("--out", required=True, type=Path, help="where the shapes are written")
    args = ap.parse_args()
    recs = read_jsonl(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    with_space = sum(any(c.isspace() for c in r.text) for r in recs)
    print(f"{len(recs)} records from {args.data}, {with_space} with whitespace")
    for name, shape in SHAPES.items():
        path = args.out / (name.replace(" ", "_") + ".data")
        path.write_text(shape(recs), encoding="utf-8")
        t0 = time.perf_counter()
        loaded = read_records(path)
        same = sum(a.text == b.text and a.entities == b.entities for a, b in zip(recs, loaded.records))
        print(f"{name:22s} read as {loaded.format:12s} {len(loaded.records):6d} records, {same:6d} identical, "
              f"{len(loaded.skipped)} left out, {time.perf_counter() - t0:.2f} s; {'; '.join(loaded.notes)[:90]}")


if __name__ == "__main__":
    main()
