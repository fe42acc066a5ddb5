"""The development tools work from an installed package, not only from this checkout.

The package is installed with ``pip install --no-deps --target`` (offline, the C kernel compiled on the
way: ~2 s) and probed by a fresh interpreter from another working directory that has nothing of the
repository on its path. The tools must start the backend of that installation and look for Label
Studio's venv where they are told or in the working directory, never at a path inside the package. A copy
of the sources run in place is a checkout: its own ``.ls-venv``, from whatever directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import lasl_backend
from lasl_backend.devtools.backend_process import BackendProcess, lasl_command
from lasl_backend.devtools.labelstudio_dev import LabelStudioServer, default_ls_venv

backend = BackendProcess(model_dir=__import__("pathlib").Path("models"), log_path=__import__("pathlib").Path("backend.log"), env={})
print(json.dumps({
    "package": lasl_backend.__file__,
    "lasl": lasl_command(),
    "backend_argv": backend.argv(),
    "backend_cwd": str(backend.cwd),
    "model_dir": backend.env["MODEL_DIR"],
    "ls_venv": str(default_ls_venv()),
    "server_ls_venv": str(LabelStudioServer("ls-data").ls_venv),
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``site``: the package as pip installs it from a copy of this checkout's sources."""
    tmp = tmp_path_factory.mktemp("installed")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "lasl_backend", src / "lasl_backend", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(src)], check=True, cwd=tmp, capture_output=True)
    shutil.rmtree(src)  # nothing of the sources is left to fall back on
    return site


def _run(site: Path, cwd: Path, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LASL_LS_VENV")}
    child_env.update(PYTHONPATH=str(site), **env)
    return subprocess.run(argv, cwd=cwd, env=child_env, capture_output=True, text=True, timeout=120)


def _probe(site: Path, cwd: Path, **env: str) -> dict[str, object]:
    proc = _run(site, cwd, [sys.executable, "-c", PROBE], **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_tools_resolve_commands_and_paths_to_the_installation(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    got = _probe(installed, work)
    assert Path(str(got["package"])).is_relative_to(installed)  # the installed copy, not the checkout
    # the backend is this interpreter running the installed CLI module: no checkout's .venv/bin/lasl, no PATH lookup
    assert got["lasl"] == [sys.executable, "-m", "lasl_backend.cli"]
    assert got["backend_argv"][:4] == [sys.executable, "-m", "lasl_backend.cli", "serve"]  # type: ignore[index]
    assert Path(str(got["backend_cwd"])) == work and Path(str(got["model_dir"])) == work / "models"
    # Label Studio's venv: the working directory's, not one inside the installed package
    assert Path(str(got["ls_venv"])) == work / ".ls-venv"
    assert Path(str(got["server_ls_venv"])) == work / ".ls-venv"


def test_the_label_studio_venv_comes_from_the_environment(installed: Path, tmp_path: Path) -> None:
    venv = tmp_path / "somewhere" / "ls"
    got = _probe(installed, tmp_path, LASL_LS_VENV=str(venv))
    assert Path(str(got["ls_venv"])) == venv and Path(str(got["server_ls_venv"])) == venv


def test_the_backend_command_runs_the_installed_cli(installed: Path, tmp_path: Path) -> None:
    got = _probe(installed, tmp_path)
    argv = [*got["lasl"], "serve", "--help"]  # type: ignore[misc]
    proc = _run(installed, tmp_path, argv)
    assert proc.returncode == 0, proc.stderr
    assert "usage: lasl serve" in proc.stdout


def test_the_moved_tools_run_as_modules_of_the_installation(installed: Path, tmp_path: Path) -> None:
    """Each tool answers ``--help`` through ``python -m`` with only the installation on the path."""
    tools = ["devtools.load_test", "devtools.queue_bench", "devtools.lpn_speed", "devtools.profile_one_record",
             "devtools.bench_server", "devtools.demo", "devtools.labelstudio_dev", "devtools.webhook_flood", "sim.results_table", "sim.compare_lpn_sizes"]
    script = (
        "import runpy, sys\n"
        f"for name in {tools!r}:\n"
        "    sys.argv = [name, '--help']\n"
        "    try:\n"
        "        runpy.run_module('lasl_backend.' + name, run_name='__main__', alter_sys=True)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (name, exc.code)\n"
        "    else:\n"
        "        raise AssertionError(name + ' did not parse --help')\n"
        "    print('OK', name, flush=True)\n"
    )
    proc = _run(installed, tmp_path, [sys.executable, "-c", script])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("OK ")] == tools


def test_a_checkout_keeps_one_label_studio_venv_whatever_the_working_directory(tmp_path: Path) -> None:
    """Sources run in place (``pyproject.toml`` beside the package), started from a subdirectory: the
    checkout's ``.ls-venv``, not a new one where the tool was started."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(REPO / "pyproject.toml", checkout / "pyproject.toml")
    shutil.copytree(REPO / "lasl_backend", checkout / "lasl_backend", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    sub = checkout / "tests" / "deep"
    sub.mkdir(parents=True)
    got = _probe(checkout, sub)
    assert Path(str(got["package"])).is_relative_to(checkout)
    assert Path(str(got["ls_venv"])) == checkout / ".ls-venv"
    assert Path(str(got["server_ls_venv"])) == checkout / ".ls-venv"
    got = _probe(checkout, sub, LASL_LS_VENV=str(tmp_path / "ls"))  # the environment still comes first
    assert Path(str(got["ls_venv"])) == tmp_path / "ls"
