"""The dashboard's SVG charts: well-formed XML, the points that went in, round ticks, escaped text, and
an empty frame (never an exception) for data with nothing to draw."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from lasl_backend.serving.svg import NO_DATA, Series, bar_chart, line_chart, nice_ticks

NS = {"svg": "http://www.w3.org/2000/svg"}
EVIL = '<script>alert("x")</script>'


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("role") == "img"
    assert root.find("svg:title", NS) is not None
    return root


def markers(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//svg:circle[@class='marker']", NS)


def paths(root: ET.Element) -> list[str]:
    return [p.get("d", "") for p in root.findall(".//svg:path[@class='line']", NS)]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]


def is_empty_frame(root: ET.Element) -> bool:
    return NO_DATA in texts(root) and not markers(root) and not paths(root)


def line(xs, ys, **kw) -> str:
    return line_chart([Series("F1", xs, ys, "#2563eb", **kw)], title="t", x_label="x", y_label="y")


# --- ticks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lo", "hi", "want"), [
    (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (3.0, 97.0, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]),
    (-0.3, 0.05, [-0.3, -0.2, -0.1, 0.0, 0.1]),
    (120.0, 1450.0, [0.0, 500.0, 1000.0, 1500.0]),
])
def test_ticks_are_round_and_cover_the_range(lo: float, hi: float, want: list[float]) -> None:
    assert nice_ticks(lo, hi) == want


def test_ticks_of_one_value_surround_it() -> None:
    ticks = nice_ticks(5.0, 5.0)
    assert ticks[0] < 5.0 < ticks[-1] and 5.0 in ticks
    zero = nice_ticks(0.0, 0.0)
    assert zero[0] < 0.0 < zero[-1]


def test_ticks_are_exact_decimals_and_evenly_spaced() -> None:
    ticks = nice_ticks(0.0, 0.7)
    assert all(repr(t) == repr(round(t, 6)) for t in ticks)
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1


@pytest.mark.parametrize(("lo", "hi"), [(math.nan, 1.0), (0.0, math.inf), (-math.inf, math.inf)])
def test_ticks_of_non_finite_ends_are_empty(lo: float, hi: float) -> None:
    assert nice_ticks(lo, hi) == []


# --- line chart -----------------------------------------------------------------------------------------


def test_line_chart_has_one_marker_per_point_and_one_path_vertex_per_point() -> None:
    root = parse(line([10, 20, 30, 40, 50], [0.1, 0.3, 0.4, 0.45, 0.5]))
    assert len(markers(root)) == 5
    (d,) = paths(root)
    assert d.count("M") == 1 and d.count("L") == 4


def test_a_missing_value_is_a_gap_not_a_zero() -> None:
    root = parse(line([1, 2, 3, 4, 5], [0.2, None, 0.4, math.nan, 0.6]))
    assert len(markers(root)) == 3
    (d,) = paths(root)
    assert d.count("M") == 3  # three runs of one point each: nothing joins across a gap
    assert d.count("L") == 0


def test_the_band_is_a_polygon_per_run_with_both_edges() -> None:
    root = parse(line([1, 2, 3, 4], [0.5, 0.6, 0.7, 0.75], band_lo=[0.4, 0.5, None, 0.7],
                      band_hi=[0.6, 0.7, 0.8, 0.8]))
    polygons = root.findall(".//svg:polygon[@class='band']", NS)
    assert [len(p.get("points", "").split()) for p in polygons] == [4, 2]  # (2 points) x 2 edges, then 1 x 2
    assert all(float(p.get("fill-opacity", "1")) < 0.5 for p in polygons)


def test_a_dashed_series_without_markers() -> None:
    svg = line_chart([Series("fit", [1, 2, 3], [0.1, 0.2, 0.3], "#7c3aed", dashed=True, markers=False)],
                     title="t", x_label="x", y_label="y")
    root = parse(svg)
    assert not markers(root)
    (path,) = root.findall(".//svg:path[@class='line']", NS)
    assert path.get("stroke-dasharray")


def test_legend_names_every_series() -> None:
    root = parse(line_chart([Series("held-back F1", [1, 2], [0.1, 0.2], "#000"),
                             Series("fitted curve", [1, 2], [0.1, 0.2], "#111", dashed=True)],
                            title="t", x_label="x", y_label="y"))
    legend = root.find(".//svg:g[@class='legend']", NS)
    assert legend is not None
    assert {"held-back F1", "fitted curve"} <= set(texts(legend))


def test_axes_have_tick_labels_and_gridlines() -> None:
    root = parse(line([0, 100, 200], [0.0, 0.5, 1.0]))
    ticks = root.findall(".//svg:text[@class='tick y-tick']", NS)
    assert ["".join(t.itertext()) for t in ticks] == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert root.findall(".//svg:text[@class='tick x-tick']", NS)
    assert len(root.findall(".//svg:line[@class='grid']", NS)) >= 6


def test_tick_labels_share_their_decimals_and_never_read_minus_zero() -> None:
    root = parse(line([1, 2], [-0.3, 0.05]))
    ticks = ["".join(t.itertext()) for t in root.findall(".//svg:text[@class='tick y-tick']", NS)]
    assert ticks == ["-0.3", "-0.2", "-0.1", "0.0", "0.1"]


def test_a_fixed_range_keeps_its_ends_and_clips_what_leaves_it() -> None:
    svg = line_chart([Series("s", [1, 2, 3], [0.5, 3.0, -2.0], "#000")], title="t", x_label="x", y_label="y",
                     y_range=(0.0, 1.0))
    root = parse(svg)
    ticks = ["".join(t.itertext()) for t in root.findall(".//svg:text[@class='tick y-tick']", NS)]
    assert ticks[0] == "0.0" and ticks[-1] == "1.0"
    plot = root.find(".//svg:svg[@class='plot']", NS)
    assert plot is not None and plot.get("overflow") == "hidden"
    assert len(plot.findall(".//svg:circle[@class='marker']", NS)) == 3


def test_hlines_and_vlines_are_drawn_with_their_labels() -> None:
    svg = line_chart([Series("k", [100, 200, 300], [0.9, 0.95, 0.98], "#000")], title="t", x_label="x",
                     y_label="y", vlines=[(100, "v1"), (300, "v3")], hlines=[(0.97, "threshold 0.97")])
    root = parse(svg)
    assert len(root.findall(".//svg:g[@class='vline']", NS)) == 2
    (hline,) = root.findall(".//svg:g[@class='hline']", NS)
    assert "threshold 0.97" in texts(hline)


def test_crowded_vline_labels_are_thinned_but_every_line_stays() -> None:
    xs = list(range(100))
    svg = line_chart([Series("s", xs, [x / 100 for x in xs], "#000")], title="t", x_label="x", y_label="y",
                     vlines=[(x, f"v{x}") for x in xs])
    root = parse(svg)
    vlines = root.findall(".//svg:g[@class='vline']", NS)
    assert len(vlines) == 100
    labeled = [v for v in vlines if v.find("svg:text", NS) is not None]
    assert 0 < len(labeled) < 100


def test_user_text_is_escaped_everywhere() -> None:
    svg = line_chart([Series(EVIL, [1, 2], [0.1, 0.2], "#000", point_labels=[EVIL, EVIL])], title=EVIL,
                     x_label=EVIL, y_label=EVIL, vlines=[(1, EVIL)], hlines=[(0.15, EVIL)])
    assert "<script" not in svg
    root = parse(svg)
    assert root.find("svg:title", NS).text == EVIL
    assert EVIL in texts(root)


@pytest.mark.parametrize("ys", [[], [None, None], [math.nan, math.inf], [-math.inf]])
def test_nothing_finite_is_an_empty_frame(ys: list) -> None:
    root = parse(line(list(range(len(ys))), ys))
    assert is_empty_frame(root)


def test_no_series_at_all_is_an_empty_frame() -> None:
    root = parse(line_chart([], title="nothing", x_label="x", y_label="y"))
    assert is_empty_frame(root)
    assert root.find("svg:title", NS).text == "nothing"


def test_a_single_point() -> None:
    root = parse(line([100], [0.5]))
    assert len(markers(root)) == 1
    assert len(root.findall(".//svg:text[@class='tick x-tick']", NS)) >= 2


def test_all_equal_values_and_negative_numbers() -> None:
    flat = parse(line([1, 2, 3], [0.7, 0.7, 0.7]))
    assert len(markers(flat)) == 3
    negative = parse(line([-30, -20, -10], [-5.0, -1.0, -3.0]))
    assert len(markers(negative)) == 3
    assert any(t.startswith("-") for t in texts(negative))


def test_huge_and_odd_values_do_not_raise() -> None:
    assert is_empty_frame(parse(line([0, 1], [-1.7e308, 1.7e308])))
    assert len(markers(parse(line([0, 1e12], [1e-300, 2e-300])))) == 2
    assert len(markers(parse(line(["a", 1, 2], ["0.5", 0.6, object()])))) == 1  # only (1, 0.6) is a number
    assert len(markers(parse(line([1, 2, 3], [0.1, 0.2])))) == 2  # the shorter of xs and ys


def test_malformed_marks_are_left_out() -> None:
    svg = line_chart([Series("s", [1, 2], [0.1, 0.2], "#000")], title="t", x_label="x", y_label="y",
                     vlines=[(1.5, "ok"), (math.nan, "nan"), "bad", (None, None)], hlines=[(0.15, None), (1, 2, 3)])
    root = parse(svg)
    assert len(root.findall(".//svg:g[@class='vline']", NS)) == 1
    assert len(root.findall(".//svg:g[@class='hline']", NS)) == 1


@pytest.mark.parametrize(("lo", "hi"), [(1.0, 1.00005), (2e9, 2.01e9), (1e-7, 5e-7)])
def test_neighbouring_tick_labels_differ_at_any_scale(lo: float, hi: float) -> None:
    root = parse(line([0, 1], [lo, hi]))
    ticks = ["".join(t.itertext()) for t in root.findall(".//svg:text[@class='tick y-tick']", NS)]
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks)


def test_all_coordinates_are_plain_numbers() -> None:
    svg = line([1, 2, 3], [0.1, 1e9, -1e9])
    for value in re.findall(r' (?:x|y|x1|x2|y1|y2|cx|cy|width|height)="([^"]*)"', svg):
        assert math.isfinite(float(value))


# --- bar chart ------------------------------------------------------------------------------------------


def bars(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//svg:rect[@class='bar']", NS)


def test_bar_chart_has_one_bar_per_finite_value() -> None:
    root = parse(bar_chart([("症状", 0.8), ("疾病", 0.6), ("药物", math.nan), ("检查", None)], title="F1",
                           y_label="F1", y_range=(0.0, 1.0)))
    assert len(bars(root)) == 2
    assert texts(root).count("n/a") == 2
    labels = {"".join(t.itertext()) for t in root.findall(".//svg:text[@class='bar-label']", NS)}
    assert labels == {"症状", "疾病", "药物", "检查"}


def test_bar_heights_follow_the_values() -> None:
    root = parse(bar_chart([("a", 0.25), ("b", 0.5), ("c", 1.0)], title="t", y_label="y", y_range=(0.0, 1.0)))
    heights = [float(b.get("height", "0")) for b in bars(root)]
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.2)
    assert heights[2] == pytest.approx(4 * heights[0], abs=0.2)


def test_negative_bars_hang_below_zero() -> None:
    root = parse(bar_chart([("up", 2.0), ("down", -1.0)], title="t", y_label="y"))
    up, down = bars(root)
    assert float(up.get("y")) + float(up.get("height")) == pytest.approx(float(down.get("y")))


def test_long_labels_are_shortened_with_the_full_label_as_hover_text() -> None:
    long = "非常非常长的实体类别名称用于测试截断功能是否正常"
    root = parse(bar_chart([(long, 0.5), ("b", 0.4)], title="t", y_label="y"))
    shown = ["".join(t.itertext()) for t in root.findall(".//svg:text[@class='bar-label']", NS)]
    assert shown[0].endswith("…") and len(shown[0]) < len(long)
    assert bars(root)[0].find("svg:title", NS).text.startswith(long)


def test_many_bars_stay_well_formed() -> None:
    root = parse(bar_chart([(f"label {i}", i / 60) for i in range(60)], title="t", y_label="y"))
    assert len(bars(root)) == 60


@pytest.mark.parametrize("data", [[], [("a", None)], [("a", math.inf), ("b", math.nan)], [("only", 0.0)]])
def test_bar_chart_edge_cases(data: list) -> None:
    root = parse(bar_chart(data, title="t", y_label="y"))
    if data == [("only", 0.0)]:
        assert len(bars(root)) == 1
    else:
        assert NO_DATA in texts(root) and not bars(root)


def test_bar_labels_are_escaped() -> None:
    svg = bar_chart([(EVIL, 0.5)], title=EVIL, y_label=EVIL)
    assert "<script" not in svg
    assert EVIL in texts(parse(svg))
