"""The console's SVG line charts (nubes.console.charts): where points land, the y axis' top, gaps,
and escaping."""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

from nubes.console.charts import (
    HEIGHT,
    MARGIN_BOTTOM,
    MARGIN_LEFT,
    MARGIN_TOP,
    WIDTH,
    Chart,
    Series,
    polyline,
    render,
    top,
)

BOTTOM = HEIGHT - MARGIN_BOTTOM


def coords(points: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in points.split())]


def test_points_map_time_to_x_and_value_to_y_with_the_largest_value_at_the_top() -> None:
    drawn = coords(polyline([(0, 0), (30, 50), (60, 100)], span=60, y_max=100))
    assert drawn == [
        (MARGIN_LEFT, BOTTOM),
        ((MARGIN_LEFT + WIDTH) / 2, (MARGIN_TOP + BOTTOM) / 2),
        (WIDTH, MARGIN_TOP),
    ]


def test_points_are_drawn_in_time_order_and_clamped_to_the_plot() -> None:
    drawn = coords(polyline([(90, 10), (-5, 10), (30, 500)], span=60, y_max=100))
    assert [x for x, _ in drawn] == [MARGIN_LEFT, (MARGIN_LEFT + WIDTH) / 2, WIDTH]
    assert drawn[1][1] == MARGIN_TOP  # above the top: drawn at the top


def test_a_gap_in_the_samples_keeps_the_time_scale() -> None:
    drawn = coords(polyline([(0, 1), (10, 1), (50, 1)], span=100, y_max=2))
    xs = [x for x, _ in drawn]
    assert xs[2] - xs[1] == 4 * (xs[1] - xs[0])


def test_the_axis_top_is_the_largest_value_or_the_floor() -> None:
    chart = Chart("CPU", "%", 60, [Series("CPU", [(0, 3.0), (60, 7.5)]), Series("x", [(0, 42.0)])])
    assert top(chart) == 42.0
    assert top(Chart("idle", "%", 60, [Series("CPU", [(0, 0.0)])], floor=5)) == 5
    assert top(Chart("empty", "%", 60)) == 1.0


def test_render_is_one_svg_with_a_polyline_per_series_and_escaped_text() -> None:
    chart = Chart(
        "Network <in/out>",
        "kbit & more",
        3600,
        [Series("RX", [(0, 1), (60, 2)]), Series('TX"', [(0, 2), (60, 4)]), Series("none", [])],
    )
    svg = render(chart)
    root = ET.fromstring(svg)  # well-formed XML: the escaping held
    assert root.tag == "svg"
    lines = root.findall("polyline")
    assert [p.get("data-series") for p in lines] == ["RX", 'TX"', "none"]
    assert len(coords(lines[0].get("points", ""))) == 2
    assert lines[2].get("points") == ""
    assert "Network &lt;in/out&gt;" in svg
    assert "kbit &amp; more" in svg
    assert re.search(r">4<", svg)  # the y axis' top label
