"""The project page (``GET /dashboard``): stored numbers in, one HTML string out.

Project leads open it on sites without internet, often on locked-down machines, so the page is
self-contained: CSS in a ``<style>`` tag, plots as inline SVG (:mod:`.svg`), no JavaScript, nothing
fetched from elsewhere; the project picker is a plain GET form. The functions here only render:
the numbers come from the model store and the stop rule. Every value a user could have typed
(label names, version names, error messages, reasons) is escaped, and odd values (missing keys,
NaN, wrong types) render as "–" instead of raising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote

from ..stopping.rule import KEEP, NOT_ENOUGH_DATA, SLOWING, STOP, finite_number
from .svg import Series, bar_chart, line_chart

__all__ = ["DashboardView", "render_dashboard", "render_index", "NOT_ENOUGH_DATA_TEXT", "HISTORY_ROWS",
           "PROJECTION_EXTRA", "FITTED_CURVE_NAME"]

#: shown instead of a fitted learning curve when there is none to trust
NOT_ENOUGH_DATA_TEXT = "Not enough data yet"
#: the training history shows at most this many runs, newest first
HISTORY_ROWS = 50
#: the fitted curve is drawn this many annotations past the latest version, as the projection
PROJECTION_EXTRA = 500
#: the legend name of the fitted curve in the learning-curve plot
FITTED_CURVE_NAME = f"fitted a − b·n^−c, projected to +{PROJECTION_EXTRA}"

_BADGE_CLASS = {NOT_ENOUGH_DATA: "state-waiting", KEEP: "state-keep", SLOWING: "state-slowing", STOP: "state-stop"}
_F1_COLOR = "#2563eb"
_FIT_COLOR = "#7c3aed"
_KAPPA_COLOR = "#0d9488"
_COUNT_COLOR = "#64748b"
_DASH = "–"


@dataclass(frozen=True)
class DashboardView:
    """Everything the page shows, as stored.

    * ``signals``: one dict per model version, oldest first: version, trained_at, n_labeled, n_held_out,
      f1_held_out, f1_lo, f1_hi, kappa, lambda_t, per_label ({label: {f1, support}}), label_counts;
    * ``recommendation``: state, reasons, fit ({a, b, c, n_points, rmse} or None), expected_gain, rule;
    * ``runs``: the training history, newest last: reason, status, started_at, duration_s, steps,
      version, error, retries;
    * ``queue``: labeled, unlabeled, model_version, last_push, pushed;
    * ``cost_model``: intercept, per_char, per_region, n, n_used, mad_seconds, or None before a fit.
    """

    project_id: int
    projects: Sequence[int] = ()
    signals: Sequence[Mapping[str, Any]] = ()
    recommendation: Mapping[str, Any] = field(default_factory=dict)
    runs: Sequence[Mapping[str, Any]] = ()
    queue: Mapping[str, Any] = field(default_factory=dict)
    cost_model: Mapping[str, Any] | None = None
    generated_at: str = ""


# --- values ---------------------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return escape(str(value), quote=True)


def _int(value: Any) -> int | None:
    x = finite_number(value)
    return None if x is None else int(x)


def _fixed(value: Any, digits: int = 3) -> str:
    x = finite_number(value)
    return _DASH if x is None else f"{x:.{digits}f}"


def _count(value: Any) -> str:
    x = _int(value)
    return _DASH if x is None else f"{x:,}"


def _text_or_dash(value: Any) -> str:
    return _DASH if value is None or value == "" else _esc(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(values: Any) -> list:
    try:
        return [] if values is None else list(values)
    except TypeError:
        return []


def _mappings(values: Any) -> list[Mapping[str, Any]]:
    return [v for v in _as_list(values) if isinstance(v, Mapping)]


def _project_href(project: Any) -> str:
    return _esc(f"?project={quote(str(project), safe='')}")


def _readable_iso(value: str) -> str:
    """"2024-05-01T12:30:00.123+00:00" as "2024-05-01 12:30:00 UTC"; other offsets stay as written."""
    if len(value) < 19 or value[10] != "T":
        return value
    zone = value[19:].lstrip(".0123456789")
    zone = " UTC" if zone in ("Z", "+00:00") else f" {zone}" if zone else ""
    return f"{value[:10]} {value[11:19]}{zone}"


def _when(value: Any) -> str:
    """An ISO timestamp, readable, in a ``<time>`` element; anything else as text."""
    if not isinstance(value, str) or not value:
        return _DASH
    return f'<time datetime="{_esc(value)}">{_esc(_readable_iso(value))}</time>'


def _duration(seconds: Any) -> str:
    s = finite_number(seconds)
    if s is None:
        return _DASH
    if s < 60:
        return f"{s:.1f} s"
    minutes, rest = divmod(round(s), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


# --- page -----------------------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#1f2937;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Noto Sans","PingFang SC","Microsoft YaHei",sans-serif}
.page{max-width:1180px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:1.6rem;margin:0}
h2{font-size:1.1rem;margin:0 0 10px}
a{color:#1d4ed8}
.top{display:flex;flex-wrap:wrap;gap:16px;justify-content:space-between;align-items:flex-start;margin-bottom:16px}
.meta{color:#6b7280;font-size:.85rem;margin:2px 0 0}
.picker{display:flex;gap:8px;align-items:center}
.picker select,.picker button{font:inherit;padding:4px 8px}
.project-links{list-style:none;display:flex;flex-wrap:wrap;gap:8px;padding:0;margin:8px 0 0;font-size:.85rem}
.project-links a[aria-current]{font-weight:700;text-decoration:none;color:#1f2937}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:16px 18px;margin-bottom:16px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
.charts>.card{margin-bottom:0}
.charts+.card,.charts+.charts{margin-top:16px}
svg.chart{display:block;max-width:100%;height:auto}
figure{margin:0}
figcaption,.note{color:#6b7280;font-size:.85rem;margin:6px 0 0}
.note.warn{color:#92400e;font-weight:600;font-size:.95rem}
.badge{border-radius:12px;padding:18px 22px;margin-bottom:16px;border:2px solid}
.badge .label{text-transform:uppercase;letter-spacing:.06em;font-size:.75rem;margin:0}
.badge .state{font-size:2rem;font-weight:800;margin:0 0 6px}
.badge .state::first-letter{text-transform:uppercase}
.badge ul{margin:0 0 8px;padding-left:20px}
.badge .gain{margin:0 0 8px}
.state-waiting{background:#f3f4f6;border-color:#9ca3af}
.state-keep{background:#eff6ff;border-color:#3b82f6}
.state-keep .state{color:#1d4ed8}
.state-slowing{background:#fffbeb;border-color:#f59e0b}
.state-slowing .state{color:#b45309}
.state-stop{background:#ecfdf5;border-color:#10b981}
.state-stop .state{color:#047857}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{background:#f9fafb;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.rule{width:auto;font-size:.8rem;background:rgba(255,255,255,.6)}
table.rule caption{text-align:left;font-weight:600;padding:4px 0}
tr.status-failed td{background:#fef2f2}
.status{display:inline-block;border-radius:999px;padding:0 8px;font-size:.8rem;font-weight:600;background:#e5e7eb}
.status-ok .status{background:#d1fae5;color:#065f46}
.status-failed .status{background:#fee2e2;color:#991b1b}
.status-waiting .status{background:#fef3c7;color:#92400e}
.status-cancelled .status{color:#6b7280}
td.error{color:#991b1b;max-width:420px;overflow-wrap:anywhere}
td.error pre{white-space:pre-wrap;margin:4px 0 0;font-size:.78rem}
dl.queue{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dl.queue dt{color:#6b7280}
dl.queue dd{margin:0;font-weight:600}
footer{color:#9ca3af;font-size:.8rem;margin-top:24px}
"""


