"""Only the queue measurement of ``lasl_backend.devtools.bench_server`` (START_TRAINING → reordered queue at 300
labeled + 700 unlabeled tasks, then the follow-up runs), with extra backend settings: to re-measure it
after changing a training setting without the /predict and push measurements (~20 min).

    .venv/bin/python scripts/queue_bench.py --out docs/results/queue_bench.json [--env LASL_TRAIN_SECONDS=30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from lasl_backend.devtools.bench import default_data_dir, load_records
from lasl_backend.devtools.bench_server import BackendProcess, LSApi, _texts_and_gold, loadavg, measure_queue
from lasl_backend.devtools.labelstudio_dev import LabelStudioServer, ensure_ls_venv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--env", default="", help="comma-separated NAME=VALUE backend settings")
    ap.add_argument("--labeled", type=int, default=300)
    ap.add_argument("--total", type=int, default=1000)
    a = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in a.env.split(",") if kv.strip())
    recs, src = load_records(default_data_dir(), a.total)
    recs = _texts_and_gold(recs, a.total, seed=7)
    with tempfile.TemporaryDirectory(prefix="lasl-queue-bench-") as tmp:
        with LabelStudioServer(Path(tmp) / "ls", ls_venv=ensure_ls_venv()) as ls:
            api = LSApi(ls.url, ls.token)
            env = {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.token, "LASL_TRAIN_EVERY": "1000000", "LASL_RETRY_BACKOFF_S": "1", **extra}
            with BackendProcess(Path(tmp) / "models", Path(tmp) / "backend.log", env) as backend:
                res, _, _, _ = measure_queue(api, ls.url, ls.token, backend, recs, a.labeled, 900)
    res["backend_env"] = extra
    res["data"] = src
    res["loadavg_end"] = loadavg()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(res, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
