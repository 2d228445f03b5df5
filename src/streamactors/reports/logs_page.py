"""`streamactors logs FILE --html`: a log summary (`logreport.summarize(..., detail=True)`) as
one HTML page.

For all requests, then per provider/model: requests over time by outcome (ok, cancelled,
each error kind) and latency distributions (time to first token, duration); the tables of
the text summary; the slowest requests, each linked to its story (every line it logged, as
`--request ID` prints it) further down the page. Everything read from the log is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from .charts import Axis, Bars, Markup, Series, bar_chart, esc, fmt_num, line_chart
from .page import page, section, table, tiles

__all__ = ["render_logs_html"]

_OK = "#59a14f"
_CANCELLED = "#bab0ac"
_ERRORS = ("#e15759", "#f28e2b", "#b07aa1", "#9c755f", "#edc948", "#76b7b2", "#ff9da7", "#4e79a7")
_TTFT = "#4e79a7"
_DURATION = "#f28e2b"
_STORY_FIRST = ("timestamp", "level", "event", "request_id")


def _layers(timeline: Mapping[str, Sequence[int]], colors: dict[str, str]) -> list[Bars]:
    """ok first, then cancelled, then each error kind; a colour per outcome, the same across charts."""
    order = sorted(timeline, key=lambda o: (o != "ok", o != "cancelled", o))
    return [
        Bars(
            outcome.removeprefix("error:") if outcome.startswith("error:") else outcome,
            timeline[outcome],
            colors[outcome],
        )
        for outcome in order
    ]


def _colors(groups: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    kinds = sorted({o for g in groups for o in g.get("timeline", {}) if o.startswith("error:")})
    out = {"ok": _OK, "cancelled": _CANCELLED}
    out.update({kind: _ERRORS[i % len(_ERRORS)] for i, kind in enumerate(kinds)})
    return out


def _timeline_chart(
    key: str, title: str, r: Mapping[str, Any], timeline: Mapping[str, Sequence[int]], colors: dict[str, str]
) -> str:
    tl = r["timeline"]
    width = tl["width_s"]
    edges = [i * width for i in range(tl["bins"] + 1)] if tl["bins"] else []
    total = sum(sum(c) for c in timeline.values())
    errors = sum(sum(c) for o, c in timeline.items() if o.startswith("error:"))
    return bar_chart(
        key,
        title,
        edges,
        _layers(timeline, colors),
        Axis(f"seconds since {tl['start']}" if tl["start"] else "seconds"),
        Axis("requests ended per bin"),
        note=f"{total:,} requests, {errors:,} failed; bins of {fmt_num(width)} s, by the time each request ended.",
        empty="no requests",
    )


def _latency_chart(key: str, title: str, g: Mapping[str, Any]) -> str:
    series = [
        Series(label, [p[0] for p in points], [100 * p[1] for p in points], color)
        for label, points, color in (
            ("time to first token", g["ttft_ms_cdf"], _TTFT),
            ("duration", g["duration_ms_cdf"], _DURATION),
        )
        if points
    ]
    values = [v for s in series for v in s.x if v > 0]
    log = bool(values) and max(values) / min(values) > 100
    t, d = g["ttft_ms"], g["duration_ms"]
    return line_chart(
        key,
        title,
        series,
        Axis("ms" + (" (log scale)" if log else ""), log=log),
        Axis("% of requests", hi=100.0),
        note=f"first token p50/p95/p99 {_f(t['p50'])}/{_f(t['p95'])}/{_f(t['p99'])} ms; "
        f"duration {_f(d['p50'])}/{_f(d['p95'])}/{_f(d['p99'])} ms",
    )


def _f(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def _sum_timelines(groups: Sequence[Mapping[str, Any]], bins: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for g in groups:
        for outcome, counts in g.get("timeline", {}).items():
            acc = out.setdefault(outcome, [0] * bins)
            for i, n in enumerate(counts):
                acc[i] += n
    return out


def _groups_table(groups: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for i, g in enumerate(groups, 1):
        t, d = g["ttft_ms"], g["duration_ms"]
        name = f"{g['provider']}/{g['model']}"
        rows.append(
            (
                Markup(f'<a href="#chart-group-{i}-timeline">{esc(name)}</a>'),
                f"{g['requests']:,}",
                f"{g['ok']:,}",
                f"{g['errors']:,}",
                ", ".join(f"{k} {n}" for k, n in g["errors_by_kind"].items()),
                f"{g['retries']:,}",
                f"{g['input_tokens']:,}",
                f"{g['output_tokens']:,}",
                f"{_f(t['p50'])}/{_f(t['p95'])}/{_f(t['p99'])}",
                f"{_f(d['p50'])}/{_f(d['p95'])}/{_f(d['p99'])}",
            )
        )
    header = (
        "provider/model",
        "reqs",
        "ok",
        "err",
        "errors by kind",
        "retry",
        "tokens in",
        "tokens out",
        "ttft p50/p95/p99 ms",
        "duration p50/p95/p99 ms",
    )
    return table(header, rows, numeric=(1, 2, 3, 5, 6, 7, 8, 9))


def _show(value: Any) -> str:
    return value if isinstance(value, str) and " " not in value else orjson.dumps(value).decode()


def _slowest(r: Mapping[str, Any]) -> list[str]:
    slow = r["slowest"]
    if not slow:
        return []
    rows = []
    for k, s in enumerate(slow, 1):
        kind = f" ({s['error_kind']})" if s.get("error_kind") else ""
        rows.append(
            (
                _f(s["duration_ms"]),
                Markup(f'<a href="#story-{k}">{esc(s["request_id"])}</a>'),
                f"{s['provider']}/{s['model']}",
                f"{s['status']}{kind}",
                _f(s["ttft_ms"]),
                str(s["timestamp"]),
            )
        )
    out = [
        section(
            "Slowest requests",
            [table(("duration ms", "request", "provider/model", "status", "ttft ms", "ended"), rows, numeric=(0, 4))],
        )
    ]
    stories = []
    for k, s in enumerate(slow, 1):
        lines = s.get("story") or []
        story_rows = [
            (
                str(obj.get("timestamp", "-")),
                str(obj.get("level", "-")),
                str(obj.get("event", "-")),
                " ".join(f"{key}={_show(v)}" for key, v in obj.items() if key not in _STORY_FIRST and v is not None),
            )
            for obj in lines
        ]
        body = (
            table(("timestamp", "level", "event", "fields"), story_rows)
            if story_rows
            else "<p>no lines held for this request</p>"
        )
        title = f"request {s['request_id']}: {s['provider']}/{s['model']}, {len(lines)} lines"
        stories.append(f'<section class="story" id="story-{k}"><h3>{esc(title)}</h3>{body}</section>')
    out.append(section("Their stories (streamactors logs --request ID)", stories))
    return out


def render_logs_html(r: Mapping[str, Any], *, source: str = "") -> str:
    """`summarize(..., detail=True)`'s report as a self-contained HTML page; `source` names the input."""
    sk = r["skipped"]
    groups: Sequence[Mapping[str, Any]] = r["groups"]
    subtitle = (
        f"{source + ': ' if source else ''}{r['lines']:,} lines, {r['requests']:,} requests; "
        f"skipped {sk['malformed']} malformed and {sk['partial']} partial lines"
    )
    errors = sum(g["errors"] for g in groups)
    tl = r["timeline"]
    headline = tiles(
        [
            (f"{r['requests']:,}", "requests"),
            (f"{errors:,}", "failed"),
            (f"{len(groups):,}", "providers/models"),
            (str(tl["start"] or "-"), "first bin starts"),
            (f"{fmt_num(tl['width_s'] * tl['bins'])} s", "spanned"),
        ]
    )
    colors = _colors(groups)
    overview = [
        _timeline_chart("all-timeline", "All requests over time", r, _sum_timelines(groups, tl["bins"]), colors)
    ]
    per_group = []
    for i, g in enumerate(groups, 1):
        name = f"{g['provider']}/{g['model']}"
        per_group.append(
            _timeline_chart(f"group-{i}-timeline", f"{name}: requests over time", r, g.get("timeline", {}), colors)
        )
        per_group.append(_latency_chart(f"group-{i}-latency", f"{name}: latency (CDF)", g))
    events = table(("event", "lines"), [(k, f"{n:,}") for k, n in r["events"].items()], numeric=(1,))
    body = [
        headline,
        section("Per provider and model", [_groups_table(groups)]),
        section("Over time", overview, grid=True),
        section("Each provider and model", per_group, grid=True),
        *_slowest(r),
        section("Events", [events]),
    ]
    return page("streamactors logs", subtitle, body)
