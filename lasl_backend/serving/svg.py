"""Chart primitives for the dashboard: inline SVG built from plain strings.

The dashboard is opened on sites without internet and without JavaScript, so its plots are SVG
elements written by hand: no plotting library, no fonts, styles or scripts from elsewhere. Every
chart is a complete, well-formed ``<svg>`` with ``role="img"`` and a ``<title>``; every text in it is
escaped. Odd data (empty, one point, all equal, NaN, inf, negative) never raises: a chart with
nothing finite to draw is an empty frame that says "no data".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Any, Iterable, Sequence

from ..stopping.rule import finite_number

__all__ = ["NO_DATA", "Series", "bar_chart", "line_chart", "nice_ticks"]

NO_DATA = "no data"

_SVG_NS = "http://www.w3.org/2000/svg"
_TEXT = "#1f2937"
_MUTED = "#6b7280"
_GRID = "#e5e7eb"
_FRAME = "#9ca3af"
_MARK_LINE = "#94a3b8"
_BAR = "#2563eb"
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'PingFang SC', 'Microsoft YaHei', sans-serif"
#: pixel coordinates are kept inside this, so a value far outside a fixed range stays a sane number
_PIXEL_LIMIT = 1e5
#: markers at the plot's edge stay whole: the clipping viewport is this much larger than the plot
_CLIP_PAD = 6.0


@dataclass(frozen=True)
class Series:
    """One line: ``ys[i]`` at ``xs[i]``; a None or NaN value (or x) is a gap in the line. ``band_lo`` /
    ``band_hi`` draw a translucent band (an interval) around it; ``point_labels`` are the markers'
    hover texts (default: name, x and y)."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str
    dashed: bool = False
    band_lo: Sequence[float | None] | None = None
    band_hi: Sequence[float | None] | None = None
    markers: bool = True
    point_labels: Sequence[str] | None = None


@dataclass(frozen=True)
class _Frame:
    """The plot area in pixels and the data ranges it maps."""

    left: float
    top: float
    right: float
    bottom: float
    x0: float
    x1: float
    y0: float
    y1: float

    def sx(self, x: float) -> float:
        return _clamp(self.left + (x - self.x0) / (self.x1 - self.x0) * (self.right - self.left))

    def sy(self, y: float) -> float:
        return _clamp(self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top))


@dataclass(frozen=True)
class _Axis:
    lo: float
    hi: float
    ticks: tuple[float, ...]
    step: float


# --- numbers --------------------------------------------------------------------------------------------


def _clamp(px: float) -> float:
    return max(-_PIXEL_LIMIT, min(_PIXEL_LIMIT, px))


def _px(v: float) -> str:
    text = f"{v:.1f}"
    return "0" if text == "-0.0" else text.removesuffix(".0")


def _size(value: Any, default: int) -> int:
    x = finite_number(value)
    return default if x is None or not 80 <= x <= 10_000 else int(x)


def _nice_step(span: float, max_ticks: int) -> tuple[int, int]:
    """The tick step as (mantissa, exponent), mantissa in {1, 2, 5, 10}: the "nice numbers" choice."""
    raw = span / max(1, max_ticks - 1)
    exponent = math.floor(math.log10(raw))
    fraction = raw / 10.0**exponent * (1 - 1e-9)  # 0.02 / 0.01 is 2.0000000000000004
    mantissa = 1 if fraction <= 1 else 2 if fraction <= 2 else 5 if fraction <= 5 else 10
    return mantissa, exponent


def _tick_value(k: int, mantissa: int, exponent: int) -> float:
    # dividing by a power of ten keeps 0.1-steps exact decimals (3 * 0.1 is 0.30000000000000004)
    return k * mantissa / 10.0**-exponent if exponent < 0 else float(k * mantissa * 10**exponent)


def _padded(lo: float, hi: float) -> tuple[float, float]:
    """A range with room in it: one value gets ±10% of itself (±1 around zero)."""
    if lo > hi:
        lo, hi = hi, lo
    if hi - lo > 1e-12 * max(abs(lo), abs(hi), 1e-300):
        return lo, hi
    pad = abs(lo) * 0.1 or 1.0
    return lo - pad, hi + pad


