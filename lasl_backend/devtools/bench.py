"""``lasl bench``: speed and memory numbers on this machine, printed, never asserted.

- scoring: the full active-learning scoring pass over the training records (encoder, then log Z,
  best and worst path and marginals in float64), records/s, and the achieved GFLOP/s as a fraction of
  a large fp32 matmul's GFLOP/s measured in the same run (the machine's roofline);
- crf_kernel: the fused float64 kernel (``kernel``: C, or numpy where the C extension is not built)
  against the same outputs from pytorch-crf (its normaliser, its decode for the best path, its decode on
  negated parameters for the worst path, and marginals as the gradient of its normaliser), on the same
  emissions, and against the numpy kernel;
- training: characters/s of a training step (forward, CRF loss, backward, Adam);
- lasl_round: one simulator round of LASL at 30% labeled (300 labeled + 700 unlabeled records, the
  simulator's fine-tuning settings: 2 epochs, at least 100 steps, Mean Teacher + LPN), timed in its
  three parts: training, scoring the pool (tagger + CRF bounds + LPN) and the test evaluation; with
  ``threads`` ≥ 2 the loss net's backward runs on a second thread (the simulator's ``--threads 2``),
  and the same steps are also timed on one thread;
- one_record / scoring_lpn: the model work behind the backend's /predict and its pool push, with the
  LPN on (every task score needs L_p): latency percentiles of one ~400-character record, and
  records/s over the whole set (× 10 = the 10,000-task push's scoring, without the HTTP import);
  ``--lpn-layers`` sizes that LPN (and lasl_round's);
- lpn_sizes: the same two numbers for each LPN size of the paper's Table 6 (``LASL_LPN_LAYERS`` 2, 1,
  0) and for the tagger alone, so that the cost of the loss net's size is read off one report;
- peak_rss_mb: the process's peak resident memory.

``--device cuda`` runs the models there (the float64 CRF kernel stays on the CPU); the roofline is then
the GPU's fp32 matmul.

Torch threads are the benchmark's to set (``torch_timing.torch_threads``), per section, so that each number
means what it says: the roofline GEMM and the training steps run on ``threads`` torch threads; the scoring
passes on ``threads`` workers of one torch thread each; one record, the CRF kernels and the LASL round on one
torch thread.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

import torch

from ..config import Settings
from ..data import Record, read_jsonl
from ..ner import KnowledgeConfig, NerModel, TrainConfig, resolve_device
from .bench_crf import bench_crf_kernel
from .bench_scoring import bench_lpn_sizes, bench_one_record, bench_scoring, matmul_gflops, roofline_numbers
from .bench_training import bench_lasl_round, bench_training
from .measure import logger
from .payloads import near_400
from .records import default_data_dir, load_records
from .synthetic import LABELS
from .torch_timing import torch_threads

__all__ = ["default_data_dir", "load_records", "run_bench"]


_log = logger("bench")


def run_bench(
    data_dir: Path | None, threads: int = 2, quick: bool = False, server: bool = False, device: str = "cpu", lpn_layers: int | None = None
) -> dict[str, Any]:
    """Every number of the module doc; ``lpn_layers`` sizes the LPN of one_record, scoring_lpn and lasl_round
    (default: the backend's size, ``LASL_LPN_LAYERS``'s default). The run's torch threads are ``threads``;
    the sections that measure one torch thread set it themselves."""
    with torch_threads(threads):
        return _run_bench(data_dir, threads, quick, server, resolve_device(device),
                          Settings.from_env({}).lpn_layers if lpn_layers is None else lpn_layers)


def _run_bench(data_dir: Path | None, threads: int, quick: bool, server: bool, dev: torch.device, layers: int) -> dict[str, Any]:
    reps = 1 if quick else 3
    records, source = load_records(data_dir, 100 if quick else 1000)
    texts = [r.text for r in records]
    _log(f"{len(records)} records from {source}; {threads} threads; device {dev}")
    _log("roofline: fp32 matmul")
    gflops = matmul_gflops(1024 if quick else 2048, device=dev)
    knowledge = TrainConfig().knowledge()  # the model `lasl train` and the backend build by default
    model = NerModel.create(list(LABELS), texts=texts, knowledge=knowledge).to(dev)  # untrained weights cost the same to run
    sections: dict[str, Any] = {"scoring": _scoring_section(model, texts, threads, reps, gflops)}
    sections.update(_lpn_sections(texts, threads, quick, reps, dev, layers, knowledge))
    _log("CRF kernel vs pytorch-crf")
    sections["crf_kernel"] = kernel = bench_crf_kernel(model, texts[: (100 if quick else 1000)], reps)
    _log(f"  {kernel['kernel']} kernel: {kernel['speedup_vs_pytorch_crf']:.1f}x pytorch-crf's speed, {kernel['speedup_vs_numpy_kernel']:.1f}x numpy's")
    _log("training steps")
    sections["training"] = bench_training(records, 10 if quick else 60, dev, threads=threads, knowledge=knowledge)
    _log(f"  {sections['training']['chars_per_s']:.0f} chars/s")
    _log("LASL round at 30% labeled (train with Mean Teacher + LPN, score the pool, evaluate)")
    sections["lasl_round"] = r = bench_lasl_round(records, _test_records(data_dir, quick), threads, quick, device=str(dev), lpn_layers=layers)
    _log(f"  {r['round_s']:.0f} s ({r['steps']} steps at {r['step_s']:.2f} s)")
    report: dict[str, Any] = {
        "loadavg_1_5_15_at_end": list(os.getloadavg()),
        "data": source,
        "threads": threads,
        "device": str(dev) if dev.type != "cuda" else f"{dev} ({torch.cuda.get_device_name(dev)})",
        "torch": torch.__version__,
        "lpn_layers": layers,
        "knowledge": model.student.encoder.spec.get("knowledge", {}),
        **sections,
    }
    if server:
        # imported only here: the serving stack it brings (flask, the store, requests) holds enough objects that
        # the cyclic GC, walking them during predict's Python post-processing, makes the scoring numbers above
        # ~25% slower (measured), so the model benchmarks run without it
        from .bench_server import run_server_bench

        report["server"] = run_server_bench(records, quick=quick)
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report


def _scoring_section(model: NerModel, texts: list[str], threads: int, reps: int, gflops: float) -> dict[str, Any]:
    """The scoring pass of the tagger alone, next to the fp32 matmul roofline (``gflops``, on ``threads``
    torch threads)."""
    _log("scoring pass (encoder + float64 log Z, best/worst path, marginals)")
    scoring = bench_scoring(model, texts, reps, workers=threads)
    scoring.update(roofline_numbers(model, scoring, gflops))
    _log(f"  {scoring['records_per_s']:.1f} records/s, {scoring['roofline_fraction']:.0%} of the matmul roofline")
    return scoring


def _lpn_sections(texts: list[str], threads: int, quick: bool, reps: int, dev: torch.device, layers: int, knowledge: KnowledgeConfig) -> dict[str, Any]:
    """one_record and scoring_lpn with the backend's LPN (what /predict and the pool push compute), and the
    same two numbers for each LPN size."""
    _log("one record and the pool with the LPN (what /predict and the pool push compute)")
    lpn_model = NerModel.create(list(LABELS), texts=texts, lossnet_kind="lpn", lpn_layers=layers, knowledge=knowledge).to(dev)
    one_record = bench_one_record(lpn_model, near_400(texts, 1)[0], 20 if quick else 200, workers=threads)
    scoring_lpn = bench_scoring(lpn_model, texts, reps, workers=threads)
    scoring_lpn["push_10k_scoring_s_estimate"] = 10_000 / scoring_lpn["records_per_s"]
    _log(f"  one {one_record['chars']}-char record p50/p95 {one_record['p50_ms']:.1f}/{one_record['p95_ms']:.1f} ms; "
         f"{scoring_lpn['records_per_s']:.1f} records/s with the LPN")
    _log("one record and the pool for each LPN size (paper Table 6) and the tagger alone")
    lpn_sizes = bench_lpn_sizes(texts, threads, 20 if quick else 100, 1)
    return {"one_record": one_record, "scoring_lpn": scoring_lpn, "lpn_sizes": lpn_sizes}


def _test_records(data_dir: Path | None, quick: bool) -> list[Record]:
    """The test records the LASL round evaluates on: the CCKS test set's first 379 (50 quick), else none."""
    if data_dir is not None and (data_dir / "test.jsonl").is_file():
        return read_jsonl(data_dir / "test.jsonl")[: (50 if quick else 379)]
    return []
