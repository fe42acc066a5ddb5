"""The project page: one self-contained HTML string (no scripts, nothing fetched), its sections in order,
well-formed SVG plots with the versions' points, escaped user text, and no fitted curve without a fit
to trust."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest

from lasl_backend.serving.dashboard import (FITTED_CURVE_NAME, HISTORY_ROWS, NOT_ENOUGH_DATA_TEXT, PROJECTION_EXTRA,
                                            DashboardView, render_dashboard, render_index)
from lasl_backend.stopping import KEEP, NOT_ENOUGH_DATA, STOP

NS = {"svg": "http://www.w3.org/2000/svg"}
EVIL = '<script>alert("x")</script>'
SECTION_IDS = ["recommendation", "learning-curve", "kappa-curve", "per-label", "history", "queue"]
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}
RULE = {"min_annotations": 100, "kappa_threshold": 0.97, "kappa_window": 3, "stop_gain": 0.01, "slow_gain": 0.03,
        "horizon": 500}
FIT = {"a": 0.9, "b": 2.0, "c": 0.5, "n_points": 4, "rmse": 0.01}


class PageParser(HTMLParser):
    """Checks that every element closes in order and collects the ids, tags and attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if attributes.get("id"):
            self.ids.append(attributes["id"] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))  # an SVG element written <line .../>: nothing to close

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def section(html: str, section_id: str) -> str:
    """The HTML of the element with this id, up to the start of the next section."""
    start = html.index(f'id="{section_id}"')
    later = [html.find(f'id="{other}"', start + 1) for other in SECTION_IDS]
    ends = [i for i in later if i > start]
    return html[start:min(ends)] if ends else html[start:]


def svgs(html: str) -> list[ET.Element]:
    """Each top-level <svg> element (a chart nests one for its plot area), parsed as XML."""
    found, depth, start = [], 0, 0
    for tag in re.finditer(r"<svg[\s>]|</svg>", html):
        if tag.group().startswith("</"):
            depth -= 1
            if depth == 0:
                found.append(ET.fromstring(html[start:tag.end()]))
        else:
            start = tag.start() if depth == 0 else start
            depth += 1
    assert depth == 0
    return found


def chart(html: str, section_id: str) -> ET.Element:
    return svgs(section(html, section_id))[0]


def series_names(root: ET.Element) -> list[str]:
    return [g.get("data-name", "") for g in root.findall(".//svg:g[@class='series']", NS)]


def markers(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//svg:circle[@class='marker']", NS)


def signal(i: int, *, f1: float | None = None, kappa: float | None = None, **extra: Any) -> dict[str, Any]:
    n = 100 * (i + 1)
    f1 = 0.9 - 2.0 * n ** -0.5 if f1 is None else f1
    return {"version": f"v{i + 1}", "trained_at": f"2024-05-{i % 28 + 1:02d}T10:00:00+00:00", "n_labeled": n,
            "n_held_out": 40, "f1_held_out": f1, "f1_lo": f1 - 0.05, "f1_hi": f1 + 0.05,
            "kappa": None if i == 0 else (0.9 + 0.01 * i if kappa is None else kappa), "lambda_t": 0.3,
            "per_label": {"症状": {"f1": 0.8, "support": 30}, "药物": {"f1": 0.6, "support": 12}},
            "label_counts": {"症状": 300, "药物": 120}, **extra}


def run(i: int, status: str = "ok", error: str | None = None) -> dict[str, Any]:
    return {"reason": f"annotations #{i}", "status": status, "started_at": f"2024-05-01T10:{i % 60:02d}:00+00:00",
            "duration_s": 12.5 + i, "steps": 200, "version": f"v{i}", "error": error, "retries": 0}


def view(n_versions: int = 4, *, state: str = KEEP, fit: dict | None = FIT, **overrides: Any) -> DashboardView:
    fields: dict[str, Any] = {
        "project_id": 7, "projects": [3, 7, 12],
        "signals": [signal(i) for i in range(n_versions)],
        "recommendation": {"state": state, "reasons": ["kappa not all ≥ 0.97", "curve expects +0.04"],
                           "fit": fit, "expected_gain": {"+500": 0.04, "+100": 0.012} if fit else {}, "rule": RULE},
        "runs": [run(i) for i in range(3)],
        "queue": {"labeled": 400, "unlabeled": 1200, "model_version": "v4", "last_push": "2024-05-02T09:00:00+00:00",
                  "pushed": 1200},
        "cost_model": None, "generated_at": "2024-05-02T10:00:00+00:00",
    }
    fields.update(overrides)
    return DashboardView(**fields)


# --- the page as a whole --------------------------------------------------------------------------------


def test_page_is_well_formed_self_contained_html() -> None:
    html = render_dashboard(view())
    page = parse_page(html)
    assert html.startswith("<!DOCTYPE html>")
    assert ("html", {"lang": "en"}) in page.tags
    assert ("meta", {"charset": "utf-8"}) in page.tags
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "object"}
    assert "<style>" in html
    assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")]  # no event handlers
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html)
    assert "@import" not in html and "url(" not in html
    assert set(re.findall(r"https?://[^\s\"']+", html)) == {"http://www.w3.org/2000/svg"}


