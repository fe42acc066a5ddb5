"""Only the queue measurement of ``lasl bench --server`` (START_TRAINING → reordered queue at 300 labeled +
700 unlabeled tasks, then the follow-up runs), with extra backend settings: to re-measure it after changing
a training setting without the /predict and push measurements (~20 min).

    python -m lasl_backend.devtools.queue_bench --out docs/results/queue_bench.json [--env LASL_TRAIN_SECONDS=30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .backend_process import BackendProcess, bench_backend_env, parse_env
from .bench_queue import measure_queue
from .clients import LSApi
from .labelstudio_dev import LabelStudioServer, ensure_ls_venv
from .measure import loadavg
from .records import default_data_dir, load_records, pad_with_synthetic


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m lasl_backend.devtools.queue_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--env", default="", help="comma-separated NAME=VALUE backend settings")
    ap.add_argument("--labeled", type=int, default=300)
    ap.add_argument("--total", type=int, default=1000)
    args = ap.parse_args(argv)
    try:
        args.env = parse_env(args.env)
    except ValueError as exc:
        ap.error(f"--env: {exc}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    recs, src = load_records(default_data_dir(), a.total)
    recs = pad_with_synthetic(recs, a.total, seed=7)
    with tempfile.TemporaryDirectory(prefix="lasl-queue-bench-") as tmp:
        with LabelStudioServer(Path(tmp) / "ls", ls_venv=ensure_ls_venv()) as ls:
            api = LSApi(ls.url, ls.token)
            env = {**bench_backend_env(ls.url, ls.token), **a.env}
            with BackendProcess(Path(tmp) / "models", Path(tmp) / "backend.log", env) as backend:
                res, _, _, _ = measure_queue(api, ls.url, ls.token, backend, recs, a.labeled, 900)
    res["backend_env"] = a.env
    res["data"] = src
    res["loadavg_end"] = loadavg()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(res, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
