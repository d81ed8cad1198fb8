"""Small line charts as inline SVG, drawn on the server: a pure function from the points to the
markup, so the monitoring page needs no JavaScript library and the drawing is unit-tested.

A chart spans a fixed time window (x) and 0 to the largest value shown (y, at least `floor` so a
flat zero line sits at the bottom rather than filling the chart); each series is one polyline.
Points are placed by their time, so a gap in the samples (a stopped instance) shows as a
straight segment across it rather than being squeezed out."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 600, 160
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 48, 18, 8
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea")


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]  # (seconds since the window's start, value)


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    span: float  # seconds the x axis covers
    series: list[Series] = field(default_factory=list)
    floor: float = 1.0  # the smallest top of the y axis
    start_label: str = ""  # under the x axis' ends
    end_label: str = ""


def top(chart: Chart) -> float:
    values = [v for s in chart.series for _, v in s.points]
    return max([chart.floor, *values])


def polyline(points: list[tuple[float, float]], span: float, y_max: float) -> str:
    """The `points` attribute of an SVG polyline: x from 0..span and y from 0..y_max mapped onto
    the plot area (y grows downwards in SVG), rounded to a tenth of a pixel."""
    plot_w = WIDTH - MARGIN_LEFT
    plot_h = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    coords = []
    for t, v in sorted(points):
        x = MARGIN_LEFT + plot_w * min(max(t / span, 0.0), 1.0) if span > 0 else MARGIN_LEFT
        y = MARGIN_TOP + plot_h * (1 - min(max(v / y_max, 0.0), 1.0)) if y_max > 0 else HEIGHT - MARGIN_BOTTOM
        coords.append(f"{x:.1f},{y:.1f}")
    return " ".join(coords)


def number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.2g}"


def render(chart: Chart) -> str:
    """The chart's <svg> element; every text in it escaped."""
    y_max = top(chart)
    bottom = HEIGHT - MARGIN_BOTTOM
    parts = [
        (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(chart.title)}">'),
        f"<title>{escape(chart.title)} ({escape(chart.unit)})</title>",
        f'<line class="axis" x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" y2="{bottom}" stroke="#999"/>',
        f'<line class="axis" x1="{MARGIN_LEFT}" y1="{bottom}" x2="{WIDTH}" y2="{bottom}" stroke="#999"/>',
        f'<text x="2" y="{MARGIN_TOP + 10}" font-size="11">{escape(number(y_max))}</text>',
        f'<text x="2" y="{bottom}" font-size="11">0</text>',
        f'<text x="{MARGIN_LEFT}" y="{HEIGHT - 4}" font-size="11">{escape(chart.start_label)}</text>',
        f'<text x="{WIDTH}" y="{HEIGHT - 4}" font-size="11" text-anchor="end">{escape(chart.end_label)}</text>',
    ]
    for n, series in enumerate(chart.series):
        colour = COLOURS[n % len(COLOURS)]
        parts.append(
            f'<polyline class="series" data-series="{escape(series.name)}" fill="none" stroke="{colour}" '
            f'stroke-width="1.5" points="{polyline(series.points, chart.span, y_max)}"/>'
        )
        parts.append(  # the legend, top left: the latest points are on the right
            f'<text x="{MARGIN_LEFT + 6}" y="{MARGIN_TOP + 12 + 13 * n}" font-size="11" fill="{colour}">'
            f"{escape(series.name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
