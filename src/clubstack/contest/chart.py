"""The strawberry chart: a server-rendered SVG (ElementTree), readable without JavaScript.

Each line is one challenge's strawberry count over time, computed from the score formula at
evenly spaced instants (the formula is exact, so no history table is needed).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta

from clubstack.contest import scoring

# Narrow enough that 17-unit text stays readable on a 360 px phone (scaled to about 0.7);
# the legend goes under the plot, one row per challenge, instead of eating its width.
WIDTH, PLOT_HEIGHT = 400, 250
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 16, 42
FONT = "17"
LEGEND_ROW = 22
MIN_SPAN = timedelta(hours=1)
COLOURS = ("#c0392b", "#2471a3", "#1e8449", "#b9770e", "#7d3c98", "#117a65", "#5d6d7e", "#a04000")


@dataclass
class Series:
    label: str
    performance: float
    published: datetime
    first_break: datetime | None


def sample(
    series: Series, start: datetime, end: datetime, final: datetime | None, points: int = 60
) -> list[tuple[datetime, float]]:
    step = (end - start) / max(1, points - 1)
    return [
        (
            start + i * step,
            scoring.strawberries(
                series.performance, series.published, start + i * step, series.first_break, final
            ),
        )
        for i in range(points)
    ]


def _number(value: float) -> str:
    if not value:
        return "0"
    if abs(value) < 0.01:
        return "< 0.01"
    return f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"


def _time_label(at: datetime, span: timedelta) -> str:
    return f"{at:%H:%M}" if span <= timedelta(days=1) else f"{at:%d %b %H:%M}"


def render(
    series: list[Series],
    now: datetime,
    final: datetime | None,
    title: str = "Strawberries of the top challenges over time",
) -> str:
    height = PLOT_HEIGHT + (LEGEND_ROW * len(series) + 8 if series else 0)
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {WIDTH} {height}",
            "role": "img",
            "aria-labelledby": "chart-title chart-desc",
            "class": "chart",
        },
    )
    ET.SubElement(svg, "title", {"id": "chart-title"}).text = title
    desc = ET.SubElement(svg, "desc", {"id": "chart-desc"})
    if not series:
        desc.text = "No challenge is published yet."
        text = ET.SubElement(
            svg,
            "text",
            {
                "x": str(WIDTH // 2),
                "y": str(height // 2),
                "text-anchor": "middle",
                "fill": "currentColor",
                "font-size": FONT,
            },
        )
        text.text = "No challenge is published yet."
        return ET.tostring(svg, encoding="unicode")
    end = min(now, final) if final is not None else now
    start = min(s.published for s in series)
    if end - start < MIN_SPAN:  # just published: show the last hour, not one minute
        start = end - MIN_SPAN
    curves = [sample(s, start, end, final) for s in series]
    top = max((v for curve in curves for _, v in curve), default=0.0) or 1.0
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = PLOT_HEIGHT - TOP - BOTTOM
    span = (end - start).total_seconds()

    def x(at: datetime) -> float:
        return LEFT + plot_w * (at - start).total_seconds() / span

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    axes = ET.SubElement(svg, "g", {"stroke": "currentColor", "stroke-width": "1"})
    ET.SubElement(
        axes, "line", {"x1": str(LEFT), "y1": str(TOP), "x2": str(LEFT), "y2": str(TOP + plot_h)}
    )
    ET.SubElement(
        axes,
        "line",
        {
            "x1": str(LEFT),
            "y1": str(TOP + plot_h),
            "x2": str(LEFT + plot_w),
            "y2": str(TOP + plot_h),
        },
    )
    labels = ET.SubElement(svg, "g", {"fill": "currentColor", "font-size": FONT})
    for frac in (0, 0.5, 1):
        value = top * frac
        t = ET.SubElement(
            labels,
            "text",
            {
                "x": str(LEFT - 6),
                "y": f"{y(value) + 5:.1f}",
                "text-anchor": "end",
                "class": "y-label",
            },
        )
        t.text = _number(value)
    for frac, anchor in ((0, "start"), (0.5, "middle"), (1, "end")):
        at = start + (end - start) * frac
        t = ET.SubElement(
            labels,
            "text",
            {
                "x": f"{x(at):.1f}",
                "y": str(PLOT_HEIGHT - 14),
                "text-anchor": anchor,
                "class": "x-label",
            },
        )
        t.text = _time_label(at, end - start)
    summary = []
    for i, (s, curve) in enumerate(zip(series, curves, strict=True)):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{x(at):.1f},{y(v):.1f}" for at, v in curve)
        line = ET.SubElement(
            svg,
            "polyline",
            {"points": points, "fill": "none", "stroke": colour, "stroke-width": "2"},
        )
        ET.SubElement(line, "title").text = f"{s.label}: {_number(curve[-1][1])} strawberries"
        ly = PLOT_HEIGHT + 8 + LEGEND_ROW * i + 14
        ET.SubElement(
            svg,
            "rect",
            {"x": str(LEFT), "y": str(ly - 11), "width": "12", "height": "12", "fill": colour},
        )
        legend = ET.SubElement(
            svg,
            "text",
            {"x": str(LEFT + 20), "y": str(ly), "font-size": FONT, "fill": "currentColor"},
        )
        legend.text = f"{s.label}: {_number(curve[-1][1])}"
        summary.append(f"{s.label} {_number(curve[-1][1])}")
    desc.text = "Current strawberries: " + ", ".join(summary) + "."
    return ET.tostring(svg, encoding="unicode")
