"""Print the simulator's results as a Markdown table beside the paper's Table 3 and Table 4 rows.

    .venv/bin/python scripts/results_table.py docs/results/ccks2019/results.csv
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict

import numpy as np

POINTS = [5, 10, 15, 20, 25, 30]
PAPER_TABLE3 = {  # MC-BERT tagger, CCKS 2019 (METHOD.md)
    "random": [0.223, 0.643, 0.728, 0.761, 0.788, 0.803],
    "lc": [0.449, 0.734, 0.796, 0.813, 0.819, 0.823],
    "tod": [0.368, 0.731, 0.777, 0.804, 0.812, 0.824],
    "loss": [0.484, 0.735, 0.768, 0.788, 0.805, 0.810],
    "mlp": [0.449, 0.740, 0.794, 0.813, 0.821, 0.822],
    "lpn": [0.485, 0.752, 0.792, 0.802, 0.813, 0.815],
    "dbs": [0.478, 0.766, 0.804, 0.814, 0.824, 0.827],
    "lasl": [0.508, 0.771, 0.806, 0.819, 0.826, 0.832],
}
PAPER_TABLE4_LSTM = {"random": {5: 0.171, 10: 0.633, 20: 0.754, 30: 0.791}, "lasl": {5: 0.523, 10: 0.766, 20: 0.815, 30: 0.824}}


def main(path: str) -> None:
    rows = list(csv.DictReader(open(path)))
    by: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    seeds: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        pct = round(100 * float(r["labeled_fraction"]))
        by[r["strategy"]][pct].append(float(r["f1"]))
        seeds[r["strategy"]].add(r["seed"])
    print("| strategy | seeds | " + " | ".join(f"{p}%" for p in POINTS) + " |")
    print("|---|---|" + "---|" * len(POINTS))
    for name in PAPER_TABLE3:
        if name not in by:
            continue
        cells = []
        for p in POINTS:
            v = by[name].get(p)
            cells.append(f"{np.mean(v):.3f} ± {np.std(v):.3f}" if v else "–")
        print(f"| **{name}** (ours, char Bi-LSTM-CRF) | {len(seeds[name])} | " + " | ".join(cells) + " |")
        print(f"| {name} (paper Table 3, MC-BERT) | | " + " | ".join(f"{x:.3f}" for x in PAPER_TABLE3[name]) + " |")
        if name in PAPER_TABLE4_LSTM:
            t4 = PAPER_TABLE4_LSTM[name]
            print(f"| {name} (paper Table 4, LSTM-CRF) | | " + " | ".join(f"{t4[p]:.3f}" if p in t4 else "–" for p in POINTS) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/results/ccks2019/results.csv")
