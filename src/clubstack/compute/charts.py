"""The capsul graphs: samples per metric in, one core chart each, values in their units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial

from clubstack.compute.stats import Point
from clubstack.core import charts

# Wide enough for four graphs stacked on a page; 17-unit text shrinks to about 10 px on a phone.
LAYOUT = charts.Layout(css_class="chart capsul-graph", heading=True)
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


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[datetime, float]]],
    unit: str,
    start: datetime,
    end: datetime,
    *,
    fixed_max: float | None = None,
) -> str:
    lines = [
        charts.Series(name, charts.downsample(points, start, end, MAX_POINTS))
        for name, points in series.items()
    ]
    values = [v for line in lines for _, v in line.points]
    text = partial(human, unit=unit)
    latest = ", ".join(f"{s.label} {text(s.points[-1][1])}" for s in lines if s.points)
    summary = f"latest: {latest}; peak {text(max(values))}." if values else "no data yet."
    return charts.time_chart(
        title,
        lines,
        start,
        end,
        value_text=text,
        time_text=lambda at: f"{at:%m-%d %H:%M}",
        # an idle or empty byte graph reads 0 / 512 B/s / 1 KiB/s, not 0 / 0 / 1 B/s
        y_range=charts.value_range(
            values,
            headroom=1.1,
            fixed_max=fixed_max,
            least_max=1024.0 if unit == "B/s" else 0.0,
        ),
        description=(f"{title} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; {summary}"),
        empty_text="no data yet",
        layout=LAYOUT,
    )


def capsul_graphs(
    points: Sequence[Point], memory_mib: int, start: datetime, end: datetime
) -> list[str]:
    """The four graphs of a capsul's page: CPU, memory, disk and network, as SVG text."""

    def graph(title: str, unit: str, fixed: float | None = None, **fields: str) -> str:
        series = {
            label: [(p.at, float(getattr(p, attr))) for p in points]
            for label, attr in fields.items()
        }
        return line_chart(title, series, unit, start, end, fixed_max=fixed)

    return [
        graph("CPU", "%", 100.0, used="cpu_percent"),
        graph("Memory", "MiB", float(memory_mib), used="mem_mib"),
        graph("Disk", "B/s", read="disk_read", write="disk_write"),
        graph("Network", "B/s", received="net_rx", sent="net_tx"),
    ]
