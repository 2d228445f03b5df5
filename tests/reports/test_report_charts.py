"""The SVG chart primitives: tick labels, axes, broken lines, lone points, empty charts, bars."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from htmlcheck import SVG

from streamactors.reports.charts import Axis, Bars, Markup, Rule, Series, bar_chart, esc, fmt_num, line_chart


def _svg(figure: str) -> ET.Element:
    root = ET.fromstring(figure)
    svg = root.find(SVG + "svg")
    assert svg is not None
    return svg


def _ticks(svg: ET.Element) -> list[str]:
    (group,) = [g for g in svg.iter(SVG + "g") if g.get("class") == "ticks"]
    return [t.text or "" for t in group]


@pytest.mark.parametrize(
    ("value", "label"),
    [(0, "0"), (2.5, "2.5"), (250, "250"), (2000, "2000"), (15_000, "15k"), (1_500_000, "1.5M"), (0.001, "0.001")],
)
def test_tick_labels(value: float, label: str) -> None:
    assert fmt_num(value) == label


def test_escaping_and_markup() -> None:
    assert esc('<a href="x">&\'') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
    assert esc(Markup("<b>kept</b>")) == "<b>kept</b>"


def test_linear_axes_start_at_zero_and_end_on_a_nice_tick() -> None:
    svg = _svg(line_chart("k", "t", [Series("s", [1, 2, 3], [10, 55, 42], "#000")], Axis("x"), Axis("y")))
    assert _ticks(svg) == ["0", "20", "40", "60", "1", "1.5", "2", "2.5", "3"]


def test_log_axis_ticks_are_decades() -> None:
    svg = _svg(line_chart("k", "t", [Series("s", [0, 1], [0.002, 30.0], "#000")], Axis("x"), Axis("y", log=True)))
    assert _ticks(svg)[:6] == ["0.001", "0.01", "0.1", "1", "10", "100"]


def test_a_none_breaks_the_line_and_a_lone_point_is_a_dot() -> None:
    svg = _svg(
        line_chart(
            "k",
            "t",
            [Series("broken", [0, 1, 2, 3], [1.0, None, 2.0, 3.0], "#000"), Series("lone", [1], [2.0], "#111")],
            Axis("x"),
            Axis("y"),
        )
    )
    broken, lone = [g for g in svg.iter(SVG + "g") if g.get("class") == "series"]
    path = broken.find(SVG + "path")
    assert path is not None and (path.get("d") or "").count("M") == 2
    assert broken.get("data-points") == "3" and broken.find(SVG + "circle") is None
    assert lone.get("data-points") == "1" and lone.find(SVG + "circle") is not None


def test_rules_are_labelled() -> None:
    svg = _svg(
        line_chart(
            "k",
            "t",
            [Series("s", [0, 10], [1, 2], "#000")],
            Axis("x"),
            Axis("y"),
            rules=[Rule(4, "warm"), Rule(1.5, "lvl", vertical=False)],
        )
    )
    assert [g.get("data-rule") for g in svg.iter(SVG + "g") if g.get("class") == "rule"] == ["warm", "lvl"]


def test_empty_charts_say_so() -> None:
    svg = _svg(line_chart("k", "t", [], Axis("x"), Axis("y")))
    assert [t.text for t in svg.iter(SVG + "text") if t.get("class") == "empty"] == ["no data"]
    svg = _svg(
        bar_chart("k", "t", [0.0, 1.0, 2.0], [Bars("timeout", [0, 0], "#f00")], Axis("x"), Axis("y"), empty="no errors")
    )
    assert [t.text for t in svg.iter(SVG + "text") if t.get("class") == "empty"] == ["no errors"]


def test_bars_stack_per_span_and_skip_zeros() -> None:
    figure = bar_chart(
        "k",
        "t",
        [0.0, 0.5, 1.0, 1.5],
        [Bars("a", [1, 0, 2], "#f00"), Bars("b", [3, 0, 0], "#0f0")],
        Axis("x"),
        Axis("y"),
    )
    svg = _svg(figure)
    layers = {g.get("data-series"): g for g in svg.iter(SVG + "g") if g.get("class") == "series"}
    assert {k: v.get("data-points") for k, v in layers.items()} == {"a": "2", "b": "1"}
    (b_rect,) = layers["b"].iter(SVG + "rect")
    a_first = next(layers["a"].iter(SVG + "rect"))
    # b sits on top of a in the first span: its bottom is a's top
    assert float(b_rect.get("y") or 0) + float(b_rect.get("height") or 0) == pytest.approx(
        float(a_first.get("y") or 0), abs=0.1
    )
    assert [t.text for t in b_rect.iter(SVG + "title")] == ["b: 3 in 0 to 0.5"]