def test_sections_come_in_order_with_stable_ids() -> None:
    page = parse_page(render_dashboard(view()))
    assert [i for i in page.ids if i in SECTION_IDS] == SECTION_IDS
    assert len(page.ids) == len(set(page.ids))


def test_every_plot_is_well_formed_svg_with_a_title() -> None:
    html = render_dashboard(view())
    plots = svgs(html)
    assert len(plots) == 4  # learning curve, kappa, per-label F1, label distribution
    for root in plots:
        assert root.get("role") == "img"
        assert root.find("svg:title", NS) is not None


def test_project_picker_is_a_plain_get_form_with_links() -> None:
    html = render_dashboard(view())
    page = parse_page(html)
    forms = [attrs for tag, attrs in page.tags if tag == "form"]
    assert forms == [{"method": "get", "class": "picker"}]
    assert ("select", {"id": "project-select", "name": "project"}) in page.tags
    options = [attrs for tag, attrs in page.tags if tag == "option"]
    assert [o["value"] for o in options] == ["3", "7", "12"]
    assert [o["value"] for o in options if "selected" in o] == ["7"]
    assert any(tag == "button" and attrs.get("type") == "submit" for tag, attrs in page.tags)
    assert {'href="?project=3"', 'href="?project=12"'} <= set(re.findall(r'href="[^"]*"', html))


# --- recommendation -------------------------------------------------------------------------------------


def test_recommendation_badge_shows_state_reasons_gains_and_rule() -> None:
    badge = section(render_dashboard(view(state=STOP)), "recommendation")
    assert 'class="badge state-stop"' in badge
    assert ">stop<" in badge
    assert "kappa not all ≥ 0.97" in badge
    assert badge.index("+0.012") < badge.index("+0.040")  # +100 before +500
    assert "after +100 annotations" in badge and "after +500 annotations" in badge
    assert "<th>kappa_threshold</th><td>0.97</td>" in badge


@pytest.mark.parametrize(("state", "css"), [(NOT_ENOUGH_DATA, "state-waiting"), (KEEP, "state-keep"),
                                            ("gains slowing", "state-slowing"), (STOP, "state-stop"),
                                            ("something new", "state-waiting")])
def test_each_state_has_its_colour(state: str, css: str) -> None:
    assert f'class="badge {css}"' in section(render_dashboard(view(state=state)), "recommendation")


# --- learning curve -------------------------------------------------------------------------------------


def test_learning_curve_has_a_marker_per_version_and_the_band() -> None:
    html = render_dashboard(view(6))
    root = chart(html, "learning-curve")
    assert len(markers(root)) == 6
    assert root.findall(".//svg:polygon[@class='band']", NS)
    assert len(root.findall(".//svg:g[@class='vline']", NS)) == 6  # each version marked
    hover = [m.find("svg:title", NS).text or "" for m in markers(root)]
    assert hover[2].startswith("v3 (2024-05-03 10:00:00 UTC): F1 0.785 [0.735, 0.835], 300 annotations")


def test_projection_is_drawn_with_a_fit_out_past_the_latest_version() -> None:
    html = render_dashboard(view(4))
    root = chart(html, "learning-curve")
    assert FITTED_CURVE_NAME in series_names(root)
    fitted = root.find(f".//svg:g[@data-name='{FITTED_CURVE_NAME}']/svg:path", NS)
    assert fitted is not None and fitted.get("stroke-dasharray")
    x_ticks = [float("".join(t.itertext())) for t in root.findall(".//svg:text[@class='tick x-tick']", NS)]
    assert max(x_ticks) >= 400 + PROJECTION_EXTRA
    assert NOT_ENOUGH_DATA_TEXT not in section(html, "learning-curve")


