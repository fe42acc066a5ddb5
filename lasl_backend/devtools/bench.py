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
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchcrf import CRF

from ..ner.batching import collate, length_batches, make_chunks
from ..config import Settings
from ..data import Record, read_jsonl
from ..ner import DEFAULT_LPN_LAYERS, NerModel

LABELS6 = ["疾病和诊断", "影像检查", "实验室检验", "手术", "药物", "解剖部位"]


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(n: int = 2048, reps: int = 5, device: torch.device = torch.device("cpu")) -> float:
    """fp32 GEMM throughput: the roofline the scoring pass is compared with."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def bilstm_flops_per_char(model: NerModel) -> float:
    """Multiply-adds ×2 of the encoder and emission layer per character (the LSTM dominates)."""
    enc = model.student.encoder
    spec = enc.spec
    if spec["kind"] != "char":
        return float("nan")
    e, h = spec["emb_dim"], spec["hidden"]
    lstm = 2 * 2 * 4 * h * (e + h)  # two directions, 4 gates, input + recurrent
    emit = 2 * 2 * h * model.scheme.num_tags
    return float(lstm + emit)


def default_data_dir() -> Path | None:
    """The CCKS 2019 data beside the checkout (``../shared/data/ccks2019``), if it is there."""
    for p in (Path("../shared/data/ccks2019"), Path(__file__).resolve().parents[3] / "shared/data/ccks2019"):
        if (p / "train.jsonl").is_file():
            return p
    return None


def load_records(data_dir: Path | None, n: int) -> tuple[list[Record], str]:
    if data_dir is not None and (data_dir / "train.jsonl").is_file():
        return read_jsonl(data_dir / "train.jsonl")[:n], str(data_dir / "train.jsonl")
    from .synthetic import make_records

    return make_records(n, seed=0, mean_chars=418), "generated (synthetic.make_records, CCKS-like lengths)"


def bench_scoring(model: NerModel, texts: list[str], reps: int, workers: int) -> dict[str, Any]:
    model.predict(texts[:32])  # warm-up
    best = float("inf")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers assume one torch thread each
    try:
        for _ in range(reps):
            t = time.perf_counter()
            model.predict(texts, workers=workers)
            best = min(best, time.perf_counter() - t)
    finally:
        torch.set_num_threads(before)
    n_chars = sum(len(t) for t in texts)
    return {"records": len(texts), "chars": n_chars, "workers": workers, "seconds": best, "records_per_s": len(texts) / best, "chars_per_s": n_chars / best}


def bench_one_record(model: NerModel, text: str, n: int, workers: int) -> dict[str, Any]:
    """Latency of scoring one record as /predict does (entities, L_min, L_max, L_p), without HTTP.

    With one torch thread, as the backend runs (``LASL_TORCH_THREADS=1``): the two Bi-LSTM directions
    already take the two cores, and an intra-op pool on top made this 1.5x slower (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(3):
            model.predict([text], workers=workers)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            model.predict([text], workers=workers)
            times.append(time.perf_counter() - t)
    finally:
        torch.set_num_threads(before)
    from .bench_server import percentiles

    return {"chars": len(text), "n": n, **{f"{k}_ms": 1000 * v for k, v in percentiles(times).items()}}


def bench_lpn_sizes(texts: list[str], threads: int, one_reps: int, pool_reps: int) -> list[dict[str, Any]]:
    """One record's latency and pool records/s for LPN sizes 2, 1 and 0 and the tagger alone
    (untrained weights: the same cost as trained ones, bar the decoding of spurious entities)."""
    one_text = min(texts, key=lambda t: abs(len(t) - 400))
    rows = []
    for layers in (2, 1, 0, None):
        _log(f"  loss net: {'none (tagger alone)' if layers is None else f'LPN with {layers} Bi-LSTM layers'}")
        model = NerModel.create(LABELS6, texts=texts, lossnet_kind=None if layers is None else "lpn", lpn_layers=layers or 0)
        one = bench_one_record(model, one_text, one_reps, workers=threads)
        pool = bench_scoring(model, texts, pool_reps, workers=threads)
        rows.append({
            "lpn_layers": layers,
            "one_record_chars": one["chars"],
            "one_record_p50_ms": round(one["p50_ms"], 1),
            "one_record_p95_ms": round(one["p95_ms"], 1),
            "records_per_s": round(pool["records_per_s"], 1),
            "scoring_10k_s": round(10_000 / pool["records_per_s"], 1),
        })
    return rows


def bench_crf_kernel(model: NerModel, texts: list[str], reps: int) -> dict[str, Any]:
    from .. import crf as crfmod

    tagger = model.served
    chunks = make_chunks(texts, model.encode, model.max_len)
    batches = [collate([chunks[i] for i in b], model.device) for b in length_batches(chunks, max_batch=64, max_chars=12800)]
    with torch.no_grad():  # both CRFs run on the CPU
        inputs = [(tagger(ids, mask)[0].double().cpu(), mask.cpu()) for ids, mask, _ in batches]
    K = model.scheme.num_tags
    ref = CRF(K, batch_first=True).double()
    neg = CRF(K, batch_first=True).double()
    with torch.no_grad():
        for name in ("start_transitions", "end_transitions", "transitions"):
            getattr(ref, name).copy_(getattr(tagger.crf, name))
            getattr(neg, name).copy_(-getattr(tagger.crf, name))
    params = (ref.start_transitions, ref.end_transitions, ref.transitions)

    def ours(kernel: str = "auto") -> None:
        for em, mask in inputs:
            crfmod.crf_bounds(em, mask, *params, with_marginals=True, kernel=kernel)

    def theirs() -> None:
        for em, mask in inputs:
            e = em.detach().requires_grad_(True)
            log_z = ref._compute_normalizer(e.transpose(0, 1), mask.transpose(0, 1))
            (marg,) = torch.autograd.grad(log_z.sum(), e)  # marginals = d log Z / d emissions
            with torch.no_grad():
                ref.decode(em, mask=mask)
                neg.decode(-em, mask=mask)

    def timeit(fn) -> float:
        fn()
        return min(_time(fn) for _ in range(reps))

    # the two agree (checked here as well as in the tests)
    em, mask = inputs[0]
    r = crfmod.crf_bounds(em, mask, *params)
    with torch.no_grad():
        lz = ref._compute_normalizer(em.transpose(0, 1), mask.transpose(0, 1))
    assert torch.allclose(r.log_z, lz, atol=1e-8), "kernel and pytorch-crf disagree on log Z"
    # all sides on one thread: on a busy machine a torch OpenMP pool spinning against other processes would
    # make pytorch-crf look far slower than it is
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t_ours, t_ref = timeit(ours), timeit(theirs)
        t_numpy = timeit(lambda: ours("numpy"))
    finally:
        torch.set_num_threads(before)
    return {
        "chunks": len(chunks), "threads": 1, "kernel": crfmod.kernel_name(), "ours_s": t_ours, "numpy_kernel_s": t_numpy,
        "pytorch_crf_s": t_ref, "speedup_vs_pytorch_crf": t_ref / t_ours, "speedup_vs_numpy_kernel": t_numpy / t_ours,
    }


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_training(records: list[Record], steps: int, device: torch.device = torch.device("cpu")) -> dict[str, Any]:
    from ..ner.spans import LabelScheme

    model = NerModel.create(LABELS6, texts=[r.text for r in records]).to(device)
    scheme: LabelScheme = model.scheme
    chunks = make_chunks([r.text for r in records], model.encode, 200, [[e for e in r.entities if e.label in LABELS6] for r in records], scheme)
    batches = length_batches(chunks, max_batch=16, rng=np.random.default_rng(0))
    tagger = model.student
    tagger.train()
    opt = torch.optim.Adam(tagger.parameters(), lr=2e-3)
    chars = 0
    t = time.perf_counter()
    for i in range(steps):
        ids, mask, tags = collate([chunks[j] for j in batches[i % len(batches)]], device)
        em, _ = tagger(ids, mask)
        loss = tagger.nll(em, tags, mask).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        chars += int(mask.sum())
    _sync(device)
    dt = time.perf_counter() - t
    return {"steps": steps, "batch": 16, "chars": chars, "seconds": dt, "chars_per_s": chars / dt, "step_ms": 1000 * dt / steps}


def bench_lasl_round(records: list[Record], test: list[Record], threads: int, quick: bool, device: str = "cpu", lpn_layers: int = DEFAULT_LPN_LAYERS) -> dict[str, Any]:
    """The cost of a LASL simulator round at 30% labeled (see the module doc)."""
    from ..ner import TrainConfig, train_lasl

    rng = np.random.default_rng(0)
    order = rng.permutation(len(records))
    n_lab = 30 if quick else 300
    lab = [records[i] for i in order[:n_lab]]
    pool = [records[i].text for i in order[n_lab:]]
    labels = sorted({e.label for r in records for e in r.entities} | set(LABELS6))

    def train(lpn_thread: bool, steps: int | None) -> tuple[Any, float, int]:
        cfg = TrainConfig(max_epochs=2, min_steps=100, max_steps=steps, dev_fraction=0.0, seed=0, mean_teacher=True,
                          lossnet="lpn", patience=10**6, lpn_thread=lpn_thread, device=device,
                          lpn_layers=lpn_layers)
        t = time.perf_counter()
        res = train_lasl(lab, pool, labels=labels, config=cfg)
        return res.model, time.perf_counter() - t, res.steps

    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # one torch thread per Python thread: the LPN's helper thread, the scoring workers
    out: dict[str, Any] = {"labeled": len(lab), "unlabeled": len(pool), "test": len(test), "threads": threads}
    model, train_s, steps = train(threads >= 2, 10 if quick else None)
    out.update(train_s=train_s, steps=steps, step_s=train_s / max(steps, 1))
    if threads >= 2:  # the same run's first steps on one thread, for the speed-up
        n1 = 5 if quick else 30
        _, t1, s1 = train(False, n1)
        out["one_thread_step_s"] = t1 / max(s1, 1)
        out["lpn_thread_speedup"] = out["one_thread_step_s"] / out["step_s"]
    t = time.perf_counter()
    model.predict(pool, workers=threads)
    out["score_pool_s"] = time.perf_counter() - t
    t = time.perf_counter()
    model.predict([r.text for r in test], with_lossnet=False, workers=threads)
    out["test_eval_s"] = time.perf_counter() - t
    out["round_s"] = out["train_s"] + out["score_pool_s"] + out["test_eval_s"]
    torch.set_num_threads(threads_before)
    return out


def run_bench(
    data_dir: Path | None, threads: int = 2, quick: bool = False, server: bool = False, device: str = "cpu", lpn_layers: int = Settings().lpn_layers
) -> dict[str, Any]:
    """Every number of the module doc; ``lpn_layers`` sizes the LPN of one_record, scoring_lpn and lasl_round
    (default: the backend's size, ``LASL_LPN_LAYERS``'s default)."""
    from ..ner import resolve_device

    dev = resolve_device(device)
    torch.set_num_threads(threads)  # the roofline GEMM uses all threads; the scoring pass uses as many workers
    n = 100 if quick else 1000
    reps = 1 if quick else 3
    records, source = load_records(data_dir, n)
    texts = [r.text for r in records]
    _log(f"{len(records)} records from {source}; {threads} threads; device {dev}")
    _log("roofline: fp32 matmul")
    gflops = matmul_gflops(1024 if quick else 2048, device=dev)
    model = NerModel.create(LABELS6, texts=texts).to(dev)  # untrained weights cost the same to run
    _log("scoring pass (encoder + float64 log Z, best/worst path, marginals)")
    scoring = bench_scoring(model, texts, reps, workers=threads)
    flops = bilstm_flops_per_char(model) * scoring["chars"]
    scoring["achieved_gflops"] = flops / scoring["seconds"] / 1e9
    scoring["roofline_gflops"] = gflops
    scoring["roofline_fraction"] = scoring["achieved_gflops"] / gflops
    scoring["roofline_records_per_s"] = gflops * 1e9 / (bilstm_flops_per_char(model) * scoring["chars"] / len(texts))
    _log(f"  {scoring['records_per_s']:.1f} records/s, {scoring['roofline_fraction']:.0%} of the matmul roofline")
    _log("one record and the pool with the LPN (what /predict and the pool push compute)")
    lpn_model = NerModel.create(LABELS6, texts=texts, lossnet_kind="lpn", lpn_layers=lpn_layers).to(dev)
    one_text = min(texts, key=lambda t: abs(len(t) - 400))
    one_record = bench_one_record(lpn_model, one_text, 20 if quick else 200, workers=threads)
    scoring_lpn = bench_scoring(lpn_model, texts, reps, workers=threads)
    scoring_lpn["push_10k_scoring_s_estimate"] = 10_000 / scoring_lpn["records_per_s"]
    _log(f"  one {one_record['chars']}-char record p50/p95 {one_record['p50_ms']:.1f}/{one_record['p95_ms']:.1f} ms; "
         f"{scoring_lpn['records_per_s']:.1f} records/s with the LPN")
    _log("one record and the pool for each LPN size (paper Table 6) and the tagger alone")
    lpn_sizes = bench_lpn_sizes(texts, threads, 20 if quick else 100, 1)
    _log("CRF kernel vs pytorch-crf")
    kernel = bench_crf_kernel(model, texts[: (100 if quick else 1000)], reps)
    _log(f"  {kernel['kernel']} kernel: {kernel['speedup_vs_pytorch_crf']:.1f}x pytorch-crf's speed, {kernel['speedup_vs_numpy_kernel']:.1f}x numpy's")
    _log("training steps")
    training = bench_training(records, 10 if quick else 60, dev)
    _log(f"  {training['chars_per_s']:.0f} chars/s")
    test: list[Record] = []
    if data_dir is not None and (data_dir / "test.jsonl").is_file():
        test = read_jsonl(data_dir / "test.jsonl")[: (50 if quick else 379)]
    _log("LASL round at 30% labeled (train with Mean Teacher + LPN, score the pool, evaluate)")
    lasl_round = bench_lasl_round(records, test, threads, quick, device=str(dev), lpn_layers=lpn_layers)
    _log(f"  {lasl_round['round_s']:.0f} s ({lasl_round['steps']} steps at {lasl_round['step_s']:.2f} s)")
    report: dict[str, Any] = {
        "loadavg_1_5_15_at_end": list(os.getloadavg()),
        "data": source,
        "threads": threads,
        "device": str(dev) if dev.type != "cuda" else f"{dev} ({torch.cuda.get_device_name(dev)})",
        "torch": torch.__version__,
        "lpn_layers": lpn_layers,
        "scoring": scoring,
        "one_record": one_record,
        "scoring_lpn": scoring_lpn,
        "lpn_sizes": lpn_sizes,
        "crf_kernel": kernel,
        "training": training,
        "lasl_round": lasl_round,
    }
    if server:
        from .bench_server import run_server_bench

        report["server"] = run_server_bench(records, quick=quick)
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report
