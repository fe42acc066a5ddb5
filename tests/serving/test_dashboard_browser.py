"""The project page in a real browser: a backend whose project has several versions, trained for real
against the fake Label Studio, serves /dashboard to Debian's headless Chromium, which must render the
plots and the recommendation. The screenshot goes to docs/ (the README shows it).

Chromium is installed on first use (``devtools.browser``); where that cannot be done the test is skipped
with the reason. It is part of the e2e suite, which CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lasl_backend.devtools.backend_process import BackendProcess
from lasl_backend.devtools.browser import BrowserUnavailable, dump_dom, find_chromium, screenshot
from lasl_backend.devtools.synthetic import make_records
from lasl_backend.serving.backend import LaslBackend
from lasl_backend.serving.store import ModelStore

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.helpers import KEY, LABEL_CONFIG, make_settings

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs"
PID = 3
VERSIONS = 5


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return find_chromium()
    except BrowserUnavailable as exc:
        pytest.skip(f"no headless browser here: {exc}")


def _train_versions(model_dir: Path) -> None:
    """VERSIONS real (short) runs, 12 more annotations before each."""
    records = make_records(120, seed=11, mean_chars=60)
    with FakeLabelStudio() as fake:
        fake.add_project(PID, LABEL_CONFIG)
        for i, r in enumerate(records):
            fake.add_task(PID, 5000 + i, r.text, key=KEY)
        settings = make_settings(model_dir, fake, min_steps=30, max_steps=30, epochs=2, lpn_layers=0, char_vectors="none",
                                 holdout_fraction=0.25, holdout_min_labeled=8, stop_min_annotations=20, stop_set=30)
        backend = LaslBackend(PID, LABEL_CONFIG, settings=settings, store=ModelStore(model_dir))
        for v in range(VERSIONS):
            for i in range(12 * v, 12 * (v + 1)):
                fake.annotate(5000 + i, [(e.start, e.end, e.label) for e in records[i].entities], from_name="ner", to_name="emr")
            backend.train(reason="test")


def test_the_dashboard_renders_in_headless_chromium(chromium: str, tmp_path: Path) -> None:
    """Chromium's DOM of /dashboard holds the learning curve, the kappa curve and per-label F1 as drawn
    SVG (paths and markers), the recommendation, and the training history of every version."""
    model_dir = tmp_path / "models"
    _train_versions(model_dir)
    with BackendProcess(model_dir, tmp_path / "backend.log", env={"LASL_STOP_MIN_ANNOTATIONS": "20"}) as backend:
        url = f"{backend.url}/dashboard?project={PID}"
        dom = dump_dom(chromium, url)
        shot = screenshot(chromium, url, DOCS / "screenshot-dashboard.png")
    for section in ("recommendation", "learning-curve", "kappa-curve", "per-label", "history", "queue"):
        assert f'id="{section}"' in dom, section
    curve = dom[dom.index('id="learning-curve"'):dom.index('id="kappa-curve"')]
    assert "<svg" in curve and len(re.findall(r"<circle", curve)) >= VERSIONS - 1  # a marker per version with a held-back F1
    assert re.search(r"keep labeling|gains slowing|stop|not enough data yet", dom[dom.index('id="recommendation"'):], re.I)
    history = dom[dom.index('id="history"'):]
    assert len(re.findall(r"lasl-v000\d", history)) >= VERSIONS
    assert shot.stat().st_size > 10_000  # a drawn page, not a blank one