@pytest.mark.parametrize("case", ["no fit", "not enough data", "one version", "nan fit"])
def test_no_projection_without_a_fit_to_trust(case: str) -> None:
    v = {"no fit": lambda: view(4, fit=None),
         "not enough data": lambda: view(4, state=NOT_ENOUGH_DATA),
         "one version": lambda: view(1),
         "nan fit": lambda: view(4, fit={**FIT, "b": math.nan})}[case]()
    html = render_dashboard(v)
    part = section(html, "learning-curve")
    assert FITTED_CURVE_NAME not in series_names(chart(html, "learning-curve"))
    assert NOT_ENOUGH_DATA_TEXT in part


def test_no_projection_with_fewer_than_two_scored_versions() -> None:
    signals = [signal(0, f1=math.nan), signal(1, f1=math.nan), signal(2)]
    html = render_dashboard(view(signals=signals))
    root = chart(html, "learning-curve")
    assert len(markers(root)) == 1
    assert FITTED_CURVE_NAME not in series_names(root)
    assert NOT_ENOUGH_DATA_TEXT in section(html, "learning-curve")


def test_nan_and_missing_f1_are_gaps() -> None:
    signals = [signal(0), signal(1, f1=math.nan), signal(2), {**signal(3), "f1_held_out": None},
               {"version": "v5", "n_labeled": 500}]
    root = chart(render_dashboard(view(signals=signals)), "learning-curve")
    assert len(markers(root)) == 2


# --- kappa ----------------------------------------------------------------------------------------------


def test_kappa_curve_has_the_threshold_line_and_a_point_per_kappa() -> None:
    html = render_dashboard(view(5))
    root = chart(html, "kappa-curve")
    assert len(markers(root)) == 4  # the first version has no predecessor
    (hline,) = root.findall(".//svg:g[@class='hline']", NS)
    assert "0.97" in hline.find("svg:title", NS).text


def test_kappa_without_any_value_says_why() -> None:
    html = render_dashboard(view(1))
    assert "Kappa needs two versions" in section(html, "kappa-curve")


# --- per label ------------------------------------------------------------------------------------------


def test_per_label_bars_carry_the_support_and_the_label_distribution() -> None:
    part = section(render_dashboard(view()), "per-label")
    f1_chart, counts_chart = svgs(part)
    labels = ["".join(t.itertext()) for t in f1_chart.findall(".//svg:text[@class='bar-label']", NS)]
    assert labels == ["症状 (n=30)", "药物 (n=12)"]  # most support first
    assert len(counts_chart.findall(".//svg:rect[@class='bar']", NS)) == 2
    assert "latest version v4" in part


# --- history and queue ----------------------------------------------------------------------------------


def history_rows(html: str) -> list[str]:
    return re.findall(r"<tr class=\"status-[a-z]+\">.*?</tr>", section(html, "history"), flags=re.S)


def test_history_is_newest_first_capped_with_failures_highlighted() -> None:
    runs = [run(i, "failed" if i % 10 == 0 else "ok", "boom" if i % 10 == 0 else None) for i in range(70)]
    html = render_dashboard(view(runs=runs))
    rows = history_rows(html)
    assert len(rows) == HISTORY_ROWS
    assert "annotations #69" in rows[0] and "annotations #20" in rows[-1]
    failed = [r for r in rows if r.startswith('<tr class="status-failed">')]
    assert len(failed) == 5 and all("boom" in r for r in failed)
    assert f"the last {HISTORY_ROWS} of 70 runs" in section(html, "history")


@pytest.mark.parametrize(("stamp", "shown"), [
    ("2024-05-01T10:02:03.456789+00:00", "2024-05-01 10:02:03 UTC"),
    ("2024-05-01T10:02:03Z", "2024-05-01 10:02:03 UTC"),
    ("2024-05-01T10:02:03+08:00", "2024-05-01 10:02:03 +08:00"),
    ("2024-05-01T10:02:03", "2024-05-01 10:02:03"),
    ("yesterday", "yesterday"),
])
def test_start_times_are_readable_and_keep_their_zone(stamp: str, shown: str) -> None:
    (row,) = history_rows(render_dashboard(view(runs=[{**run(1), "started_at": stamp}])))
    assert f'<time datetime="{stamp}">{shown}</time>' in row


