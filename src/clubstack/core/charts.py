"""Time-series charts as server-rendered SVG (ElementTree): readable without JavaScript.

The one chart renderer for every service (capsul graphs, the balance over time, the
strawberry chart). A service builds its series and says how to write a value and a time;
this module scales, lays out and draws. Plain Python: no Flask, no request.

Accessibility and the CSP: each chart is an `<svg role="img">` whose `<title>` and `<desc>`
(joined by `aria-labelledby`) say what it shows in words; colours and sizes are SVG
presentation attributes or classes, never a `style` attribute (the CSP forbids inline style).
Text is sized in the chart's own units: the SVG scales with the page, so a layout's `font`
is chosen for the width at which the chart is drawn on a 360 px phone.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

# One palette for every chart (lines and legend swatches); the first two are the capsul
# graphs' blue and orange.
COLOURS = ("#2b6cb0", "#c05621", "#1e8449", "#c0392b", "#7d3c98", "#b9770e", "#117a65", "#5d6d7e")
# A label's width, estimated: a proportional sans-serif averages well under 0.6 em a character.
CHAR_EM = 0.6

Point = tuple[datetime, float]


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[Point]
    # draw as steps (the value holds until the next point), as a balance does
    step: bool = False
    # an extra class on the line, for a service's stylesheet
    css_class: str | None = None


@dataclass(frozen=True)
class Layout:
    """The drawing area in chart units; the legend (if any) adds rows below `height`."""

    width: int = 600
    height: int = 220
    left: int = 92
    right: int = 10
    top: int = 32
    bottom: int = 34
    font: int = 17
    legend: bool = True
    # draw the title as visible text above the plot (for charts with no heading of their own)
    heading: bool = False
    css_class: str = "chart"

    @property
    def row(self) -> int:
        return self.font + 6


DEFAULT_LAYOUT = Layout()


@dataclass(frozen=True)
class Scale:
    """Maps times to x and values to y inside a layout's plot area."""

    layout: Layout
    start: datetime
    end: datetime
    low: float
    high: float

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        frac = (at - self.start).total_seconds() / span
        plot_w = self.layout.width - self.layout.left - self.layout.right
        return round(self.layout.left + min(max(frac, 0.0), 1.0) * plot_w, 1)

    def y(self, value: float) -> float:
        plot_h = self.layout.height - self.layout.top - self.layout.bottom
        frac = (value - self.low) / ((self.high - self.low) or 1.0)
        return round(self.layout.top + (1 - min(max(frac, 0.0), 1.0)) * plot_h, 1)


def value_range(
    values: Sequence[float],
    *,
    headroom: float = 1.0,
    fixed_max: float | None = None,
    least_max: float = 0.0,
    least_span: float = 1.0,
) -> tuple[float, float]:
    """The value axis, (low, high): always holds zero and every value.

    `headroom` stretches the top above the peak; `fixed_max` sets the top outright (100%,
    a plan's memory); `least_max` keeps an idle graph from reading 0 / 0.5 / 1; a flat
    series gets `least_span` so it still has a scale.
    """
    low = min([*values, 0.0])
    high = fixed_max if fixed_max is not None else max([*values, 0.0]) * headroom
    high = max(high, least_max)
    if high <= low:
        high = low + least_span
    return low, high


def downsample(
    points: Sequence[Point], start: datetime, end: datetime, buckets: int
) -> list[Point]:
    """Mean value per time bucket, placed at the bucket's middle: fewer points, same shape.
    Points outside [start, end] are dropped."""
    span = end - start
    seconds = span.total_seconds() or 1.0
    sums: dict[int, list[float]] = {}
    for at, value in points:
        frac = (at - start).total_seconds() / seconds
        if 0 <= frac <= 1:
            sums.setdefault(min(int(frac * buckets), buckets - 1), []).append(value)
    return [
        (start + span * ((i + 0.5) / buckets), sum(v) / len(v)) for i, v in sorted(sums.items())
    ]


