"""``GET /dashboard`` through the Flask app after real training runs against a fake Label Studio: the
project page with all its sections, HTML errors for bad or unknown projects (never a 500), the index
without a project, basic auth, each project's own numbers, escaped label names, and no model load."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

import pytest

from lasl_backend.config import Settings
from lasl_backend.devtools.synthetic import make_records
from lasl_backend.ner import NerModel
from lasl_backend.serving.backend import LaslBackend
from lasl_backend.serving.routes import init_app
from lasl_backend.serving.store import ModelStore
from lasl_backend.stopping import NOT_ENOUGH_DATA

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.helpers import AUTH
from tests.serving.test_training_run import CFG, MODEL_DIR, Trainer, no_sdk_retries

SECTION_IDS = ["recommendation", "learning-curve", "kappa-curve", "per-label", "history", "queue"]
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}
EVIL_LABEL = '<script>alert("x")</script>'
EVIL_CFG = CFG.replace("</Labels>", '<Label value="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"/></Labels>')
RECORDS = make_records(20, seed=5, mean_chars=40)


@pytest.fixture(scope="module")
def fixture_model() -> NerModel:
    return NerModel.load(MODEL_DIR)


@pytest.fixture()
def fake() -> Iterator[FakeLabelStudio]:
    with FakeLabelStudio() as f:
        yield f


class _Ids(HTMLParser):
    """Checks that every element closes in order and collects the element ids."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [v for k, v in attrs if k == "id" and v]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [v for k, v in attrs if k == "id" and v]  # <line .../>: nothing to close

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def parse_page(html: str) -> _Ids:
    """The page's ids, after checking that it is well formed."""
    parser = _Ids()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def add_project(fake: FakeLabelStudio, pid: int, n_annotated: int, cfg: str = CFG) -> None:
    """Project ``pid`` with 20 synthetic tasks (ids pid*100 + i), the first ``n_annotated`` annotated."""
    fake.add_project(pid, cfg)
    for i, r in enumerate(RECORDS):
        tid = pid * 100 + i
        fake.add_task(pid, tid, r.text)
        if i < n_annotated:
            fake.annotate(tid, [(e.start, e.end, e.label) for e in r.entities])


def settings(model_dir: Path, fake: FakeLabelStudio, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        model_dir=model_dir, label_studio_url=fake.url, label_studio_api_key=fake.token, retry_backoff_s=0.0,
        train_retries=1, epochs=1, min_steps=1, max_steps=2, holdout_fraction=0.3, holdout_min_labeled=6,
        stop_set=6, retry_later_s=0.0,
    )
    base.update(kw)
    return Settings(**base)


def client(model_dir: Path, fake: FakeLabelStudio, model: NerModel, **kw: Any) -> Any:
    s = settings(model_dir, fake, **kw)
    app = init_app(LaslBackend, settings=s, store=ModelStore(s.model_dir), ls_factory=no_sdk_retries, train_fn=Trainer(model))
    return app.test_client()


def train(c: Any, pid: int, times: int = 1) -> list[str]:
    """Run ``times`` training runs of project ``pid`` in the app's own backend; their versions."""
    backend = c.application.extensions["lasl"].backend(pid)
    return [backend.train("START_TRAINING")["version"] for _ in range(times)]


def page(c: Any, query: str = "", **kw: Any) -> tuple[int, str]:
    r = c.get(f"/dashboard{query}", **kw)
    assert r.mimetype == "text/html", (r.status_code, r.get_data(as_text=True)[:300])
    return r.status_code, r.get_data(as_text=True)


def queue_value(html: str, name: str) -> str:
    m = re.search(rf"<dt>{re.escape(name)}</dt><dd>(.*?)</dd>", html)
    assert m, name
    return m.group(1)


