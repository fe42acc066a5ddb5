"""The development tools' command lines and the numbers they derive, without starting any server."""

from __future__ import annotations

from pathlib import Path

import pytest

from lasl_backend.config import Settings
from lasl_backend.devtools import labelstudio_dev, load_test, lpn_speed, profile_one_record, queue_bench, webhook_flood
from lasl_backend.devtools.backend_process import bench_backend_env, parse_env
from lasl_backend.devtools.backend_state import imports_in_log
from lasl_backend.devtools.bench_server import ServerBenchSizes, _summary
from lasl_backend.devtools.demo import parse_args as demo_args

REPO = Path(__file__).resolve().parents[2]


def test_load_test_defaults_and_its_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    a = load_test.parse_args(["--out", "x.json"])
    assert (a.clients, a.requests, a.train_at, a.no_train, a.backend_url) == (8, 1000, 0.05, False, None)
    for bad in (["--clients", "0"], ["--clients", "65"], ["--requests", "100001"]):
        with pytest.raises(SystemExit) as exc:
            load_test.parse_args(["--out", "x.json", *bad])
        assert exc.value.code == 2
        assert "--clients must be in [1, 64]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_test.parse_args(["--out", "x.json", "--backend-url", "http://127.0.0.1:9090"])
    assert "--backend-url needs --project" in capsys.readouterr().err


def test_load_test_backend_env_adds_the_training_settings_to_basic_auth() -> None:
    class LS:
        url, token = "http://127.0.0.1:8080", "tok123"

    a = load_test.parse_args(["--out", "x.json", "--train-env", "LASL_EPOCHS=2, LASL_MIN_STEPS = 40,"])
    env = load_test.backend_env(LS(), ("lasl", "pw"), a.train_env)  # type: ignore[arg-type]
    assert env["BASIC_AUTH_USER"] == "lasl" and env["BASIC_AUTH_PASS"] == "pw"
    assert env["LABEL_STUDIO_URL"] == LS.url and env["LABEL_STUDIO_API_KEY"] == "tok123"
    assert env["LASL_EPOCHS"] == "2" and env["LASL_MIN_STEPS"] == "40"
    assert env["LASL_TRAIN_EVERY"] == "1000000"  # only the load test's own trigger starts a run
    assert load_test.parse_args(["--out", "x.json"]).train_env == {"LASL_EPOCHS": "2", "LASL_MIN_STEPS": "40"}  # the default


def test_backend_settings_on_the_command_line_are_name_value_pairs() -> None:
    assert parse_env("") == {} and parse_env(" , ") == {}
    assert parse_env("LASL_TRAIN_SECONDS=30,LASL_EPOCHS=2") == {"LASL_TRAIN_SECONDS": "30", "LASL_EPOCHS": "2"}
    assert parse_env("A=x=y") == {"A": "x=y"}
    assert parse_env(" LASL_EPOCHS = 2 ,") == {"LASL_EPOCHS": "2"}
    for bad in ("LASL_TRAIN_SECONDS", "A=1,B", "=3"):
        with pytest.raises(ValueError, match="is not NAME=VALUE"):
            parse_env(bad)