def text_width(text: str, font: float) -> float:
    return len(text) * font * CHAR_EM


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "chart"


def _text(parent: ET.Element, x: float, y: float, text: str, font: int, **attrs: str) -> ET.Element:
    element = ET.SubElement(
        parent,
        "text",
        {"x": f"{x:g}", "y": f"{y:g}", "font-size": str(font), "fill": "currentColor", **attrs},
    )
    element.text = text
    return element


def _x_ticks(
    scale: Scale, times: Sequence[datetime], time_text: Callable[[datetime], str]
) -> list[tuple[float, str, str]]:
    """(x, anchor, text) for each time label that fits: the last (now) always, then the
    first, then those between, each only where it overlaps no label kept and says
    something new."""
    layout = scale.layout
    ticks: list[tuple[float, str, str, float, float]] = []
    for i, at in enumerate(times):
        x, text = scale.x(at), time_text(at)
        width = text_width(text, layout.font)
        if i == 0:
            ticks.append((x, "start", text, x, x + width))
        elif i == len(times) - 1:
            ticks.append((x, "end", text, x - width, x))
        else:
            ticks.append((x, "middle", text, x - width / 2, x + width / 2))
    kept: list[tuple[float, str, str, float, float]] = []
    for tick in ticks[-1:] + ticks[:1] + ticks[1:-1]:
        clear = all(tick[4] + layout.font <= k[3] or k[4] + layout.font <= tick[3] for k in kept)
        if clear and all(tick[2] != k[2] for k in kept):
            kept.append(tick)
    return [(x, anchor, text) for x, anchor, text, _, _ in sorted(kept)]