def _page(title: str, body: str) -> str:
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
            f'<body><div class="page">{body}</div></body></html>\n')


def _project_picker(current: Any, projects: Sequence[Any]) -> str:
    """A GET form (works without JavaScript) and plain links to every project."""
    ids = list(dict.fromkeys([*_as_list(projects), current]))
    options = "".join(f'<option value="{_esc(p)}"{" selected" if p == current else ""}>Project {_esc(p)}</option>'
                      for p in ids)
    current_mark = ' aria-current="page"'
    links = "".join(f'<li><a href="{_project_href(p)}"{current_mark if p == current else ""}>Project {_esc(p)}</a></li>'
                    for p in ids)
    return (f'<nav aria-label="Projects"><form method="get" class="picker"><label for="project-select">Project</label>'
            f'<select id="project-select" name="project">{options}</select><button type="submit">Show</button></form>'
            f'<ul class="project-links">{links}</ul></nav>')


def _header(view: DashboardView, recommendation: Mapping[str, Any]) -> str:
    return (f'<header><div class="top"><div><h1>Project {_esc(view.project_id)}</h1>'
            f'<p class="meta">Labeling dashboard · generated {_when(view.generated_at)}</p></div>'
            f"{_project_picker(view.project_id, view.projects)}</div>"
            f"{_recommendation(recommendation)}</header>")


# --- recommendation -------------------------------------------------------------------------------------


