"""Where the time of one /predict record goes: tagger forward, CRF bounds, loss net, on a chosen device.

    python -m lasl_backend.devtools.profile_one_record [--device cuda] [--reps 200] [--chars 400] [--threads 2]

Prints one JSON object: p50/p95 in ms of each part (each part synchronised on a GPU) and of the whole
``NerModel.predict`` with ``workers`` 1 and 2 (2 = the backend's one-record path, both Bi-LSTM
directions at once). The model has untrained weights: the cost is the same as a trained one's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence

import torch

from ..ner import NerModel, resolve_device
from ..ner.batching import collate, length_batches, make_chunks
from .measure import percentiles
from .synthetic import LABELS, make_records
from .torch_timing import sync


def timed(fn: Callable[[], object], reps: int, device: torch.device) -> dict[str, float]:
    """p50/p95 in ms of ``reps`` calls after 5 warm-up calls, each call synchronised on a GPU."""
    for _ in range(5):
        fn()
    ms = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync(device)
        ms.append(1000 * (time.perf_counter() - t))
    return {f"{k}_ms": round(v, 2) for k, v in percentiles(ms, (50, 95)).items()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m lasl_backend.devtools.profile_one_record", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--chars", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of this process")
    return ap.parse_args(argv)


def _parts(model: NerModel, text: str, dev: torch.device) -> tuple[int, dict[str, Callable[[], object]]]:
    """(chunks, the three parts of one record's scoring, each a call on the same prepared inputs)."""
    tagger = model.served
    chunks = make_chunks([text], model.encode, model.max_len)
    (batch,) = [[chunks[i] for i in b] for b in length_batches(chunks, max_batch=64, max_chars=12800)]
    ids, mask, _ = collate(batch, dev)
    with torch.no_grad():
        em, layers = tagger(ids, mask)
        b = tagger.bounds(em, mask, with_marginals=True)
    bounds = torch.stack([b.l_min, b.l_max], dim=1).float()

    def forward() -> None:
        with torch.no_grad():
            tagger(*collate(batch, dev)[:2])

    def lossnet() -> None:
        with torch.no_grad():
            model.lossnet(layers[-1], mask, bounds)  # type: ignore[misc]

    def crf() -> None:
        tagger.bounds(em, mask, with_marginals=True)

    return len(batch), {"tagger_forward": forward, "crf_bounds_float64_cpu": crf, "lossnet_forward": lossnet}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)  # once, at the start of this process
    dev = resolve_device(args.device)
    records = make_records(300, seed=0, mean_chars=418)
    text = min((r.text for r in records), key=lambda t: abs(len(t) - args.chars))
    model = NerModel.create(LABELS, texts=[r.text for r in records], lossnet_kind="lpn").to(dev)
    n_chunks, parts = _parts(model, text, dev)
    out = {
        "device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "torch": torch.__version__,
        "threads": args.threads,
        "chars": len(text),
        "chunks": n_chunks,
        **{name: timed(fn, args.reps, dev) for name, fn in parts.items()},
        "predict_workers_1": timed(lambda: model.predict([text], workers=1), args.reps, dev),
        "predict_workers_2": timed(lambda: model.predict([text], workers=2), args.reps, dev),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
