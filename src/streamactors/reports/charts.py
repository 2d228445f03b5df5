"""Charts as inline SVG, drawn by pure functions: `line_chart` (series over a linear or log
axis, with marker rules) and `bar_chart` (counts stacked over spans of time).

Each returns one `<figure>`: a heading, the `<svg class="chart" data-chart=KEY>` and an HTML
legend. Every drawn series carries `data-series` (its label) and `data-points` (how many
points it has), so tests can check what a chart holds without reading pixels. The markup is
well-formed XML as well as HTML, and every piece of text goes through `esc`.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

import attrs

__all__ = ["PALETTE", "Axis", "Bars", "Markup", "Rule", "Series", "bar_chart", "esc", "fmt_num", "line_chart"]

#: Tableau 10: told apart by most readers, colour-blind ones included.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)

_W, _H = 600, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 578, 14, 250


class Markup(str):
    """A string that is already markup (built by this package): `esc` passes it through."""

    __slots__ = ()


#: Characters neither XML nor HTML text may hold (C0 controls but tab, newline and CR; DEL).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def esc(text: object) -> str:
    """Text as HTML/XML character data or a quoted attribute value; `Markup` as it is.

    Control characters (possible in a log's JSON strings) become U+FFFD.
    """
    if isinstance(text, Markup):
        return text
    return html.escape(_CONTROL.sub("\ufffd", str(text)), quote=True)


@attrs.frozen
class Series:
    """One line: `y[i]` at `x[i]`; a None in `y` breaks the line."""

    label: str
    x: Sequence[float]
    y: Sequence[float | None]
    color: str
    dashed: bool = False
    width: float = 1.75


@attrs.frozen
class Bars:
    """One layer of a stacked bar chart: a count per span."""

    label: str
    counts: Sequence[int]
    color: str


@attrs.frozen
class Axis:
    """An axis: its label, linear or log, and optionally fixed ticks or bounds."""

    label: str
    log: bool = False
    ticks: Sequence[tuple[float, str]] | None = None
    lo: float | None = None
    hi: float | None = None


@attrs.frozen
class Rule:
    """A dashed marker line across the plot: at x (`vertical`) or at y, with a label."""

    at: float
    label: str
    vertical: bool = True


def fmt_num(v: float) -> str:
    """A tick label: 1.5M, 12k, 250, 2.5, 0.001."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    if a >= 1 or a == 0:
        return f"{v:g}"
    return f"{v:.6f}".rstrip("0")


class _Scale:
    """Data to pixels on one axis, with its ticks."""

    def __init__(self, axis: Axis, values: Sequence[float], p0: float, p1: float, zero: bool) -> None:
        self.log = axis.log
        self.p0, self.p1 = p0, p1
        if self.log:
            positive = [v for v in values if v > 0] or [1.0]
            k0 = math.floor(math.log10(axis.lo if axis.lo else min(positive)))
            k1 = math.ceil(math.log10(axis.hi if axis.hi else max(positive)))
            self.lo, self.hi = float(k0), float(max(k1, k0 + 1))
            ticks = [(10.0**k, fmt_num(10.0**k)) for k in range(int(self.lo), int(self.hi) + 1)]
        else:
            lo = axis.lo if axis.lo is not None else min([*values, 0.0] if zero else values or [0.0])
            hi = axis.hi if axis.hi is not None else max(values or [1.0])
            if hi <= lo:
                hi = lo + 1.0
            step = _nice_step((hi - lo) / 5)
            if axis.hi is None:
                hi = math.ceil(hi / step - 1e-9) * step
            if axis.lo is None:
                lo = math.floor(lo / step + 1e-9) * step
            self.lo, self.hi = lo, hi
            first = math.ceil(lo / step - 1e-9)
            ticks = [(k * step, fmt_num(round(k * step, 9))) for k in range(first, math.floor(hi / step + 1e-9) + 1)]
        self.ticks = list(axis.ticks) if axis.ticks is not None else ticks

    def __call__(self, v: float) -> float:
        if self.log:
            v = math.log10(v) if v > 0 else self.lo
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


def _nice_step(raw: float) -> float:
    mag = 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * mag >= raw:
            return m * mag
    return 10 * mag  # pragma: no cover - the loop ends at 10 * mag >= raw


def _frame(key: str, title: str, xs: _Scale, ys: _Scale, x: Axis, y: Axis) -> list[str]:
    out = [
        f'<svg class="chart" data-chart="{esc(key)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {_W} {_H}" role="img"><title>{esc(title)}</title>',
        '<g class="grid" stroke="#e3e3e3" stroke-width="1">',
    ]
    for v, _ in ys.ticks:
        py = ys(v)
        out.append(f'<line x1="{_LEFT}" x2="{_RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>')
    out.append("</g>")
    out.append('<g class="ticks" font-size="11" fill="#444">')
    for v, label in ys.ticks:
        out.append(f'<text x="{_LEFT - 6}" y="{ys(v) + 4:.1f}" text-anchor="end">{esc(label)}</text>')
    for v, label in xs.ticks:
        out.append(f'<text x="{xs(v):.1f}" y="{_BOTTOM + 16}" text-anchor="middle">{esc(label)}</text>')
    out.append("</g>")
    out.append(
        f'<path d="M{_LEFT},{_TOP} V{_BOTTOM} H{_RIGHT}" fill="none" stroke="#888" stroke-width="1"/>'
        f'<text class="axis-label" x="{(_LEFT + _RIGHT) / 2:.0f}" y="{_H - 12}" text-anchor="middle" '
        f'font-size="12" fill="#222">{esc(x.label)}</text>'
        f'<text class="axis-label" transform="translate(14 {(_TOP + _BOTTOM) / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle" font-size="12" fill="#222">{esc(y.label)}</text>'
    )
    return out


def _rules(rules: Sequence[Rule], xs: _Scale, ys: _Scale) -> list[str]:
    out = []
    for r in rules:
        if r.vertical:
            # Labelled at the foot of the line (a horizontal rule's label sits at the top
            # right), on whichever side has more room.
            px = xs(r.at)
            left = px > (_LEFT + _RIGHT) / 2
            tx, anchor = (px - 4, "end") if left else (px + 4, "start")
            out.append(
                f'<g class="rule" data-rule="{esc(r.label)}"><line x1="{px:.1f}" x2="{px:.1f}" y1="{_TOP}" '
                f'y2="{_BOTTOM}" stroke="#555" stroke-dasharray="4 3"/><text x="{tx:.1f}" y="{_BOTTOM - 6}" '
                f'text-anchor="{anchor}" font-size="11" fill="#333">{esc(r.label)}</text></g>'
            )
        else:
            py = ys(r.at)
            out.append(
                f'<g class="rule" data-rule="{esc(r.label)}"><line x1="{_LEFT}" x2="{_RIGHT}" y1="{py:.1f}" '
                f'y2="{py:.1f}" stroke="#555" stroke-dasharray="4 3"/><text x="{_RIGHT - 4}" y="{py - 5:.1f}" '
                f'text-anchor="end" font-size="11" fill="#333">{esc(r.label)}</text></g>'
            )
    return out


def _figure(key: str, title: str, svg: list[str], legend: Sequence[tuple[str, str, bool]], note: str) -> str:
    items = "".join(
        f'<li><span class="swatch{" dashed" if dashed else ""}" style="border-color:{esc(color)}"></span>'
        f"{esc(label)}</li>"
        for label, color, dashed in legend
    )
    caption = f"<figcaption>{esc(note)}</figcaption>" if note else ""
    legend_html = f'<ul class="legend">{items}</ul>' if items else ""
    body = "".join(svg)
    return f'<figure class="card" id="chart-{esc(key)}"><h3>{esc(title)}</h3>{body}{legend_html}{caption}</figure>'


def _empty(svg: list[str], text: str) -> None:
    svg.append(
        f'<text class="empty" x="{(_LEFT + _RIGHT) / 2:.0f}" y="{(_TOP + _BOTTOM) / 2:.0f}" text-anchor="middle" '
        f'font-size="14" fill="#777">{esc(text)}</text>'
    )


def line_chart(
    key: str,
    title: str,
    series: Sequence[Series],
    x: Axis,
    y: Axis,
    *,
    rules: Sequence[Rule] = (),
    note: str = "",
    empty: str = "no data",
) -> str:
    """Lines over shared axes (y from 0 unless log or bounded), with marker rules; a figure."""
    xv = [v for s in series for v, w in zip(s.x, s.y, strict=True) if w is not None]
    yv = [w for s in series for w in s.y if w is not None]
    xv += [r.at for r in rules if r.vertical]
    yv += [r.at for r in rules if not r.vertical]
    xs = _Scale(x, xv, _LEFT, _RIGHT, zero=False)
    ys = _Scale(y, yv, _BOTTOM, _TOP, zero=True)
    svg = _frame(key, title, xs, ys, x, y)
    svg += _rules(rules, xs, ys)
    for s in series:
        parts: list[str] = []
        pen_up = True
        last = (0.0, 0.0)
        for vx, vy in zip(s.x, s.y, strict=True):
            if vy is None or (y.log and vy <= 0):
                pen_up = True
                continue
            last = (xs(vx), ys(vy))
            parts.append(f"{'M' if pen_up else 'L'}{last[0]:.1f},{last[1]:.1f}")
            pen_up = False
        n = len(parts)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        # A lone point draws no line: show it as a dot.
        marker = f'<circle cx="{last[0]:.1f}" cy="{last[1]:.1f}" r="2.5" fill="{esc(s.color)}"/>' if n == 1 else ""
        svg.append(
            f'<g class="series" data-series="{esc(s.label)}" data-points="{n}"><title>{esc(s.label)}</title>'
            f'<path d="{" ".join(parts)}" fill="none" stroke="{esc(s.color)}" stroke-width="{s.width}"'
            f'{dash} stroke-linejoin="round"/>{marker}</g>'
        )
    if not yv:
        _empty(svg, empty)
    svg.append("</svg>")
    return _figure(key, title, svg, [(s.label, s.color, s.dashed) for s in series], note)


def bar_chart(
    key: str,
    title: str,
    edges: Sequence[float],
    layers: Sequence[Bars],
    x: Axis,
    y: Axis,
    *,
    note: str = "",
    empty: str = "none",
) -> str:
    """Counts stacked per span: span i runs from `edges[i]` to `edges[i + 1]`; a figure."""
    spans = len(edges) - 1
    totals = [sum(layer.counts[i] for layer in layers) for i in range(spans)] if spans > 0 else []
    xs = _Scale(x, [edges[0], edges[-1]] if edges else [0.0, 1.0], _LEFT, _RIGHT, zero=False)
    ys = _Scale(y, [float(t) for t in totals if t], _BOTTOM, _TOP, zero=True)
    svg = _frame(key, title, xs, ys, x, y)
    base = [0] * spans
    for layer in layers:
        rects = []
        for i, count in enumerate(layer.counts[:spans]):
            if not count:
                continue
            x0, x1 = xs(edges[i]), xs(edges[i + 1])
            y0, y1 = ys(base[i] + count), ys(base[i])
            base[i] += count
            rects.append(
                f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{max(1.0, x1 - x0 - 0.5):.1f}" height="{y1 - y0:.1f}">'
                f"<title>{esc(layer.label)}: {count:,} in {fmt_num(edges[i])} to {fmt_num(edges[i + 1])}</title></rect>"
            )
        svg.append(
            f'<g class="series" data-series="{esc(layer.label)}" data-points="{len(rects)}" '
            f'fill="{esc(layer.color)}">{"".join(rects)}</g>'
        )
    if not any(totals):
        _empty(svg, empty)
    svg.append("</svg>")
    return _figure(key, title, svg, [(layer.label, layer.color, False) for layer in layers], note)