def _gain_key_order(key: str) -> float:
    return finite_number(str(key).lstrip("+")) or math.inf


def _expected_gain(gains: Mapping[str, Any]) -> str:
    items = [(k, finite_number(v)) for k, v in sorted(gains.items(), key=lambda kv: _gain_key_order(kv[0]))]
    shown = [f"<strong>{v:+.3f}</strong> after {_esc(k)} annotations" for k, v in items if v is not None]
    if not shown:
        return '<p class="gain">Expected held-back F1 gain: needs a learning-curve fit.</p>'
    return f'<p class="gain">Expected held-back F1 gain: {", ".join(shown)}.</p>'


def _rule_table(rule: Mapping[str, Any]) -> str:
    if not rule:
        return ""
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rule.items())
    return f'<table class="rule"><caption>Stop rule</caption><tbody>{rows}</tbody></table>'


def _recommendation(rec: Mapping[str, Any]) -> str:
    state = str(rec.get("state") or NOT_ENOUGH_DATA)
    items = "".join(f"<li>{_esc(r)}</li>" for r in _as_list(rec.get("reasons")))
    reasons = f'<ul class="reasons">{items}</ul>' if items else ""
    return (f'<section id="recommendation" class="badge {_BADGE_CLASS.get(state, "state-waiting")}" '
            f'data-state="{_esc(state)}" aria-label="Recommendation"><p class="label">Recommendation</p>'
            f'<p class="state">{_esc(state)}</p>{reasons}'
            f'{_expected_gain(_mapping(rec.get("expected_gain")))}{_rule_table(_mapping(rec.get("rule")))}</section>')


# --- learning curve -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fit:
    a: float
    b: float
    c: float

    def at(self, n: float) -> float | None:
        try:
            return finite_number(self.a - self.b * n ** (-self.c))
        except (ArithmeticError, ValueError):
            return None


def _usable_fit(rec: Mapping[str, Any], scored: int) -> _Fit | None:
    """The fit to draw: only with a real state, two versions with an F1 and finite parameters."""
    if scored < 2 or rec.get("state") in (None, NOT_ENOUGH_DATA):
        return None
    fit = _mapping(rec.get("fit"))
    a, b, c = (finite_number(fit.get(k)) for k in ("a", "b", "c"))
    return None if a is None or b is None or c is None else _Fit(a, b, c)


def _fit_series(fit: _Fit, first_n: float, latest_n: float) -> Series:
    """The fitted curve from the first scored version out to the projection's end, log-spaced."""
    start = max(1.0, first_n)
    end = max(start + 1.0, latest_n + PROJECTION_EXTRA)
    steps = 80
    xs = [start * (end / start) ** (i / steps) for i in range(steps + 1)]
    return Series(FITTED_CURVE_NAME, xs, [fit.at(x) for x in xs], _FIT_COLOR, dashed=True, markers=False)


def _version(signal: Mapping[str, Any], i: int) -> str:
    return str(signal.get("version") or f"version {i + 1}")


def _f1_point_label(signal: Mapping[str, Any], i: int) -> str:
    interval = ""
    if finite_number(signal.get("f1_lo")) is not None and finite_number(signal.get("f1_hi")) is not None:
        interval = f" [{_fixed(signal.get('f1_lo'))}, {_fixed(signal.get('f1_hi'))}]"
    trained = signal.get("trained_at")
    when = f" ({_readable_iso(trained)})" if isinstance(trained, str) and trained else ""
    return (f"{_version(signal, i)}{when}: F1 {_fixed(signal.get('f1_held_out'))}{interval}, "
            f"{_count(signal.get('n_labeled'))} annotations, {_count(signal.get('n_held_out'))} held back")


def _f1_series(signals: Sequence[Mapping[str, Any]]) -> Series:
    return Series("held-back F1 (bootstrap interval)", [finite_number(s.get("n_labeled")) for s in signals],
                  [finite_number(s.get("f1_held_out")) for s in signals], _F1_COLOR,
                  band_lo=[finite_number(s.get("f1_lo")) for s in signals], band_hi=[finite_number(s.get("f1_hi")) for s in signals],
                  point_labels=[_f1_point_label(s, i) for i, s in enumerate(signals)])