@pytest.mark.parametrize("parse, option", [(queue_bench.parse_args, "--env"), (load_test.parse_args, "--train-env")])
def test_a_bad_backend_setting_is_refused_with_its_option(parse, option: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as exc:
        parse(["--out", "q.json", option, "LASL_EPOCHS=2,LASL_TRAIN_SECONDS"])
    assert exc.value.code == 2
    assert f"{option}: 'LASL_TRAIN_SECONDS' is not NAME=VALUE" in capsys.readouterr().err


def test_queue_bench_env_is_name_value_pairs() -> None:
    a = queue_bench.parse_args(["--out", "q.json", "--env", "LASL_TRAIN_SECONDS=30"])
    assert a.env == {"LASL_TRAIN_SECONDS": "30"} and (a.labeled, a.total) == (300, 1000)


def test_the_benchmarks_backends_share_one_base_environment() -> None:
    env = bench_backend_env("http://127.0.0.1:8080", "tok")
    assert env == {"LABEL_STUDIO_URL": "http://127.0.0.1:8080", "LABEL_STUDIO_API_KEY": "tok",
                   "LASL_TRAIN_EVERY": "1000000", "LASL_RETRY_BACKOFF_S": "1"}
    # what the backend makes of it: no run by the annotation count, a short first retry
    settings = Settings.from_env(env)
    assert settings.train_every == 1_000_000 and settings.retry_backoff_s == 1.0


def test_speed_tools_defaults() -> None:
    a = lpn_speed.parse_args([])
    assert (a.data, a.threads, a.records, a.reps, a.out) == (Path("../shared/data/ccks2019"), 2, 1000, 200, None)
    p = profile_one_record.parse_args(["--device", "cuda", "--reps", "5"])
    assert (p.device, p.reps, p.chars, p.threads) == ("cuda", 5, 400, 2)


def test_server_bench_sizes_and_their_overrides() -> None:
    full, quick = ServerBenchSizes.from_overrides(False, None), ServerBenchSizes.from_overrides(True, None)
    assert (full.n_single, full.n_batch, full.push_sizes) == (200, 20, (1000, 10000))
    assert (quick.n_single, quick.n_batch, quick.push_sizes) == (40, 5, (1000,))
    assert (full.queue_labeled, full.queue_total, full.push_only) == (300, 1000, False)
    s = ServerBenchSizes.from_overrides(True, {"push_sizes": [50], "queue_total": 40, "queue_labeled": 10, "push_only": True})
    assert (s.push_sizes, s.queue_total, s.queue_labeled, s.push_only, s.n_single) == ((50,), 40, 10, True, 40)


def test_server_bench_summary_puts_the_targets_beside_the_numbers() -> None:
    out = {"queue_300_labeled_700_unlabeled": {"trigger_to_reordered_queue_s": 41.5},
           "predict": {"single_p95_ms": 19.0, "batch100_p50_ms": 600.0, "batch100_p95_ms": 700.0},
           "push_10000": {"rescore_push_s": 78.2}}
    s = _summary(out)
    assert (s["predict_1_record_p95_ms"], s["predict_1_record_p95_target_ms"]) == (19.0, 25)
    assert (s["trigger_to_reordered_queue_s"], s["trigger_to_reordered_queue_target_s"]) == (41.5, 60)
    assert (s["rescore_push_10000_s"], s["rescore_push_10000_target_s"]) == (78.2, 90)
    assert "rescore_push_1000_s" not in s  # not measured, not invented


def test_pushes_are_read_from_the_backend_log_of_their_project_only() -> None:
    log = ("... project 3: imported 700 predictions in 4.25 s\n"
           "... project 13: imported 5 predictions in 0.1 s\n"
           "... project 3: imported 300 predictions in 1.5 s\n")
    assert imports_in_log(log, 3) == [(700, 4.25), (300, 1.5)]
    assert imports_in_log(log, 4) == []


def test_label_studio_venv_default_and_an_existing_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(labelstudio_dev.LS_VENV_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    # run from this checkout: its own .ls-venv, wherever the working directory is
    assert labelstudio_dev.default_ls_venv() == REPO / ".ls-venv"
    venv = tmp_path / "ls"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "label-studio").write_text("")
    (venv / ".lasl-installed").write_text("label-studio==1.23.2\n")
    monkeypatch.setenv(labelstudio_dev.LS_VENV_ENV, str(venv))
    assert labelstudio_dev.default_ls_venv() == venv
    monkeypatch.setattr(labelstudio_dev.subprocess, "run", lambda *a, **k: pytest.fail("an installed venv is not reinstalled"))
    assert labelstudio_dev.main(["install"]) == 0
    assert capsys.readouterr().out.strip() == str(venv)


def test_demo_takes_the_label_studio_venv_from_the_environment_by_default() -> None:
    a = demo_args([])
    assert a.ls_venv is None and a.backend_cmd is None and (a.ls_port, a.backend_port) == (8080, 9090)


def test_the_webhook_flood_runs_against_the_real_server(capsys: pytest.CaptureFixture[str]) -> None:
    """A small flood end to end: the server this installation starts takes every forged event, still confirms
    the real one, and the report has the keys docs/results/webhook_flood.json was written with."""
    report = webhook_flood.run_flood(events=120, clients=3, confirm_timeout=30)
    assert list(report) == ["events", "clients", "setup_status", "rss_kb_at_start", "rss_kb_before", "flood", "rss_kb_after_flood",
                            "metrics_after_flood", "real_event", "metrics_after_real_event", "rss_kb_end", "worker_rss_growth_mb",
                            "server_log_tail"]
    assert report["setup_status"] == 200
    assert report["flood"]["statuses"] == {"200": 120} and report["flood"]["queued"] == 120
    assert report["metrics_after_flood"]["backlog"] >= 120  # Label Studio is down: nothing could be confirmed
    real = report["real_event"]
    assert real["status"] == 200 and real["confirmed_after_s"] is not None and real["label_studio_requests"] >= 1
    assert "flood: {" in capsys.readouterr().out
