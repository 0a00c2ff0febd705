"""Server-side SVG line charts (ElementTree), readable without JavaScript."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime

# Text is sized in the chart's own units (class capsul-graph in clubstack.css): the chart
# shrinks to about half on a phone and its labels with it.
WIDTH, HEIGHT = 600, 220
LEFT, RIGHT, TOP, BOTTOM = 92, 10, 32, 34
FONT = 17
COLOURS = ("#2b6cb0", "#c05621")
MAX_POINTS = 240


def human(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.0f}%"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    if unit == "B/s":  # bytes in binary multiples, as the memory graph and `free` count
        for prefix in ("", "Ki", "Mi", "Gi"):
            if abs(value) < 1024 or prefix == "Gi":
                return f"{value:.0f} B/s" if not prefix else f"{value:.1f} {prefix}B/s"
            value /= 1024
    for suffix in ("", "k", "M", "G"):
        if abs(value) < 1000 or suffix == "G":
            return f"{value:.0f} {suffix}{unit}" if suffix == "" else f"{value:.1f} {suffix}{unit}"
        value /= 1000
    return f"{value:.1f} {unit}"  # pragma: no cover - loop always returns


def _bucket(
    points: Sequence[tuple[datetime, float]], start: datetime, end: datetime, buckets: int
) -> list[tuple[float, float]]:
    """Average values per time bucket, as (x fraction, value); fewer points, same shape."""
    span = (end - start).total_seconds() or 1.0
    sums: dict[int, list[float]] = {}
    for at, value in points:
        frac = (at - start).total_seconds() / span
        if 0 <= frac <= 1:
            sums.setdefault(min(int(frac * buckets), buckets - 1), []).append(value)
    return [((i + 0.5) / buckets, sum(v) / len(v)) for i, v in sorted(sums.items())]


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[datetime, float]]],
    unit: str,
    start: datetime,
    end: datetime,
    *,
    fixed_max: float | None = None,
) -> str:
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {WIDTH} {HEIGHT}",
            "role": "img",
            "class": "chart capsul-graph",
            "preserveAspectRatio": "xMidYMid meet",
        },
    )
    lines = {name: _bucket(points, start, end, MAX_POINTS) for name, points in series.items()}
    values = [v for pts in lines.values() for _, v in pts]
    top = fixed_max if fixed_max is not None else max([*values, 0.0]) * 1.1 or 1.0
    if unit == "B/s":  # an idle or empty graph reads 0 / 512 B/s / 1 KiB/s, not 0 / 0 / 1 B/s
        top = max(top, 1024.0)
    latest = ", ".join(f"{name} {human(pts[-1][1], unit)}" for name, pts in lines.items() if pts)
    ET.SubElement(svg, "title").text = title
    ET.SubElement(svg, "desc").text = (
        f"{title} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; "
        + (f"latest: {latest}; peak {human(max(values), unit)}." if values else "no data yet.")
    )
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ET.SubElement(
        svg,
        "rect",
        x=str(LEFT),
        y=str(TOP),
        width=str(plot_w),
        height=str(plot_h),
        fill="none",
        stroke="#8886",
    )
    for frac in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - frac)
        label = ET.SubElement(
            svg,
            "text",
            x=str(LEFT - 4),
            y=f"{y + 6:.1f}",
            attrib={"text-anchor": "end", "font-size": str(FONT), "fill": "currentColor"},
        )
        label.text = human(top * frac, unit)
    for x, anchor, when in ((LEFT, "start", start), (WIDTH - RIGHT, "end", end)):
        label = ET.SubElement(
            svg,
            "text",
            x=str(x),
            y=str(HEIGHT - 8),
            attrib={"text-anchor": anchor, "font-size": str(FONT), "fill": "currentColor"},
        )
        label.text = f"{when:%m-%d %H:%M}"
    heading = ET.SubElement(
        svg,
        "text",
        x=str(LEFT),
        y="20",
        attrib={"font-size": str(FONT), "font-weight": "bold", "fill": "currentColor"},
    )
    heading.text = title
    legend_x = WIDTH - RIGHT
    for i, (name, pts) in enumerate(reversed(list(lines.items()))):
        index = (len(lines) - 1 - i) % len(COLOURS)
        colour = COLOURS[index]
        # the class carries the colour too: the site's `svg.chart text` rule beats `fill`
        legend = ET.SubElement(
            svg,
            "text",
            x=str(legend_x),
            y="20",
            fill=colour,
            attrib={"class": f"series-{index}", "text-anchor": "end", "font-size": str(FONT)},
        )
        legend.text = name
        legend_x -= 10 * len(name) + 20
        if not pts:
            continue
        coords = " ".join(
            f"{LEFT + x * plot_w:.1f},{TOP + plot_h * (1 - min(v / top, 1)):.1f}" for x, v in pts
        )
        ET.SubElement(
            svg, "polyline", {"stroke-width": "1.5"}, points=coords, fill="none", stroke=colour
        )
    if not values:
        empty = ET.SubElement(
            svg,
            "text",
            x=str(LEFT + plot_w / 2),
            y=str(TOP + plot_h / 2),
            attrib={"text-anchor": "middle", "font-size": str(FONT), "fill": "currentColor"},
        )
        empty.text = "no data yet"
    return ET.tostring(svg, encoding="unicode")
