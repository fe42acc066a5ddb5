"""What the loss prediction net's size costs where the backend spends its time: one /predict record and
the pool scoring behind a push, for each LPN size of the paper's Table 6 (``LASL_LPN_LAYERS``).

    .venv/bin/python scripts/lpn_speed.py [--data ../shared/data/ccks2019] [--threads 2] [--out FILE.json]

For ``lpn_layers`` 2 (the paper's), 1 and 0 (pooled tagger features, the paper's "shared encoder"), and
for the tagger alone (no loss net, the lower bound), it prints p50/p95 of one ~400-character record
(``NerModel.predict`` as /predict runs it) and records/s over the first 1,000 training records with
``threads`` scoring workers (best of 3), and the 10,000-task scoring time that follows. The weights are
untrained: a trained model costs the same. The HTTP import of a push comes on top (``lasl bench --server``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lasl_backend.bench import LABELS6, bench_one_record, bench_scoring, load_records  # noqa: E402
from lasl_backend.model import NerModel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ccks2019"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=200, help="one-record repetitions")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # as the backend (LASL_TORCH_THREADS=1): the workers give the parallelism
    records, source = load_records(args.data if args.data.is_dir() else None, args.records)
    texts = [r.text for r in records]
    one_text = min(texts, key=lambda t: abs(len(t) - 400))
    rows = []
    for layers in (2, 1, 0, None):
        name = "tagger only" if layers is None else f"lpn_layers={layers}"
        print(f"[lpn_speed] {name}", file=sys.stderr, flush=True)
        model = NerModel.create(LABELS6, texts=texts, lossnet_kind=None if layers is None else "lpn", lpn_layers=layers or 0)
        one = bench_one_record(model, one_text, args.reps, workers=args.threads)
        pool = bench_scoring(model, texts, 3, workers=args.threads)
        rows.append({
            "lpn_layers": layers,
            "one_record_p50_ms": round(one["p50_ms"], 1),
            "one_record_p95_ms": round(one["p95_ms"], 1),
            "records_per_s": round(pool["records_per_s"], 1),
            "scoring_10k_s": round(10_000 / pool["records_per_s"], 1),
        })
        print(f"[lpn_speed]   one record p50/p95 {one['p50_ms']:.1f}/{one['p95_ms']:.1f} ms; {pool['records_per_s']:.1f} records/s", file=sys.stderr, flush=True)
    report = {
        "data": source, "records": len(texts), "one_record_chars": len(one_text), "threads": args.threads,
        "torch": torch.__version__, "loadavg_1_5_15_at_end": list(os.getloadavg()), "rows": rows,
    }
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
