"""The one chart renderer: scales, empty series, labels and the accessible text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from clubstack.core import charts

NS = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(hours=2)


def _draw(series: list[charts.Series], **kwargs: object) -> ET.Element:
    values = [v for s in series for _, v in s.points]
    options: dict[str, object] = {
        "value_text": lambda v: f"{v:g} u",
        "time_text": lambda at: f"{at:%H:%M}",
        "y_range": charts.value_range(values),
        "description": "what it shows",
        **kwargs,
    }
    return ET.fromstring(charts.time_chart("Load", series, START, END, **options))  # type: ignore[arg-type]


def _texts(svg: ET.Element, cls: str) -> list[ET.Element]:
    return [t for t in svg.iter(f"{NS}text") if cls in (t.get("class") or "").split()]


def test_value_range_holds_zero_every_value_and_a_flat_line():
    assert charts.value_range([]) == (0.0, 1.0)
    assert charts.value_range([5.0, 10.0], headroom=1.1) == (0.0, 11.0)
    assert charts.value_range([-300.0, 200.0]) == (-300.0, 200.0)
    assert charts.value_range([700.0], least_span=100) == (0.0, 700.0)
    assert charts.value_range([0.0, 0.0], least_span=100) == (0.0, 100.0)
    assert charts.value_range([12.0], fixed_max=100.0) == (0.0, 100.0)
    assert charts.value_range([3.0], least_max=1024.0) == (0.0, 1024.0)


def test_scale_maps_the_window_and_range_onto_the_plot_and_clamps():
    layout = charts.Layout(width=200, height=100, left=20, right=10, top=10, bottom=20)
    scale = charts.Scale(layout, START, END, -50.0, 50.0)
    assert (
        scale.x(START) == 20 and scale.x(END) == 190 and scale.x(START + timedelta(hours=1)) == 105
    )
    assert scale.y(50.0) == 10 and scale.y(-50.0) == 80 and scale.y(0.0) == 45
    assert scale.x(END + timedelta(hours=5)) == 190 and scale.y(500.0) == 10  # clamped


def test_downsample_averages_per_bucket_and_drops_points_outside():
    points = [(START + timedelta(minutes=m), float(m)) for m in range(0, 120)]
    points.append((END + timedelta(minutes=1), 1e9))
    out = charts.downsample(points, START, END, 4)
    assert [v for _, v in out] == [14.5, 44.5, 74.5, 104.5]
    assert out[0][0] == START + timedelta(minutes=15)


def test_a_chart_is_an_accessible_image_without_inline_style():
    svg = _draw([charts.Series("cpu", [(START, 1.0), (END, 3.0)])])
    assert svg.get("role") == "img"
    title, desc = svg.find(f"{NS}title"), svg.find(f"{NS}desc")
    assert title is not None and title.text == "Load" and desc is not None
    assert desc.text == "what it shows"
    assert svg.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert all(e.get("style") is None for e in svg.iter())
    # the legend gives each series' latest value, next to a swatch in its line's colour
    assert [t.text for t in _texts(svg, "legend")] == ["cpu: 3 u"]
    line = svg.find(f"{NS}polyline")
    swatch = svg.find(f"{NS}rect")
    assert line is not None and swatch is not None and line.get("stroke") == swatch.get("fill")


def test_an_empty_chart_keeps_its_axes_and_says_so():
    svg = _draw([charts.Series("cpu", [])], empty_text="no data yet")
    assert svg.find(f"{NS}polyline") is None
    assert [t.text for t in _texts(svg, "y-label")] == ["0 u", "0.5 u", "1 u"]
    assert "no data yet" in [t.text for t in svg.iter(f"{NS}text")]
    no_series = _draw([], empty_text="nothing published")
    assert "nothing published" in [t.text for t in no_series.iter(f"{NS}text")]


def test_steps_hold_the_value_until_the_next_point():
    series = charts.Series(
        "b", [(START, 0.0), (START + timedelta(hours=1), 10.0), (END, 10.0)], step=True
    )
    svg = _draw([series])
    line = svg.find(f"{NS}polyline")
    assert line is not None
    points = [tuple(map(float, p.split(","))) for p in (line.get("points") or "").split()]
    assert len(points) == 5  # each change adds a corner
    assert points[1][0] == points[2][0] and points[1][1] == points[0][1]


def test_the_marked_value_is_labelled_and_nearby_labels_give_way():
    series = charts.Series("b", [(START, 0.0), (END, 97.0)])
    svg = _draw([series], y_range=(0.0, 100.0), mark=97.0)
    labels = {t.text: t for t in _texts(svg, "y-label")}
    assert "latest" in (labels["97 u"].get("class") or "").split()
    assert "100 u" not in labels  # too close to the mark to be read
    assert "0 u" in labels


def _x_spans(svg: ET.Element) -> list[tuple[float, float]]:
    spans = []
    for t in _texts(svg, "x-label"):
        x, width = float(t.get("x") or 0), charts.text_width(t.text or "", 17)
        anchor = t.get("text-anchor")
        left = x if anchor == "start" else x - width if anchor == "end" else x - width / 2
        spans.append((left, left + width))
    return spans


def test_time_labels_that_would_overlap_are_left_out_and_none_repeats():
    def draw(width: int) -> ET.Element:
        return _draw(
            [charts.Series("a", [(START, 1.0)])],
            layout=charts.Layout(width=width, left=40, right=10, font=17),
            time_ticks=5,
            time_text=lambda at: f"{at:%d %b %H:%M}",
        )

    wide, narrow = draw(800), draw(300)
    assert [t.text for t in _texts(wide, "x-label")] == [
        "01 Jan 00:00",
        "01 Jan 01:00",
        "01 Jan 02:00",
    ]
    # too narrow for two: the end of the window (now) is the one kept
    assert [t.text for t in _texts(narrow, "x-label")] == ["01 Jan 02:00"]
    for svg in (wide, narrow):
        assert all(a[1] <= b[0] for a, b in pairwise(_x_spans(svg)))
    same = _draw([charts.Series("a", [(START, 1.0)])], time_text=lambda at: "today", time_ticks=3)
    assert [t.text for t in _texts(same, "x-label")] == ["today"]


def test_the_legend_wraps_within_the_chart_width():
    layout = charts.Layout(width=300, left=40, right=10, font=17)
    names = [f"challenge-{i}" for i in range(4)]
    svg = _draw([charts.Series(n, [(START, 1.0)]) for n in names], layout=layout)
    legend = _texts(svg, "legend")
    assert [t.text for t in legend] == [f"{n}: 1 u" for n in names]
    for t in legend:
        assert float(t.get("x") or 0) + charts.text_width(t.text or "", 17) <= 300
    view_height = float((svg.get("viewBox") or "").split()[3])
    assert view_height > layout.height and max(float(t.get("y") or 0) for t in legend) < view_height


def test_the_plot_makes_room_for_the_widest_value_label():
    layout = charts.Layout(width=600, left=40, font=17)
    svg = _draw(
        [charts.Series("read", [(START, 120_000.0)])],
        layout=layout,
        value_text=lambda v: f"{v / 1024:.1f} KiB/s",
        y_range=(0.0, 130_000.0),
    )
    labels = _texts(svg, "y-label")
    assert labels[-1].text == "127.0 KiB/s"
    for label in labels:  # right-aligned at x: the text runs leftwards and stays in the chart
        assert float(label.get("x") or 0) - charts.text_width(label.text or "", 17) >= 0
    axis = next(line for line in svg.iter(f"{NS}line") if line.get("x1") == line.get("x2"))
    assert float(axis.get("x1") or 0) > float(labels[-1].get("x") or 0)


def test_value_labels_that_would_overlap_are_left_out():
    svg = _draw(
        [charts.Series("b", [(START, -2.0), (END, 50.0)])],
        y_range=(-2.0, 50.0),
        value_ticks=[-2.0, 0.0, 50.0],
    )
    assert [t.text for t in _texts(svg, "y-label")] == ["-2 u", "50 u"]