def _learning_curve(signals: Sequence[Mapping[str, Any]], rec: Mapping[str, Any]) -> str:
    scored = [s for s in signals if finite_number(s.get("f1_held_out")) is not None and finite_number(s.get("n_labeled")) is not None]
    fit = _usable_fit(rec, len(scored))
    series = [_f1_series(signals)]
    if fit is not None:
        latest_n = finite_number(signals[-1].get("n_labeled")) or finite_number(scored[-1].get("n_labeled")) or 0.0
        series.append(_fit_series(fit, finite_number(scored[0].get("n_labeled")) or 1.0, latest_n))
    versions = [(finite_number(s.get("n_labeled")), _version(s, i)) for i, s in enumerate(signals)]
    chart = line_chart(series, title="Held-back F1 against annotations", x_label="annotations",
                       y_label="held-back F1", y_range=(0.0, 1.0), vlines=[v for v in versions if v[0] is not None])
    note = ('<p class="note">Dashed: the fitted inverse power law, drawn to '
            f"{PROJECTION_EXTRA} annotations past the latest version.</p>" if fit is not None else
            f'<p class="note warn">{NOT_ENOUGH_DATA_TEXT}: the learning curve is fitted once enough versions '
            "have a held-back F1.</p>")
    return (f'<section id="learning-curve" class="card"><h2>Learning curve</h2><figure>{chart}'
            f"<figcaption>One mark per model version; the band is the bootstrap interval.</figcaption></figure>"
            f"{note}</section>")


# --- kappa ----------------------------------------------------------------------------------------------


def _kappa_range(kappas: Iterable[float], threshold: float | None) -> tuple[float, float]:
    """Up to 1 (perfect agreement), down to a round value below the lowest kappa and the threshold
    (at least 0.85 to 1, so that a run of kappas near 1 does not fill the plot with noise)."""
    lowest = min([*kappas, *([threshold] if threshold is not None else []), 0.9])
    return max(-1.0, math.floor((lowest - 0.01) * 20) / 20), 1.0


def _kappa_curve(signals: Sequence[Mapping[str, Any]], rule: Mapping[str, Any]) -> str:
    kappas = [finite_number(s.get("kappa")) for s in signals]
    threshold = finite_number(rule.get("kappa_threshold"))
    labels = [f"{_version(s, i)}: kappa {_fixed(s.get('kappa'))} with the previous version, "
              f"{_count(s.get('n_labeled'))} annotations" for i, s in enumerate(signals)]
    series = Series("kappa with the previous version", [finite_number(s.get("n_labeled")) for s in signals], kappas,
                    _KAPPA_COLOR, point_labels=labels)
    hlines = [] if threshold is None else [(threshold, f"stop threshold {threshold:g}")]
    chart = line_chart([series], title="Agreement between consecutive versions (stop set)", x_label="annotations",
                       y_label="Cohen's kappa", y_range=_kappa_range([k for k in kappas if k is not None], threshold),
                       hlines=hlines)
    note = "" if any(k is not None for k in kappas) else (
        '<p class="note">Kappa needs two versions: each version is compared with the one before it.</p>')
    return (f'<section id="kappa-curve" class="card"><h2>Prediction stability</h2><figure>{chart}</figure>'
            f"{note}</section>")


# --- per label ------------------------------------------------------------------------------------------


