"""A balance-over-time chart as server-rendered SVG (ElementTree, no JavaScript)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from itertools import pairwise

from markupsafe import Markup

from clubstack.billing.money import format_money

WIDTH, HEIGHT = 600, 260
LEFT, RIGHT, TOP, BOTTOM = 110, 20, 16, 36


def balance_points(
    start_balance: int, changes: list[tuple[datetime, int]], start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    """A step series: the balance at `start`, after each (time, balance_after), up to `end`."""
    points = [(start, start_balance)]
    points += [(when, after) for when, after in changes if start <= when <= end]
    # the line ends at the balance now, even if the newest entry's time is a moment past
    # `end` (written by another process while this page was built)
    latest = changes[-1][1] if changes and changes[-1][0] >= start else points[-1][1]
    points.append((end, latest))
    return points


def balance_svg(points: list[tuple[datetime, int]], title: str = "Balance over time") -> Markup:
    if len(points) < 2:
        points = points + points if points else []
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "class": "chart",
            "role": "img",
            "viewBox": f"0 0 {WIDTH} {HEIGHT}",
            "aria-labelledby": "chart-title chart-desc",
        },
    )
    ET.SubElement(svg, "title", {"id": "chart-title"}).text = title
    desc = ET.SubElement(svg, "desc", {"id": "chart-desc"})
    if not points:
        desc.text = "No entries yet."
        return Markup(ET.tostring(svg, encoding="unicode"))  # noqa: S704 - ElementTree escapes
    t0, t1 = points[0][0], points[-1][0]
    span = max((t1 - t0).total_seconds(), 1.0)
    values = [v for _, v in points]
    low, high = min([*values, 0]), max([*values, 0])
    if high == low:
        high = low + 100
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(when: datetime) -> float:
        return round(LEFT + (when - t0).total_seconds() / span * plot_w, 1)

    def y(value: int) -> float:
        return round(TOP + (high - value) / (high - low) * plot_h, 1)

    desc.text = (
        f"From {format_money(values[0])} on {t0:%Y-%m-%d} to {format_money(values[-1])} "
        f"on {t1:%Y-%m-%d}; lowest {format_money(min(values))}, "
        f"highest {format_money(max(values))}."
    )
    ET.SubElement(
        svg,
        "line",
        {
            "class": "axis",
            "x1": str(LEFT),
            "x2": str(WIDTH - RIGHT),
            "y1": str(y(0)),
            "y2": str(y(0)),
        },
    )
    ET.SubElement(
        svg,
        "line",
        {
            "class": "axis",
            "x1": str(LEFT),
            "x2": str(LEFT),
            "y1": str(TOP),
            "y2": str(HEIGHT - BOTTOM),
        },
    )
    path = [f"M{x(points[0][0])},{y(points[0][1])}"]
    for (_, before), (when, value) in pairwise(points):
        path.append(f"L{x(when)},{y(before)}")
        path.append(f"L{x(when)},{y(value)}")
    ET.SubElement(
        svg,
        "path",
        {
            "d": " ".join(path),
            "fill": "none",
            "stroke": "currentColor",
            "stroke-width": "2",
            "class": "balance-line",
        },
    )
    latest = values[-1]
    # the balance now is labelled on the axis, with a guide line; other labels that would
    # overlap it give way
    ET.SubElement(
        svg,
        "line",
        {
            "class": "axis latest",
            "x1": str(LEFT),
            "x2": str(WIDTH - RIGHT),
            "y1": str(y(latest)),
            "y2": str(y(latest)),
            "stroke-dasharray": "4 4",
        },
    )
    for value in sorted({high, low, 0, latest}):
        if value != latest and abs(y(value) - y(latest)) < 22:  # 20px labels (billing.css)
            continue
        label = ET.SubElement(
            svg, "text", {"x": str(LEFT - 6), "y": str(y(value) + 6), "text-anchor": "end"}
        )
        if value == latest:
            label.set("class", "latest")
        label.text = format_money(value)
    for when, anchor in ((t0, "start"), (t1, "end")):
        label = ET.SubElement(
            svg, "text", {"x": str(x(when)), "y": str(HEIGHT - 8), "text-anchor": anchor}
        )
        label.text = f"{when:%Y-%m-%d}"
    return Markup(ET.tostring(svg, encoding="unicode"))  # noqa: S704 - ElementTree escapes


def window(now: datetime, days: int = 90) -> tuple[datetime, datetime]:
    return now - timedelta(days=days), now
