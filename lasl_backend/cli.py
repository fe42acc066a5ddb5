"""The ``lasl`` command: train, evaluate, bench, simulate, serve.

Errors the user can fix (a missing file, a bad record, a bad option) print one line on stderr and
exit with status 2; they never end in a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .config import Settings
from .data import DataError, read_jsonl

log = logging.getLogger("lasl")


class UsageError(Exception):
    """A problem with the command line or its inputs, reported as one line."""


def _default_data_dir() -> Path | None:
    for p in (Path("../shared/data/ccks2019"), Path(__file__).resolve().parents[2] / "shared/data/ccks2019"):
        if (p / "train.jsonl").is_file():
            return p
    return None


def cmd_train(args: argparse.Namespace) -> int:
    from .ner import resolve_device
    from .ner import TrainConfig, train_lasl

    train = read_jsonl(args.train)
    dev = read_jsonl(args.dev) if args.dev else None
    cfg = TrainConfig(
        max_epochs=args.epochs,
        seed=args.seed,
        encoder=args.encoder,
        lr=args.lr,
        batch_size=args.batch_size,
        patience=args.patience,
        dev_fraction=args.dev_fraction,
        max_len=args.max_len,
        mean_teacher=args.mean_teacher,
        lossnet=args.lossnet,
        lpn_layers=args.lpn_layers,
        device=args.device,
    )
    if args.threads:  # torch threads are the process's, set once before the run
        import torch

        torch.set_num_threads(args.threads)
    resolve_device(args.device)  # before the data is chunked: a clear error for a GPU that is not there
    print(f"training on {len(train)} records from {args.train}" + (f", dev {len(dev)} from {args.dev}" if dev else f", dev {cfg.dev_fraction:.0%} held out"), file=sys.stderr)

    def progress(row: dict[str, Any]) -> None:
        dev_s = f" dev F1 {row['dev_f1']:.4f}" if "dev_f1" in row else ""
        print(f"epoch {row['epoch']:3d}/{row['total_epochs']} step {row['step']:6d} loss {row['loss']:9.3f}{dev_s} {row['seconds']:6.1f}s", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    result = train_lasl(train, labels=None, config=cfg, dev=dev, progress=progress)
    result.model.meta["train_seconds"] = round(time.perf_counter() - t0, 1)
    result.model.save(args.out)
    summary = {"out": str(args.out), "dev_f1": result.dev_f1, "served": result.served, "steps": result.steps, "seconds": round(result.seconds, 1)}
    print(json.dumps(summary), file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .ner import CheckpointError
    from .metrics import entity_prf
    from .ner import NerModel

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        model = NerModel.load(args.model, device=args.device)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    data = read_jsonl(args.data)
    t0 = time.perf_counter()
    preds = model.predict([r.text for r in data], with_lossnet=False)
    report = entity_prf([r.entities for r in data], [p.entities for p in preds])  # type: ignore[misc]
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        m = report["micro"]
        print(f"{len(data)} records in {time.perf_counter() - t0:.1f}s")
        print(f"{'label':<12} {'P':>7} {'R':>7} {'F1':>7} {'support':>8}")
        for lab, v in report["per_label"].items():
            print(f"{lab:<12} {v['precision']:7.4f} {v['recall']:7.4f} {v['f1']:7.4f} {v['support']:8d}")
        print(f"{'micro':<12} {m['precision']:7.4f} {m['recall']:7.4f} {m['f1']:7.4f} {m['support']:8d}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .devtools.bench import run_bench

    data_dir = Path(args.data) if args.data else _default_data_dir()
    report = run_bench(data_dir, threads=args.threads, quick=args.quick, server=args.server, device=args.device, lpn_layers=args.lpn_layers)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from .sim.simulate import main_from_args

    return main_from_args(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serving import serve

    serve(args.host, args.port, threads=args.threads, log_level=args.log_level)
    return 0


LPN_LAYERS_HELP = ("the LPN's Bi-LSTM layers (paper Table 6): 2 = the paper's serial encoder, 1 or 3; "
                   "0 = its shared encoder (pooled tagger features), which scores about 3x faster on a CPU (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lasl", description="Chinese EMR NER with LASL active learning, served to Label Studio")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a tagger on a JSONL file")
    t.add_argument("--train", required=True, type=Path, help="JSONL with id, text, entities")
    t.add_argument("--out", required=True, type=Path, help="checkpoint directory (written atomically)")
    t.add_argument("--dev", type=Path, help="JSONL dev set for early stopping (default: hold out --dev-fraction)")
    t.add_argument("--dev-fraction", type=float, default=0.1)
    t.add_argument("--encoder", default="char", help="'char' (from scratch) or a local directory / hub id of a BERT-like model")
    t.add_argument("--epochs", type=int, default=40, help="maximum epochs (early stopping on dev F1)")
    t.add_argument("--patience", type=int, default=5)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--max-len", type=int, default=200, help="chunk length in characters")
    t.add_argument("--mean-teacher", action="store_true", help="Mean-Teacher training (needs no extra data: uses the training text)")
    t.add_argument("--lossnet", choices=["lpn", "learning_loss"], default=None)
    t.add_argument("--lpn-layers", type=int, choices=range(4), default=2, metavar="{0,1,2,3}", help=LPN_LAYERS_HELP)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="strict entity-level P/R/F1 of a checkpoint on a JSONL file")
    e.add_argument("--model", required=True, type=Path)
    e.add_argument("--data", required=True, type=Path)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--threads", type=int, default=None, help="torch threads (1 is as fast for this Bi-LSTM and immune to a busy machine)")
    e.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    e.set_defaults(func=cmd_evaluate)

    b = sub.add_parser("bench", help="speed and memory numbers on this machine")
    b.add_argument("--data", help="directory with train.jsonl (default ../shared/data/ccks2019, else generated records)")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--quick", action="store_true", help="fewer records and repetitions (a smoke run)")
    b.add_argument("--server", action="store_true", help="also benchmark /predict latency and Label Studio push (slow)")
    b.add_argument("--json", action="store_true")
    b.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps: where the models run (the CRF kernel stays on the CPU)")
    b.add_argument("--lpn-layers", type=int, choices=range(4), default=Settings.lpn_layers, metavar="{0,1,2,3}",
                   help=LPN_LAYERS_HELP + "; the backend's default size, as /predict and the pool push use it")
    b.set_defaults(func=cmd_bench)

    s = sub.add_parser("simulate", help="replay active learning on a labeled train/test pair")
    s.add_argument("--data", required=True, type=Path, help="directory with train.jsonl and test.jsonl")
    s.add_argument("--strategies", default="random,lc,tod,loss,mlp,lpn,dbs,lasl")
    s.add_argument("--seeds", default="0,1,2")
    s.add_argument("--init", type=float, default=0.01)
    s.add_argument("--step", type=float, default=0.01)
    s.add_argument("--rounds", type=int, default=30)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--encoder", default="char")
    s.add_argument("--epochs-per-round", type=int, default=2, help="fine-tuning epochs per round (at least --round-steps steps)")
    s.add_argument("--normalize-length", action="store_true", help="DBS/MLP/LPN on per-character scores")
    s.add_argument("--loss-reduction", choices=("mean", "sum"), default="mean",
                   help="the loss baseline's record score from its chunk scores (mean: offset-free; sum: the first run's)")
    s.add_argument("--first-round-steps", type=int, default=600, help="optimizer steps for the round-0 model (trained from scratch)")
    s.add_argument("--round-steps", type=int, default=100, help="minimum optimizer steps per fine-tuning round")
    s.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    s.add_argument("--threads", type=int, default=1, help="cores per run: 2 trains the loss net on a second thread and scores the pool in 2 batches at once (same results)")
    s.add_argument("--full-f1", type=float, default=None, help="all-data F1 for the dashed line and the 95%%/98%% lines")
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (one --out holds runs of one device type)")
    s.add_argument("--report-only", action="store_true", help="only rewrite results.csv/json and the PNG from the saved state")
    s.add_argument("--max-test", type=int, default=None, help="evaluate on the first N test records only (smoke runs)")
    s.add_argument("--lpn-layers", type=int, choices=range(4), default=2, metavar="{0,1,2,3}", help=LPN_LAYERS_HELP + " (one --out holds one size)")
    s.set_defaults(func=cmd_simulate)

    v = sub.add_parser("serve", help="run the Label Studio ML backend under gunicorn (config from the environment)")
    v.add_argument("--host", default="0.0.0.0")
    v.add_argument("--port", type=int, default=9090)
    v.add_argument("--threads", type=int, default=8)
    v.add_argument("--log-level", default="info")
    v.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except (UsageError, DataError, ValueError, FileNotFoundError) as exc:
        print(f"lasl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lasl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
