"""The strawberry chart: a server-rendered SVG (ElementTree), readable without JavaScript.

Each line is one challenge's strawberry count over time, computed from the score formula at
evenly spaced instants (the formula is exact, so no history table is needed).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta

from clubstack.contest import scoring

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 16, 36
COLOURS = ("#c0392b", "#2471a3", "#1e8449", "#b9770e", "#7d3c98", "#117a65", "#5d6d7e",
           "#a04000")


@dataclass
class Series:
    label: str
    performance: float
    published: datetime
    first_break: datetime | None


def sample(series: Series, start: datetime, end: datetime, final: datetime | None,
           points: int = 60) -> list[tuple[datetime, float]]:
    step = (end - start) / max(1, points - 1)
    return [
        (start + i * step, scoring.strawberries(series.performance, series.published,
                                                start + i * step, series.first_break, final))
        for i in range(points)
    ]


def render(series: list[Series], now: datetime, final: datetime | None,
           title: str = "Strawberries of the top challenges over time") -> str:
    svg = ET.Element("svg", {
        "xmlns": "http://www.w3.org/2000/svg", "viewBox": f"0 0 {WIDTH} {HEIGHT}",
        "role": "img", "aria-labelledby": "chart-title chart-desc", "class": "chart",
    })
    ET.SubElement(svg, "title", {"id": "chart-title"}).text = title
    desc = ET.SubElement(svg, "desc", {"id": "chart-desc"})
    if not series:
        desc.text = "No challenge is published yet."
        text = ET.SubElement(svg, "text", {"x": str(WIDTH // 2), "y": str(HEIGHT // 2),
                                           "text-anchor": "middle", "fill": "currentColor"})
        text.text = "No challenge is published yet."
        return ET.tostring(svg, encoding="unicode")
    end = min(now, final) if final is not None else now
    start = min(s.published for s in series)
    if end <= start:
        end = start + timedelta(minutes=1)
    curves = [sample(s, start, end, final) for s in series]
    top = max((v for curve in curves for _, v in curve), default=0.0) or 1.0
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    span = (end - start).total_seconds()

    def x(at: datetime) -> float:
        return LEFT + plot_w * (at - start).total_seconds() / span

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    axes = ET.SubElement(svg, "g", {"stroke": "currentColor", "stroke-width": "1"})
    ET.SubElement(axes, "line", {"x1": str(LEFT), "y1": str(TOP), "x2": str(LEFT),
                                 "y2": str(TOP + plot_h)})
    ET.SubElement(axes, "line", {"x1": str(LEFT), "y1": str(TOP + plot_h),
                                 "x2": str(LEFT + plot_w), "y2": str(TOP + plot_h)})
    labels = ET.SubElement(svg, "g", {"fill": "currentColor", "font-size": "13"})
    for frac in (0, 0.5, 1):
        value = top * frac
        t = ET.SubElement(labels, "text", {"x": str(LEFT - 6), "y": f"{y(value) + 4:.1f}",
                                           "text-anchor": "end"})
        t.text = f"{value:.3g}"
    for frac, anchor in ((0, "start"), (1, "end")):
        at = start + (end - start) * frac
        t = ET.SubElement(labels, "text", {"x": f"{x(at):.1f}", "y": str(HEIGHT - 12),
                                           "text-anchor": anchor})
        t.text = f"{at:%Y-%m-%d %H:%M}"
    summary = []
    for i, (s, curve) in enumerate(zip(series, curves, strict=True)):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{x(at):.1f},{y(v):.1f}" for at, v in curve)
        line = ET.SubElement(svg, "polyline", {"points": points, "fill": "none",
                                               "stroke": colour, "stroke-width": "2"})
        ET.SubElement(line, "title").text = f"{s.label}: {curve[-1][1]:.3g} strawberries"
        ly = TOP + 14 + 16 * i
        ET.SubElement(svg, "rect", {"x": str(WIDTH - RIGHT + 10), "y": str(ly - 9),
                                    "width": "10", "height": "10", "fill": colour})
        legend = ET.SubElement(svg, "text", {"x": str(WIDTH - RIGHT + 24), "y": str(ly),
                                             "font-size": "13", "fill": "currentColor"})
        legend.text = s.label
        summary.append(f"{s.label} {curve[-1][1]:.3g}")
    desc.text = "Current strawberries: " + ", ".join(summary) + "."
    return ET.tostring(svg, encoding="unicode")