def _axis(lo: float, hi: float, *, fixed: bool, max_ticks: int = 6) -> _Axis | None:
    """Round ticks for [lo, hi]: a fixed range keeps its ends, a free one grows to the outer ticks.
    None where the range cannot be drawn (its span overflows)."""
    try:
        return _round_axis(*_padded(lo, hi), fixed=fixed, max_ticks=max_ticks)
    except (ArithmeticError, ValueError):  # a span at the ends of the float range
        return None


def _round_axis(lo: float, hi: float, *, fixed: bool, max_ticks: int) -> _Axis | None:
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return None
    mantissa, exponent = _nice_step(span, max_ticks)
    step = mantissa * 10.0**exponent
    first = math.ceil(lo / step - 1e-9) if fixed else math.floor(lo / step + 1e-9)
    last = math.floor(hi / step + 1e-9) if fixed else math.ceil(hi / step - 1e-9)
    ticks = tuple(dict.fromkeys(_tick_value(k, mantissa, exponent) for k in range(first, min(last, first + 40) + 1)))
    if not fixed and ticks:
        lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    return _Axis(lo, hi, ticks, step)


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) from at or below ``lo`` to at or
    above ``hi``; [] for non-finite ends."""
    a, b = finite_number(lo), finite_number(hi)
    if a is None or b is None:
        return []
    axis = _axis(a, b, fixed=False, max_ticks=max(2, int(max_ticks)))
    return [] if axis is None else list(axis.ticks)


def _tick_text(value: float, step: float) -> str:
    if step >= 1e6 or step < 1e-4:  # enough significant digits that neighbouring ticks differ
        digits = min(17, max(3, math.ceil(math.log10(max(abs(value), step) / step)) + 1))
        text = f"{value:.{digits}g}"
    else:
        text = f"{value:.{max(0, -math.floor(math.log10(step) + 1e-9))}f}"
    return text[1:] if text.startswith("-") and text.strip("-0.") == "" else text  # no "-0.0"


def _short(value: float) -> str:
    return f"{value:.4g}"


# --- text -----------------------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return escape(str(value), quote=True)


def _text_width(text: str, size: float) -> float:
    """Rough rendered width: CJK and other wide characters take a full em, the rest about 0.6."""
    return sum(size if ord(ch) >= 0x2E80 else 0.6 * size for ch in text)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(x: float, y: float, content: str, *, size: float = 11, anchor: str = "start", fill: str = _TEXT,
          extra: str = "") -> str:
    return (f'<text x="{_px(x)}" y="{_px(y)}" font-size="{size:g}" text-anchor="{anchor}" fill="{fill}"'
            f'{extra}>{_esc(content)}</text>')


def _open_svg(title: str, width: int, height: int, kind: str) -> str:
    return (f'<svg xmlns="{_SVG_NS}" class="chart {kind}" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="{_esc(_FONT)}">'
            f"<title>{_esc(title)}</title>"
            + _text(12, 18, title, size=13, extra=' font-weight="600" class="chart-title"'))


def _empty_chart(title: str, width: int, height: int, kind: str) -> str:
    """The frame a chart without anything finite to draw gets, saying so."""
    return (_open_svg(title, width, height, kind)
            + f'<rect class="frame" x="48" y="32" width="{max(1, width - 64)}" height="{max(1, height - 64)}" '
            f'fill="none" stroke="{_FRAME}"/>'
            + _text(width / 2, height / 2 + 4, NO_DATA, size=13, anchor="middle", fill=_MUTED,
                    extra=' class="no-data"')
            + "</svg>")


# --- axes -----------------------------------------------------------------------------------------------


def _y_grid(frame: _Frame, axis: _Axis) -> Iterable[str]:
    for tick in axis.ticks:
        y = _px(frame.sy(tick))
        yield (f'<line class="grid" x1="{_px(frame.left)}" y1="{y}" x2="{_px(frame.right)}" y2="{y}" '
               f'stroke="{_GRID}"/>')
        yield _text(frame.left - 6, frame.sy(tick) + 4, _tick_text(tick, axis.step), size=10, anchor="end",
                    fill=_MUTED, extra=' class="tick y-tick"')


def _x_grid(frame: _Frame, axis: _Axis) -> Iterable[str]:
    for tick in axis.ticks:
        x = _px(frame.sx(tick))
        yield (f'<line class="grid" x1="{x}" y1="{_px(frame.top)}" x2="{x}" y2="{_px(frame.bottom)}" '
               f'stroke="{_GRID}"/>')
        yield _text(frame.sx(tick), frame.bottom + 15, _tick_text(tick, axis.step), size=10, anchor="middle",
                    fill=_MUTED, extra=' class="tick x-tick"')


def _frame_rect(frame: _Frame) -> str:
    return (f'<rect class="frame" x="{_px(frame.left)}" y="{_px(frame.top)}" '
            f'width="{_px(frame.right - frame.left)}" height="{_px(frame.bottom - frame.top)}" '
            f'fill="none" stroke="{_FRAME}"/>')


def _y_label(frame: _Frame, label: str) -> str:
    middle = (frame.top + frame.bottom) / 2
    return _text(-middle, 13, label, size=11, anchor="middle", fill=_MUTED,
                 extra=' transform="rotate(-90)" class="axis-label"')


def _clip_open(frame: _Frame) -> str:
    """A nested viewport over the plot (with the same coordinates) that clips what leaves it."""
    x, y = frame.left - _CLIP_PAD, frame.top - _CLIP_PAD
    w, h = frame.right - frame.left + 2 * _CLIP_PAD, frame.bottom - frame.top + 2 * _CLIP_PAD
    box = f"{_px(x)} {_px(y)} {_px(w)} {_px(h)}"
    return (f'<svg class="plot" x="{_px(x)}" y="{_px(y)}" width="{_px(w)}" height="{_px(h)}" '
            f'viewBox="{box}" overflow="hidden">')


def _left_margin(axis: _Axis) -> float:
    widest = max((_text_width(_tick_text(t, axis.step), 10) for t in axis.ticks), default=10.0)
    return 32 + widest


# --- line chart -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Points:
    """A series' finite points, split into runs at its gaps, and its band's runs of (x, lo, hi)."""

    series: Series
    runs: tuple[tuple[tuple[float, float, str], ...], ...]
    band_runs: tuple[tuple[tuple[float, float, float], ...], ...]


def _as_list(values: Any) -> list:
    try:
        return [] if values is None else list(values)
    except TypeError:
        return []


def _split_runs(items: Iterable[tuple | None]) -> tuple[tuple, ...]:
    runs: list[tuple] = []
    current: list = []
    for item in items:
        if item is None:
            if current:
                runs.append(tuple(current))
            current = []
        else:
            current.append(item)
    if current:
        runs.append(tuple(current))
    return tuple(runs)


def _point_label(series: Series, i: int, x: float, y: float) -> str:
    labels = series.point_labels
    if labels is not None and i < len(labels) and labels[i] is not None:
        return str(labels[i])
    return f"{series.name}: {_short(y)} at {_short(x)}"


def _points(series: Series) -> _Points:
    def point(i: int, x: Any, y: Any) -> tuple[float, float, str] | None:
        fx, fy = finite_number(x), finite_number(y)
        return None if fx is None or fy is None else (fx, fy, _point_label(series, i, fx, fy))

    def band(x: Any, lo: Any, hi: Any) -> tuple[float, float, float] | None:
        fx, flo, fhi = finite_number(x), finite_number(lo), finite_number(hi)
        return None if fx is None or flo is None or fhi is None else (fx, flo, fhi)

    xs, ys = _as_list(series.xs), _as_list(series.ys)
    runs = _split_runs(point(i, x, y) for i, (x, y) in enumerate(zip(xs, ys)))
    band_runs: tuple = ()
    if series.band_lo is not None and series.band_hi is not None:
        band_runs = _split_runs(band(x, lo, hi) for x, lo, hi in zip(xs, _as_list(series.band_lo),
                                                                    _as_list(series.band_hi)))
    return _Points(series, runs, band_runs)


def _marks(lines: Any) -> list[tuple[float, str]]:
    """The (value, label) marks with a finite value; anything else is left out."""
    marks = []
    for mark in _as_list(lines):
        try:
            value, label = mark
        except (TypeError, ValueError):
            continue
        if finite_number(value) is not None:
            marks.append((float(value), "" if label is None else str(label)))
    return marks


def _extent(cleaned: Sequence[_Points], vlines: Sequence[tuple[float, str]],
            hlines: Sequence[tuple[float, str]]) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for item in cleaned:
        for run in item.runs:
            xs.extend(p[0] for p in run)
            ys.extend(p[1] for p in run)
        for run in item.band_runs:
            xs.extend(p[0] for p in run)
            ys.extend(v for p in run for v in p[1:])
    if xs:
        xs.extend(x for x, _ in vlines)
        ys.extend(y for y, _ in hlines)
    return xs, ys


def _fixed_range(y_range: tuple[float, float] | None) -> tuple[float, float] | None:
    if y_range is None:
        return None
    try:
        lo, hi = (finite_number(v) for v in y_range)
    except (TypeError, ValueError):
        return None
    return None if lo is None or hi is None or not lo < hi else (lo, hi)


def _dash(dashed: bool) -> str:
    return ' stroke-dasharray="6 4"' if dashed else ""


def _series_svg(frame: _Frame, item: _Points) -> str:
    s = item.series
    color = _esc(s.color)
    parts = [f'<g class="series" data-name="{_esc(s.name)}">']
    for run in item.band_runs:
        upper = [f"{_px(frame.sx(x))},{_px(frame.sy(hi))}" for x, _, hi in run]
        lower = [f"{_px(frame.sx(x))},{_px(frame.sy(lo))}" for x, lo, _ in reversed(run)]
        parts.append(f'<polygon class="band" points="{" ".join(upper + lower)}" fill="{color}" '
                     f'fill-opacity="0.16" stroke="none"/>')
    path = " ".join("M" + " L".join(f"{_px(frame.sx(x))} {_px(frame.sy(y))}" for x, y, _ in run)
                    for run in item.runs)
    if path:
        parts.append(f'<path class="line" d="{path}" fill="none" stroke="{color}" stroke-width="2" '
                     f'stroke-linejoin="round"{_dash(s.dashed)}/>')
    if s.markers:
        parts.extend(f'<circle class="marker" cx="{_px(frame.sx(x))}" cy="{_px(frame.sy(y))}" r="3.5" '
                     f'fill="{color}" stroke="#fff" stroke-width="1"><title>{_esc(label)}</title></circle>'
                     for run in item.runs for x, y, label in run)
    parts.append("</g>")
    return "".join(parts)


def _vlines_svg(frame: _Frame, vlines: Sequence[tuple[float, str]]) -> Iterable[str]:
    """Vertical marks; a label is written only where it does not run into the previous one."""
    last_labeled = -math.inf
    for x, label in vlines:
        if not frame.x0 <= x <= frame.x1:
            continue
        px = frame.sx(x)
        text = ""
        if label and px - last_labeled >= 12:
            # upwards from the bottom, where a rising curve leaves room
            text = _text(px - 3, frame.bottom - 4, _truncate(label, 18), size=9, fill=_MUTED,
                         extra=f' transform="rotate(-90 {_px(px - 3)} {_px(frame.bottom - 4)})"')
            last_labeled = px
        yield (f'<g class="vline"><title>{_esc(label)}</title><line x1="{_px(px)}" y1="{_px(frame.top)}" '
               f'x2="{_px(px)}" y2="{_px(frame.bottom)}" stroke="{_MARK_LINE}" stroke-dasharray="2 3"/>{text}</g>')


def _hlines_svg(frame: _Frame, hlines: Sequence[tuple[float, str]]) -> Iterable[str]:
    for y, label in hlines:
        if not frame.y0 <= y <= frame.y1:
            continue
        py = frame.sy(y)
        yield (f'<g class="hline"><title>{_esc(label)}</title><line x1="{_px(frame.left)}" y1="{_px(py)}" '
               f'x2="{_px(frame.right)}" y2="{_px(py)}" stroke="#b45309" stroke-dasharray="5 3"/>'
               + _text(frame.right - 4, py - 4, _truncate(label, 40), size=10, anchor="end", fill="#b45309")
               + "</g>")


def _legend_rows(series: Sequence[Series], width: int) -> list[list[tuple[float, Series]]]:
    """Legend entries placed left to right, wrapping to a new row where the width runs out."""
    rows: list[list[tuple[float, Series]]] = [[]]
    x = 12.0
    for s in series:
        entry = 30 + _text_width(_truncate(str(s.name), 48), 11) + 16
        if rows[-1] and x + entry > width - 8:
            rows.append([])
            x = 12.0
        rows[-1].append((x, s))
        x += entry
    return [row for row in rows if row]


def _legend_svg(rows: list[list[tuple[float, Series]]], top: float) -> str:
    parts = ['<g class="legend">']
    for r, row in enumerate(rows):
        y = top + 16 * r
        for x, s in row:
            color = _esc(s.color)
            if s.band_lo is not None and s.band_hi is not None:
                parts.append(f'<rect x="{_px(x)}" y="{_px(y - 5)}" width="24" height="10" fill="{color}" '
                             f'fill-opacity="0.16"/>')
            parts.append(f'<line x1="{_px(x)}" y1="{_px(y)}" x2="{_px(x + 24)}" y2="{_px(y)}" stroke="{color}" '
                         f'stroke-width="2"{_dash(s.dashed)}/>')
            parts.append(_text(x + 30, y + 4, _truncate(str(s.name), 48), size=11, extra=' class="legend-label"'))
    parts.append("</g>")
    return "".join(parts)


def _line_frame(width: int, height: int, top: float, x_axis: _Axis, y_axis: _Axis) -> _Frame:
    left = _left_margin(y_axis)
    bottom = max(top + 40, height - 36)
    return _Frame(left, top, max(left + 40, width - 14), bottom, x_axis.lo, x_axis.hi, y_axis.lo, y_axis.hi)


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str, width: int = 640,
               height: int = 300, y_range: tuple[float, float] | None = None,
               vlines: Sequence[tuple[float, str]] = (), hlines: Sequence[tuple[float, str]] = ()) -> str:
    """Lines (with gaps, bands and markers) over round-ticked axes with gridlines and a legend; a fixed
    ``y_range`` clips what lies outside it. ``vlines`` / ``hlines`` are labeled marks at x / y values."""
    width, height = _size(width, 640), _size(height, 300)
    cleaned = [_points(s) for s in _as_list(series) if isinstance(s, Series)]
    vlines, hlines = _marks(vlines), _marks(hlines)
    xs, ys = _extent(cleaned, vlines, hlines)
    fixed = _fixed_range(y_range)
    x_axis = _axis(min(xs), max(xs), fixed=False) if xs else None
    y_axis = _axis(*(fixed or (min(ys), max(ys))), fixed=fixed is not None) if ys else None
    if x_axis is None or y_axis is None:
        return _empty_chart(title, width, height, "line-chart")
    rows = _legend_rows([item.series for item in cleaned], width)
    frame = _line_frame(width, height, 34 + 16 * len(rows), x_axis, y_axis)
    parts = [_open_svg(title, width, height, "line-chart"), _legend_svg(rows, 34),
             *_y_grid(frame, y_axis), *_x_grid(frame, x_axis), _frame_rect(frame),
             _text((frame.left + frame.right) / 2, height - 6, x_label, anchor="middle", fill=_MUTED,
                   extra=' class="axis-label"'),
             _y_label(frame, y_label), *_hlines_svg(frame, hlines), *_vlines_svg(frame, vlines),
             _clip_open(frame), *(_series_svg(frame, item) for item in cleaned), "</svg></svg>"]
    return "".join(parts)


# --- bar chart ------------------------------------------------------------------------------------------


def _clean_bars(bars: Sequence[tuple[str, float]]) -> list[tuple[str, float | None]]:
    cleaned = []
    for bar in _as_list(bars):
        try:
            label, value = bar
        except (TypeError, ValueError):
            continue
        cleaned.append((str(label), finite_number(value)))
    return cleaned


def _bar_labels(frame: _Frame, bars: Sequence[tuple[str, float | None]], slot: float) -> Iterable[str]:
    """The category labels: level when they fit their slot, slanted when not, thinned when crowded."""
    shown = [_truncate(label, 18) for label, _ in bars]
    slanted = max(_text_width(s, 10) for s in shown) > slot - 4
    every = max(1, math.ceil(12 / slot)) if slanted else 1
    for i, text in enumerate(shown):
        if i % every:
            continue
        cx, y = frame.left + slot * (i + 0.5), frame.bottom + 14
        extra = f' transform="rotate(-40 {_px(cx)} {_px(y)})" class="bar-label"' if slanted else ' class="bar-label"'
        yield _text(cx + (3 if slanted else 0), y, text, size=10, anchor="end" if slanted else "middle", extra=extra)


def _bar_bottom_margin(bars: Sequence[tuple[str, float | None]], slot: float) -> float:
    widest = max(_text_width(_truncate(label, 18), 10) for label, _ in bars)
    return 40 if widest <= slot - 4 else 26 + 0.65 * widest


def _bars_svg(frame: _Frame, bars: Sequence[tuple[str, float | None]], slot: float, color: str) -> Iterable[str]:
    base = frame.sy(min(max(0.0, frame.y0), frame.y1))
    bar_width = max(1.0, min(56.0, slot * 0.7))
    for i, (label, value) in enumerate(bars):
        x = frame.left + slot * i + (slot - bar_width) / 2
        if value is None:
            yield _text(x + bar_width / 2, base - 4, "n/a", size=9, anchor="middle", fill=_MUTED)
            continue
        top = frame.sy(max(frame.y0, min(frame.y1, value)))
        y, h = min(top, base), abs(base - top)
        yield (f'<rect class="bar" x="{_px(x)}" y="{_px(y)}" width="{_px(bar_width)}" height="{_px(h)}" '
               f'fill="{_esc(color)}"><title>{_esc(label)}: {_esc(_short(value))}</title></rect>')
        if slot >= 22:  # a negative bar's value sits above the zero line, clear of the category labels
            ty = y - 4 if value >= 0 else base - 4
            yield _text(x + bar_width / 2, ty, _short(value), size=9, anchor="middle", fill=_MUTED,
                        extra=' class="bar-value"')


def bar_chart(bars: Sequence[tuple[str, float]], *, title: str, y_label: str,
              y_range: tuple[float, float] | None = None, width: int = 640, height: int = 260,
              color: str = _BAR) -> str:
    """One bar per (label, value), from zero (bars may be negative); a None or NaN value is a gap
    marked "n/a". Labels slant when they do not fit their slot; each bar's full label is its hover text."""
    width, height = _size(width, 640), _size(height, 260)
    cleaned = _clean_bars(bars)
    values = [v for _, v in cleaned if v is not None]
    fixed = _fixed_range(y_range)
    y_axis = None
    if values:
        lo, hi = fixed or (min(0.0, *values), max(0.0, *values))
        y_axis = _axis(lo, hi, fixed=fixed is not None)
    if y_axis is None:
        return _empty_chart(title, width, height, "bar-chart")
    left = _left_margin(y_axis)
    slot = (width - 14 - left) / len(cleaned)
    bottom = height - _bar_bottom_margin(cleaned, slot)
    if bottom < 80:
        height, bottom = int(height + 80 - bottom), 80.0
    frame = _Frame(left, 30, width - 14, bottom, 0.0, 1.0, y_axis.lo, y_axis.hi)
    return "".join([_open_svg(title, width, height, "bar-chart"), *_y_grid(frame, y_axis), _frame_rect(frame),
                    _y_label(frame, y_label), *_bars_svg(frame, cleaned, slot, color),
                    *_bar_labels(frame, cleaned, slot), "</svg>"])
