"""The page around the charts: one self-contained HTML file (no network, no external script),
with tables and a small in-page check that tests read back through a headless browser.

The check records every script error, failed load, blocked request (the page's Content
Security Policy allows nothing from outside) and `console.error` call into the `<html>`
element's `data-errors`, and on load counts the charts drawn with a non-empty box into
`data-charts-drawn`. Its script has neither `<` nor `&`, so the page stays well-formed XML.
"""

from __future__ import annotations

from collections.abc import Sequence

from .charts import Markup, esc

__all__ = ["Markup", "page", "section", "table", "tiles"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #222; background: #f4f5f7; margin: 0; padding: 16px 20px 40px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
h3 { font-size: 14px; margin: 0 0 4px; }
p.sub { margin: 0 0 12px; color: #555; }
.ok { color: #2e7d32; font-weight: 600; }
.bad { color: #c62828; font-weight: 600; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; }
.card { background: #fff; border: 1px solid #dcdfe4; border-radius: 6px; padding: 10px 12px; margin: 0; }
svg.chart { width: 100%; height: auto; display: block; }
ul.legend { list-style: none; margin: 4px 0 0; padding: 0; display: flex; flex-wrap: wrap; gap: 2px 14px;
            font-size: 12px; }
.swatch { display: inline-block; width: 18px; border-top: 3px solid; margin-right: 5px; vertical-align: middle; }
.swatch.dashed { border-top-style: dashed; }
figcaption { font-size: 12px; color: #555; margin-top: 4px; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 14px; }
.tile { background: #fff; border: 1px solid #dcdfe4; border-radius: 6px; padding: 8px 12px; min-width: 130px; }
.tile b { display: block; font-size: 18px; }
.tile span { font-size: 12px; color: #555; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #dcdfe4; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef0f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.story td:first-child { white-space: nowrap; }
section { margin-top: 8px; }
"""

_CHECK = """
(function () {
  "use strict";
  var root = document.documentElement;
  var errors = [];
  function note(text) {
    errors.push(String(text));
    root.setAttribute("data-errors", errors.join(" | "));
  }
  window.addEventListener("error", function (e) {
    var t = e.target || {};
    note(e.message ? e.message : "could not load " + (t.src || t.href || t.tagName));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { note("unhandled rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    note("blocked " + e.blockedURI + " by " + e.violatedDirective);
  });
  var consoleError = console.error;
  console.error = function () {
    note(Array.prototype.join.call(arguments, " "));
    return consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var drawn = 0;
    document.querySelectorAll("svg.chart").forEach(function (svg) {
      var box = svg.getBoundingClientRect();
      if (Math.min(box.width, box.height) > 0) { drawn += 1; }
    });
    root.setAttribute("data-charts-drawn", String(drawn));
    root.setAttribute("data-errors", errors.join(" | "));
  });
})();
"""


def page(title: str, subtitle: str, body: Sequence[str]) -> str:
    """The whole HTML document: `subtitle` is text (or `Markup`), `body` ready markup (charts, tables, sections)."""
    charts = sum(part.count('<svg class="chart"') for part in body)
    return (
        '<!DOCTYPE html>\n<html lang="en" data-charts="' + str(charts) + '">\n<head>\n<meta charset="utf-8"/>\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(_CSP)}"/>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>\n'
        f"<title>{esc(title)}</title>\n<script>{_CHECK}</script>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<h1>{esc(title)}</h1>\n<p class="sub">{esc(subtitle)}</p>\n' + "\n".join(body) + "\n</body>\n</html>\n"
    )


def section(title: str, content: Sequence[str], *, anchor: str = "", grid: bool = False) -> str:
    """A titled section; `grid` lays its parts (charts) out in columns."""
    ident = f' id="{esc(anchor)}"' if anchor else ""
    inner = "".join(content)
    if grid:
        inner = f'<div class="grid">{inner}</div>'
    return f"<section{ident}><h2>{esc(title)}</h2>{inner}</section>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[int] = ()) -> str:
    """A table of text cells (or `Markup`, such as a link); columns in `numeric` are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i in numeric else ""
            cells.append(f"<td{cls}>{esc(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def tiles(items: Sequence[tuple[str, str]]) -> str:
    """Headline figures: (value, what it is) pairs, side by side."""
    inner = "".join(f'<div class="tile"><b>{esc(value)}</b><span>{esc(label)}</span></div>' for value, label in items)
    return f'<div class="tiles">{inner}</div>'