def test_the_page_after_runs_has_every_section(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    add_project(fake, 1, 10)
    c = client(tmp_path / "models", fake, fixture_model)
    versions = train(c, 1, times=2)
    status, html = page(c, "?project=1")
    assert status == 200
    parsed = parse_page(html)
    assert [i for i in parsed.ids if i in SECTION_IDS] == SECTION_IDS
    assert f'data-state="{NOT_ENOUGH_DATA}"' in html
    for v in versions:
        assert v in html
    assert html.count('<tr class="status-ok">') == 2
    assert queue_value(html, "Labeled tasks") == "10" and queue_value(html, "Unlabeled tasks") == "10"
    assert queue_value(html, "Predictions pushed") == "10" and queue_value(html, "Model version serving") == versions[-1]
    assert "ranking per character" in html  # no lead times: no cost model
    kappa = html[html.index('id="kappa-curve"'):html.index('id="per-label"')]
    assert "Kappa needs two versions" not in kappa


def test_the_queue_box_shows_the_fitted_cost_model(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    fake.add_project(1, CFG)
    for i, r in enumerate(RECORDS):
        fake.add_task(1, 100 + i, r.text)
        if i < 10:
            fake.annotate(100 + i, [(e.start, e.end, e.label) for e in r.entities], lead_time=4.0 + 0.5 * len(r.text))
    c = client(tmp_path / "models", fake, fixture_model, cost_min_annotations=5)
    train(c, 1)
    status, html = page(c, "?project=1")
    assert status == 200
    box = html[html.index('id="queue"'):]
    assert "Cost model: seconds ≈" in box and "of 10 lead times" in box and "ranking per character" not in box


@pytest.mark.parametrize("query, status", [
    ("?project=abc", 400), ("?project=-1", 400), ("?project=1%2F..%2F2", 400), ("?project=%00", 400),
    ("?project=" + "9" * 40, 400), ("?project=1e3", 400), ("?project=99999", 404), ("?project=0", 404),
    ("?project=2", 404),
])
def test_bad_or_unknown_projects_get_an_html_error(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel,
                                                   query: str, status: int) -> None:
    add_project(fake, 1, 8)
    c = client(tmp_path / "models", fake, fixture_model)
    train(c, 1)
    got, html = page(c, query)
    assert got == status
    parse_page(html)
    assert "<h1>lasl-backend</h1>" in html and 'href="dashboard"' in html
    assert c.get("/dashboard?project=1").status_code == 200  # the bad request left the project as it was


def test_without_a_project_one_project_gets_its_page(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    add_project(fake, 3, 8)
    c = client(tmp_path / "models", fake, fixture_model)
    (version,) = train(c, 3)
    for query in ("", "?project="):
        status, html = page(c, query)
        assert status == 200 and "<h1>Project 3</h1>" in html and version in html


def test_without_a_project_none_or_several_get_the_index(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    c = client(tmp_path / "models", fake, fixture_model)
    status, html = page(c)
    assert status == 200 and "No project has trained yet" in html and "project-index" not in html
    add_project(fake, 1, 8)
    add_project(fake, 2, 8)
    train(c, 1)
    train(c, 2)
    status, html = page(c)
    assert status == 200
    assert re.findall(r'<li><a href="\?project=(\d+)">', html) == ["1", "2"]
    assert "recommendation" not in parse_page(html).ids


def test_basic_auth_guards_the_page(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    add_project(fake, 1, 8)
    c = client(tmp_path / "models", fake, fixture_model, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1])
    train(c, 1)
    for kw in ({}, {"auth": (AUTH[0], "wrong")}):
        for query in ("", "?project=1", "?project=abc"):
            r = c.get(f"/dashboard{query}", **kw)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic"), (kw, query)
            assert "Project 1" not in r.get_data(as_text=True)
    status, html = page(c, "?project=1", auth=AUTH)
    assert status == 200 and "<h1>Project 1</h1>" in html


def gold_counts_on_page(html: str) -> dict[str, str]:
    """The "Gold regions per label" chart's bars, label → value as shown in their hover text."""
    chart = html[html.index("<title>Gold regions per label</title>"):]
    chart = chart[: chart.index("</svg>")]
    return dict(re.findall(r"<title>([^<]*): ([^<]*)</title>", chart))


def test_two_projects_show_their_own_numbers(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    add_project(fake, 1, 8)
    add_project(fake, 2, 14)
    c = client(tmp_path / "models", fake, fixture_model)
    v1 = train(c, 1)
    v2 = train(c, 2, times=3)
    svc = c.application.extensions["lasl"]
    shown = {}
    for pid, labeled, versions in ((1, 8, v1), (2, 14, v2)):
        status, html = page(c, f"?project={pid}")
        assert status == 200 and f"<h1>Project {pid}</h1>" in html
        assert queue_value(html, "Labeled tasks") == str(labeled)
        assert queue_value(html, "Unlabeled tasks") == str(20 - labeled)
        assert queue_value(html, "Model version serving") == versions[-1]
        assert html.count('<tr class="status-ok">') == len(versions) and f"{len(versions)} run(s)" in html
        signals = svc.backend(pid).history.signals()
        assert len(signals) == len(versions)
        latest = signals[-1]
        shown[pid] = gold_counts_on_page(html)
        assert shown[pid] == {label: str(n) for label, n in latest["label_counts"].items()}
        curve = html[html.index('id="learning-curve"'):html.index('id="kappa-curve"')]
        assert f"F1 {latest['f1_held_out']:.3f}" in curve and f"{labeled} annotations" in curve
    assert shown[1] != shown[2]


def test_a_label_name_with_markup_is_escaped(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    fake.add_project(5, EVIL_CFG)
    for i, r in enumerate(RECORDS[:10]):
        tid = 500 + i
        fake.add_task(5, tid, r.text)
        if i < 8:
            regions = [(e.start, e.end, e.label) for e in r.entities]
            fake.annotate(tid, regions + ([(0, 2, EVIL_LABEL)] if i % 2 == 0 else []))
    c = client(tmp_path / "models", fake, fixture_model)
    train(c, 5)
    assert c.application.extensions["lasl"].backend(5).history.signals()[-1]["label_counts"][EVIL_LABEL] == 4
    status, html = page(c, "?project=5")
    assert status == 200
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    parse_page(html)


def test_serving_the_page_loads_no_model(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    add_project(fake, 1, 10)
    trained = client(tmp_path / "models", fake, fixture_model)
    versions = train(trained, 1, times=2)

    loads: list[Any] = []

    def no_load(*args: Any, **kwargs: Any) -> NerModel:
        loads.append(args)
        raise AssertionError("the project page loaded a model")

    monkeypatch.setattr(NerModel, "load", no_load)
    restarted = client(tmp_path / "models", fake, fixture_model)  # a fresh process: nothing in memory
    status, html = page(restarted, "?project=1")
    assert status == 200 and versions[-1] in html
    status, html = page(restarted)
    assert status == 200 and "<h1>Project 1</h1>" in html
    assert loads == []
    assert not restarted.application.extensions["lasl"].backend(1).slot.loaded
