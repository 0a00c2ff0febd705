"""The balance over time (ledger.balance_history) drawn as steps by the core chart."""

from __future__ import annotations

from datetime import datetime

from markupsafe import Markup

from clubstack.billing.money import format_money
from clubstack.core import charts

# 20-unit labels: the chart is drawn 600 wide and shrinks to about half on a phone.
LAYOUT = charts.Layout(
    width=600, height=260, left=110, right=20, top=16, bottom=36, font=20, legend=False
)
# a flat balance still gets an axis one currency unit tall
LEAST_SPAN = 100


def balance_svg(points: list[tuple[datetime, int]], title: str = "Balance over time") -> Markup:
    """`points` as from ledger.balance_history (at least two: the start and now)."""
    values = [float(v) for _, v in points]
    low, high = charts.value_range(values, least_span=LEAST_SPAN)
    t0, t1 = points[0][0], points[-1][0]
    svg = charts.time_chart(
        title,
        [
            charts.Series(
                "balance", [(at, float(v)) for at, v in points], step=True, css_class="balance-line"
            )
        ],
        t0,
        t1,
        value_text=lambda cents: format_money(round(cents)),
        time_text=lambda at: f"{at:%Y-%m-%d}",
        y_range=(low, high),
        value_ticks=[low, 0.0, high],
        mark=values[-1],
        description=(
            f"From {format_money(points[0][1])} on {t0:%Y-%m-%d} to {format_money(points[-1][1])} "
            f"on {t1:%Y-%m-%d}; lowest {format_money(min(v for _, v in points))}, "
            f"highest {format_money(max(v for _, v in points))}."
        ),
        layout=LAYOUT,
    )
    return Markup(svg)  # noqa: S704 - ElementTree escapes