def time_chart(
    title: str,
    series: Sequence[Series],
    start: datetime,
    end: datetime,
    *,
    value_text: Callable[[float], str],
    time_text: Callable[[datetime], str],
    y_range: tuple[float, float],
    description: str,
    layout: Layout = DEFAULT_LAYOUT,
    value_ticks: Sequence[float] | None = None,
    time_ticks: int = 2,
    mark: float | None = None,
    empty_text: str = "No data yet.",
) -> str:
    """One chart as SVG text (ElementTree escapes every string).

    `y_range` is the value axis, (low, high), usually from `value_range`;
    `value_ticks` are the values labelled on the axis (default: bottom, middle, top);
    `time_ticks` how many evenly spaced times are labelled under it (those that would
    overlap are left out); `mark` a value drawn across the plot with a dashed guide and its
    label in class `latest`. Value labels too close to one another are left out, the mark's
    last. The legend lists each series
    with its latest value, wrapping into rows below the plot.
    """
    low, high = y_range
    ticks = list(value_ticks) if value_ticks is not None else [low, (low + high) / 2, high]
    if mark is not None:
        ticks.append(mark)
    # the plot moves right to make room for the widest value label rather than cut it off
    widest = max(text_width(value_text(v), layout.font) for v in ticks)
    if widest + 10 > layout.left:
        layout = replace(layout, left=math.ceil(widest + 10))
    scale = Scale(layout, start, end, low, high)
    legend_rows = _legend(series, value_text, layout) if layout.legend else []
    height = layout.height + (len(legend_rows) * layout.row + 8 if legend_rows else 0)
    ident = f"chart-{_slug(title)}"
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {layout.width} {height}",
            "role": "img",
            "aria-labelledby": f"{ident}-title {ident}-desc",
            "class": layout.css_class,
            "preserveAspectRatio": "xMidYMid meet",
        },
    )
    ET.SubElement(svg, "title", {"id": f"{ident}-title"}).text = title
    has_data = any(s.points for s in series)
    ET.SubElement(svg, "desc", {"id": f"{ident}-desc"}).text = description
    font = layout.font
    plot_bottom = layout.height - layout.bottom
    axis = {"class": "axis", "stroke": "currentColor", "stroke-width": "1"}
    ET.SubElement(
        svg,
        "line",
        {
            **axis,
            "x1": str(layout.left),
            "x2": str(layout.left),
            "y1": str(layout.top),
            "y2": str(plot_bottom),
        },
    )
    base = scale.y(0.0) if low <= 0 <= high else plot_bottom
    ET.SubElement(
        svg,
        "line",
        {
            **axis,
            "x1": str(layout.left),
            "x2": str(layout.width - layout.right),
            "y1": f"{base:g}",
            "y2": f"{base:g}",
        },
    )
    if layout.heading:
        _text(svg, layout.left, font + 3, title, font, **{"font-weight": "bold"})
    # a label's baseline sits this far below its value so the digits centre on the tick
    drop = round(font * 0.3, 1)
    # the mark first, then the others: a label too close to one already placed gives way
    placed: list[float] = []
    for value in sorted(set(ticks), key=lambda v: (v != mark, v)):
        if any(abs(scale.y(value) - y) < font + 2 for y in placed):
            continue
        placed.append(scale.y(value))
        label = _text(
            svg,
            layout.left - 6,
            scale.y(value) + drop,
            value_text(value),
            font,
            **{"text-anchor": "end", "class": "y-label"},
        )
        if value == mark:
            label.set("class", "y-label latest")
    if mark is not None and has_data:
        ET.SubElement(
            svg,
            "line",
            {
                "class": "axis latest",
                "stroke": "currentColor",
                "stroke-dasharray": "4 4",
                "x1": str(layout.left),
                "x2": str(layout.width - layout.right),
                "y1": f"{scale.y(mark):g}",
                "y2": f"{scale.y(mark):g}",
            },
        )
    count = max(time_ticks, 2)
    times = [start + (end - start) * (i / (count - 1)) for i in range(count)]
    for x, anchor, text in _x_ticks(scale, times, time_text):
        _text(svg, x, layout.height - 8, text, font, **{"text-anchor": anchor, "class": "x-label"})
    for index, line in enumerate(series):
        if not line.points:
            continue
        coords: list[str] = []
        previous: float | None = None
        for at, value in line.points:
            if line.step and previous is not None:
                coords.append(f"{scale.x(at):g},{scale.y(previous):g}")
            coords.append(f"{scale.x(at):g},{scale.y(value):g}")
            previous = value
        attrs = {
            "points": " ".join(coords),
            "fill": "none",
            "stroke": COLOURS[index % len(COLOURS)],
            "stroke-width": "2",
        }
        if line.css_class:
            attrs["class"] = line.css_class
        polyline = ET.SubElement(svg, "polyline", attrs)
        ET.SubElement(polyline, "title").text = f"{line.label}: {value_text(line.points[-1][1])}"
    if not has_data:
        _text(
            svg,
            layout.left + (layout.width - layout.left - layout.right) / 2,
            (layout.top + plot_bottom) / 2,
            empty_text,
            font,
            **{"text-anchor": "middle"},
        )
    for row, items in enumerate(legend_rows):
        y = layout.height + 8 + row * layout.row + font - 2
        for x, index, text in items:
            ET.SubElement(
                svg,
                "rect",
                {
                    "x": f"{x:g}",
                    "y": f"{y - font + 4:g}",
                    "width": str(font - 4),
                    "height": str(font - 4),
                    "fill": COLOURS[index % len(COLOURS)],
                },
            )
            _text(svg, x + font, y, text, font, **{"class": "legend"})
    return ET.tostring(svg, encoding="unicode")


def _legend(
    series: Sequence[Series], value_text: Callable[[float], str], layout: Layout
) -> list[list[tuple[float, int, str]]]:
    """Legend items as rows of (x, series index, text), wrapped to the chart's width."""
    rows: list[list[tuple[float, int, str]]] = []
    x = float(layout.left)
    for index, line in enumerate(series):
        text = f"{line.label}: {value_text(line.points[-1][1])}" if line.points else line.label
        width = layout.font + text_width(text, layout.font)
        if not rows or x + width > layout.width - layout.right:
            rows.append([])
            x = float(layout.left)
        rows[-1].append((x, index, text))
        x += width + layout.font
    return rows