def _per_label_bars(per_label: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    rows = [(str(label), _mapping(v)) for label, v in per_label.items()]
    rows.sort(key=lambda r: (-(_int(r[1].get("support")) or 0), r[0]))
    return [(f"{label} (n={_count(m.get('support'))})", finite_number(m.get("f1"))) for label, m in rows]


def _label_count_bars(counts: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    bars = [(str(label), finite_number(n)) for label, n in counts.items()]
    return sorted(bars, key=lambda b: (-(b[1] or 0), b[0]))


def _per_label(signals: Sequence[Mapping[str, Any]]) -> str:
    latest = signals[-1] if signals else {}
    version = _esc(_version(latest, len(signals) - 1)) if signals else _DASH
    f1 = bar_chart(_per_label_bars(_mapping(latest.get("per_label"))), title="Held-back F1 per label",
                   y_label="F1", y_range=(0.0, 1.0))
    counts = bar_chart(_label_count_bars(_mapping(latest.get("label_counts"))), title="Gold regions per label",
                       y_label="regions", color=_COUNT_COLOR)
    return (f'<section id="per-label" class="card"><h2>Labels · latest version {version}</h2>'
            f'<div class="charts"><figure>{f1}<figcaption>n: held-back regions of the label.</figcaption></figure>'
            f"<figure>{counts}<figcaption>Regions in the annotations the version was trained on.</figcaption>"
            "</figure></div></section>")


# --- training history -----------------------------------------------------------------------------------


def _error_cell(error: Any) -> str:
    if error is None or error == "":
        return "<td></td>"
    text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else text
    if len(text) <= 160 and "\n" not in text:
        return f'<td class="error">{_esc(text)}</td>'
    summary = first if len(first) <= 160 else first[:159] + "…"
    return f'<td class="error"><details><summary>{_esc(summary)}</summary><pre>{_esc(text)}</pre></details></td>'


def _run_row(run: Mapping[str, Any]) -> str:
    status = str(run.get("status") or "")
    css = f"status-{status}" if status in ("ok", "failed", "waiting", "cancelled") else "status-other"
    return (f'<tr class="{css}"><td>{_when(run.get("started_at"))}</td><td>{_text_or_dash(run.get("reason"))}</td>'
            f'<td><span class="status">{_text_or_dash(status)}</span></td>'
            f'<td class="num">{_duration(run.get("duration_s"))}</td><td class="num">{_count(run.get("steps"))}</td>'
            f'<td>{_text_or_dash(run.get("version"))}</td><td class="num">{_count(run.get("retries"))}</td>'
            f"{_error_cell(run.get('error'))}</tr>")


def _history(runs: Sequence[Mapping[str, Any]]) -> str:
    if not runs:
        return ('<section id="history" class="card"><h2>Training history</h2>'
                '<p class="note">No training run yet.</p></section>')
    shown = list(reversed(runs[-HISTORY_ROWS:]))
    caption = f"the last {len(shown)} of {len(runs)} runs" if len(runs) > len(shown) else f"{len(runs)} run(s)"
    head = "".join(f"<th scope=\"col\">{h}</th>" for h in
                   ("Started", "Reason", "Status", "Duration", "Steps", "Version", "Retries", "Error"))
    return (f'<section id="history" class="card"><h2>Training history</h2><table><caption class="note">Newest first, '
            f"{caption}.</caption><thead><tr>{head}</tr></thead><tbody>{''.join(_run_row(r) for r in shown)}"
            "</tbody></table></section>")


# --- queue ----------------------------------------------------------------------------------------------


def _cost_sentence(cost: Mapping[str, Any] | None) -> str:
    if not cost:
        return "Cost model: ranking per character until enough lead times."
    return (f"Cost model: seconds ≈ {_fixed(cost.get('intercept'), 1)} + {_fixed(cost.get('per_char'), 3)}·chars + "
            f"{_fixed(cost.get('per_region'), 2)}·regions, fitted on {_count(cost.get('n_used'))} of "
            f"{_count(cost.get('n'))} lead times (median absolute error {_fixed(cost.get('mad_seconds'), 1)} s).")


#: beside the serving version when it is the final model (``final_run``)
_FINAL_NOTE = " (the final model: trained from scratch on every annotation, the held-back ones too)"


def _queue(queue: Mapping[str, Any], cost: Mapping[str, Any] | None) -> str:
    rows = (("Labeled tasks", _count(queue.get("labeled"))), ("Unlabeled tasks", _count(queue.get("unlabeled"))),
            ("Model version serving", _text_or_dash(queue.get("model_version")) + (_FINAL_NOTE if queue.get("final") is True else "")),
            ("Last prediction push", _when(queue.get("last_push"))),
            ("Predictions pushed", _count(queue.get("pushed"))))
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return (f'<section id="queue" class="card"><h2>Queue</h2><dl class="queue">{items}</dl>'
            f'<p class="note cost-model">{_cost_sentence(cost)}</p></section>')


# --- entry points ---------------------------------------------------------------------------------------


def render_dashboard(view: DashboardView) -> str:
    """The whole project page: header and recommendation badge, learning curve, kappa curve, per-label
    charts, training history and queue, in that order."""
    signals = _mappings(view.signals)
    rec = _mapping(view.recommendation)
    body = "".join([
        _header(view, rec),
        '<main><div class="charts">', _learning_curve(signals, rec), _kappa_curve(signals, _mapping(rec.get("rule"))),
        "</div>", _per_label(signals), _history(_mappings(view.runs)),
        _queue(_mapping(view.queue), view.cost_model if isinstance(view.cost_model, Mapping) else None), "</main>",
        f"<footer>Generated {_when(view.generated_at)}. This page runs no scripts and loads nothing from "
        "elsewhere.</footer>",
    ])
    return _page(f"Project {view.project_id} · labeling dashboard", body)


def render_index(projects: Sequence[int]) -> str:
    """The page without a project: a link per project that has trained, or a message that none has."""
    ids = _as_list(projects)
    if ids:
        items = "".join(f'<li><a href="{_project_href(p)}">Project {_esc(p)}</a></li>' for p in ids)
        content = f'<ul class="project-index">{items}</ul>'
    else:
        content = '<p class="note">No project has trained yet.</p>'
    return _page("Labeling dashboards",
                 f'<header><h1>Labeling dashboards</h1></header><main class="card">{content}</main>')
