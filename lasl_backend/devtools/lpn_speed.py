"""What the loss prediction net's size costs where the backend spends its time: one /predict record and
the pool scoring behind a push, for each LPN size of the paper's Table 6 (``LASL_LPN_LAYERS``).

    python -m lasl_backend.devtools.lpn_speed [--data ../shared/data/ccks2019] [--threads 2] [--out FILE.json]

For ``lpn_layers`` 2 (the paper's), 1 and 0 (pooled tagger features, the paper's "shared encoder"), and
for the tagger alone (no loss net, the lower bound), it prints p50/p95 of one ~400-character record
(``NerModel.predict`` as /predict runs it) and records/s over the first 1,000 training records with
``threads`` scoring workers of one torch thread each (best of 3), and the 10,000-task scoring time that
follows. The weights are untrained: a trained model costs the same. The HTTP import of a push comes on top
(``bench_server``). ``lasl bench`` reports the same rows (``lpn_sizes``, best of 1) beside its other numbers.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .bench_scoring import bench_lpn_sizes
from .records import load_records


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m lasl_backend.devtools.lpn_speed", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ccks2019"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=200, help="one-record repetitions")
    ap.add_argument("--out", type=Path, default=None)
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # once, at the start of this process: one torch thread, as the backend runs
    records, source = load_records(args.data if args.data.is_dir() else None, args.records)
    rows = bench_lpn_sizes([r.text for r in records], args.threads, args.reps, 3)
    report = {
        "data": source, "records": len(records), "threads": args.threads,
        "torch": torch.__version__, "loadavg_1_5_15_at_end": list(os.getloadavg()), "rows": rows,
    }
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