def test_long_errors_fold_into_details() -> None:
    trace = "Traceback (most recent call last):\n" + "  line\n" * 40 + "RuntimeError: CUDA out of memory"
    rows = history_rows(render_dashboard(view(runs=[run(1, "failed", trace)])))
    assert "<details><summary>Traceback (most recent call last):</summary>" in rows[0]
    assert "CUDA out of memory" in rows[0]


def test_empty_history_says_so() -> None:
    assert "No training run yet." in section(render_dashboard(view(runs=[])), "history")


def test_queue_box_and_cost_model_sentence() -> None:
    html = render_dashboard(view())
    part = section(html, "queue")
    assert "1,200" in part and ">v4<" in part and "2024-05-02 09:00:00 UTC" in part
    assert "ranking per character until enough lead times" in part
    cost = {"intercept": 8.0, "per_char": 0.052, "per_region": 2.4, "n": 90, "n_used": 84, "mad_seconds": 6.2}
    part = section(render_dashboard(view(cost_model=cost)), "queue")
    assert "8.0 + 0.052·chars + 2.40·regions" in part and "84 of 90 lead times" in part
    assert "ranking per character" not in part


def test_the_queue_box_says_when_the_final_model_serves() -> None:
    assert "the final model" not in section(render_dashboard(view()), "queue")
    queue = {"labeled": 400, "unlabeled": 1200, "model_version": "v5", "final": True}
    assert ">v5 (the final model: trained from scratch on every annotation" in section(render_dashboard(view(queue=queue)), "queue")
    assert "the final model" not in section(render_dashboard(view(queue=dict(queue, final="yes"))), "queue")


# --- odd inputs -----------------------------------------------------------------------------------------


def test_user_text_is_escaped_everywhere() -> None:
    signals = [signal(i, version=EVIL, per_label={EVIL: {"f1": 0.5, "support": 3}}, label_counts={EVIL: 4})
               for i in range(4)]
    rec = {"state": EVIL, "reasons": [EVIL], "fit": FIT, "expected_gain": {EVIL: 0.1}, "rule": {EVIL: EVIL}}
    runs = [{**run(1, "failed", EVIL), "reason": EVIL, "version": EVIL}]
    queue = {"model_version": EVIL, "last_push": EVIL}
    html = render_dashboard(view(signals=signals, recommendation=rec, runs=runs, queue=queue, generated_at=EVIL))
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    parse_page(html)
    for root in svgs(html):
        assert root.find("svg:title", NS) is not None


def test_an_empty_project_renders() -> None:
    html = render_dashboard(DashboardView(project_id=5, projects=(), signals=(), recommendation={}, runs=(), queue={},
                                          cost_model=None, generated_at=""))
    page = parse_page(html)
    assert [i for i in page.ids if i in SECTION_IDS] == SECTION_IDS
    assert NOT_ENOUGH_DATA_TEXT in section(html, "learning-curve")
    assert "no data" in section(html, "learning-curve")
    assert len(svgs(html)) == 4
    assert ">not enough data yet<" in section(html, "recommendation")


def test_malformed_values_render_as_dashes() -> None:
    signals = [{"version": "v1", "n_labeled": "many", "f1_held_out": "high", "per_label": "none",
                "label_counts": None}, "not a dict"]
    runs = [{"status": None, "duration_s": math.inf, "steps": "x"}]
    html = render_dashboard(view(signals=signals, runs=runs, queue={"labeled": math.nan},
                                 recommendation={"state": KEEP, "fit": {"a": "?"}, "expected_gain": None}))
    parse_page(html)
    assert "–" in section(html, "queue")


def test_fifty_versions_render() -> None:
    v = view(50, runs=[run(i, "failed" if i % 7 == 0 else "ok") for i in range(60)])
    html = render_dashboard(v)
    parse_page(html)
    assert len(markers(chart(html, "learning-curve"))) == 50
    assert len(markers(chart(html, "kappa-curve"))) == 49
    assert len(history_rows(html)) == HISTORY_ROWS


# --- index ----------------------------------------------------------------------------------------------


def test_index_links_every_project() -> None:
    html = render_index([3, 12])
    parse_page(html)
    assert re.findall(r'href="([^"]*)"', html) == ["?project=3", "?project=12"]
    assert '<meta charset="utf-8">' in html


def test_project_links_are_url_encoded() -> None:
    html = render_index(["a&b c"])
    assert 'href="?project=a%26b%20c"' in html


def test_index_without_projects_says_none_has_trained() -> None:
    html = render_index([])
    parse_page(html)
    assert "No project has trained yet." in html
    assert "href=" not in html
