"""The strawberry chart: one line per challenge, drawn by the core chart.

Each line is one challenge's strawberry count over time, computed from the score formula at
evenly spaced instants (the formula is exact, so no history table is needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from clubstack.contest import scoring
from clubstack.core import charts

# Narrow enough that 17-unit text stays readable on a 360 px phone (scaled to about 0.8);
# the legend goes under the plot, one row per challenge, instead of eating its width.
LAYOUT = charts.Layout(width=400, height=250, left=64, right=20, top=16, bottom=42, font=17)
MIN_SPAN = timedelta(hours=1)


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


def render(
    series: list[Series],
    now: datetime,
    final: datetime | None,
    title: str = "Strawberries of the top challenges over time",
) -> str:
    end = min(now, final) if final is not None else now
    start = min((s.published for s in series), default=end)
    if end - start < MIN_SPAN:  # just published: show the last hour, not one minute
        start = end - MIN_SPAN
    lines = [charts.Series(s.label, sample(s, start, end, final)) for s in series]
    summary = ", ".join(f"{line.label} {_number(line.points[-1][1])}" for line in lines)
    one_day = end - start <= timedelta(days=1)
    return charts.time_chart(
        title,
        lines,
        start,
        end,
        value_text=_number,
        time_text=lambda at: f"{at:%H:%M}" if one_day else f"{at:%d %b %H:%M}",
        y_range=charts.value_range([v for line in lines for _, v in line.points]),
        time_ticks=3,
        description=(
            f"Current strawberries: {summary}." if lines else "No challenge is published yet."
        ),
        empty_text="No challenge is published yet.",
        layout=LAYOUT,
    )
