"""`streamactors logs`: summarize the service's structlog JSON lines.

Pure functions over lines (bytes or str, each with or without its newline), so tests
need no files: `summarize(lines, LogFilter(...))` returns a JSON-ready report;
`story(lines, request_id)` returns one request's lines in order. Only the CLI opens files.

What is read: `request_start` and `request_end` (request_id, provider, model, status,
error_kind, http_status, ttft_ms, duration_ms, input_tokens, output_tokens,
finish_reason, retries, timestamp) and `retry` (request_id, attempt); every other event
is counted by name. A line that is not a JSON object is skipped and counted: as
`partial` when it is the unterminated last line of its input (a log still being
written, or cut off), else as `malformed`.

`summarize(..., detail=True)` adds what the HTML page (`reports.logs_page`) draws: each
group's requests over time by outcome (in bins shared by all groups, at most
`TIMELINE_BINS`), its latency distributions, and each slowest request's story; still in
one pass, holding only the lines of requests not yet ended (bounded too).
"""

from __future__ import annotations

import heapq
import math
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import attrs
import orjson

from .series import TimeBins

__all__ = [
    "CDF_POINTS",
    "OPEN_STORIES",
    "STORY_LINES",
    "TIMELINE_BINS",
    "TIMELINE_WIDTH",
    "LogFilter",
    "parse_since",
    "print_story",
    "print_summary",
    "read_lines",
    "story",
    "summarize",
]

Line = bytes | str

_RELATIVE = re.compile(r"^(?:(\d+(?:\.\d+)?)([smhd]))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

#: Time bins of a detailed summary's timeline: 1/8 s wide, doubled until the log fits.
TIMELINE_BINS = 240
TIMELINE_WIDTH = 0.125
#: Points of a detailed summary's latency distributions, per group and measure.
CDF_POINTS = 200
#: A story keeps a request's first lines, this many; then it counts the rest.
STORY_LINES = 200
#: Requests whose lines are held until their request_end; past this the oldest are dropped.
OPEN_STORIES = 10_000


@attrs.frozen
class LogFilter:
    """Which lines count: at or after `since`, of `provider`, failed requests only."""

    since: datetime | None = None
    provider: str | None = None
    errors_only: bool = False


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (naive means UTC), or a time relative to now: "90s", "10m", "1h30m", "2d"."""
    text = text.strip()
    if _RELATIVE.match(text):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(text))
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give an ISO 8601 time (2026-01-31T12:00:00Z) or 90s, 10m, 2h, 1d"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_lines(paths: Iterable[str], stdin: IO[Any] | None = None) -> Iterator[Line]:
    """Each input's lines, newline kept, files in the given order; "-" is stdin."""
    for path in paths:
        if path == "-":
            source = stdin if stdin is not None else sys.stdin
            lines: Iterable[Line] = getattr(source, "buffer", source)
            yield from lines
        else:
            with open(path, "rb") as f:
                yield from f


def _parse(raw: Line) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _records(lines: Iterable[Line], skipped: dict[str, int]) -> Iterator[dict[str, Any]]:
    """Parsed objects; blank lines ignored; bad lines counted in `skipped`."""
    for raw in lines:
        if not raw.strip():
            continue
        obj = _parse(raw)
        if obj is None:
            terminated = raw.endswith(b"\n") if isinstance(raw, bytes) else raw.endswith("\n")
            skipped["partial" if not terminated else "malformed"] += 1
            continue
        yield obj


def _timestamp(obj: dict[str, Any]) -> datetime | None:
    ts = obj.get("timestamp")
    if not isinstance(ts, str):
        return None
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@attrs.define
class _Group:
    """One provider/model's requests."""

    provider: str
    model: str
    requests: int = 0
    ok: int = 0
    errors: int = 0
    cancelled: int = 0
    unfinished: int = 0
    errors_by_kind: dict[str, int] = attrs.Factory(dict)
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    ttft_ms: list[float] = attrs.Factory(list)
    duration_ms: list[float] = attrs.Factory(list)

    def add_end(self, obj: dict[str, Any]) -> None:
        self.requests += 1
        status = obj.get("status")
        if status == "ok":
            self.ok += 1
        elif status == "cancelled":
            self.cancelled += 1
        else:
            self.errors += 1
            kind = str(obj.get("error_kind") or "unknown")
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        self.retries += int(_number(obj.get("retries")) or 0)
        self.input_tokens += int(_number(obj.get("input_tokens")) or 0)
        self.output_tokens += int(_number(obj.get("output_tokens")) or 0)
        if (ttft := _number(obj.get("ttft_ms"))) is not None:
            self.ttft_ms.append(ttft)
        if (duration := _number(obj.get("duration_ms"))) is not None:
            self.duration_ms.append(duration)

    def summary(self, timeline: dict[str, list[int]] | None = None) -> dict[str, Any]:
        """The group's counts and percentiles; with a `timeline`, the detail for the HTML page too."""
        out = {
            "provider": self.provider,
            "model": self.model,
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "cancelled": self.cancelled,
            "unfinished": self.unfinished,
            "errors_by_kind": dict(sorted(self.errors_by_kind.items())),
            "retries": self.retries,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "ttft_ms": _percentiles(self.ttft_ms),
            "duration_ms": _percentiles(self.duration_ms),
        }
        if timeline is not None:
            out["timeline"] = timeline
            out["ttft_ms_cdf"] = _cdf(self.ttft_ms)
            out["duration_ms_cdf"] = _cdf(self.duration_ms)
        return out


def _cdf(values: list[float]) -> list[list[float]]:
    """`[value, fraction at or below]` points, at most CDF_POINTS (evenly spaced ranks, both ends kept)."""
    ordered = sorted(values)
    n = len(ordered)
    if n <= CDF_POINTS:
        ranks = list(range(n))
    else:
        ranks = sorted({round(i * (n - 1) / (CDF_POINTS - 1)) for i in range(CDF_POINTS)})
    return [[ordered[i], round((i + 1) / n, 6)] for i in ranks]


def _outcome(obj: dict[str, Any]) -> str:
    status = obj.get("status")
    if status in ("ok", "cancelled"):
        return str(status)
    return "error:" + str(obj.get("error_kind") or "unknown")


def _hold(stories: dict[str, list[dict[str, Any]]], rid: str, obj: dict[str, Any]) -> None:
    """Hold a line of a request not yet ended, within STORY_LINES and OPEN_STORIES."""
    lines = stories.get(rid)
    if lines is None:
        if len(stories) >= OPEN_STORIES:
            del stories[next(iter(stories))]  # the oldest: most likely never to end
        lines = stories[rid] = []
    if len(lines) < STORY_LINES:
        lines.append(obj)
    elif len(lines) == STORY_LINES:
        lines.append({"event": "(more lines not kept)", "request_id": rid})


def _percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def pick(q: float) -> float | None:
        if not ordered:
            return None
        rank = math.ceil(len(ordered) * q / 100)  # nearest rank
        return ordered[min(len(ordered), max(1, rank)) - 1]

    return {"p50": pick(50), "p95": pick(95), "p99": pick(99)}


def summarize(
    lines: Iterable[Line], where: LogFilter | None = None, *, slowest: int = 5, detail: bool = False
) -> dict[str, Any]:
    """Read log lines; return per provider/model counts, latencies, and the slowest requests.

    With `detail`: a `timeline` (the shared time bins), each group's `timeline` (requests
    per bin by outcome: ok, cancelled, error:KIND), `ttft_ms_cdf` and `duration_ms_cdf`,
    and each slowest request's `story` (its lines, as `story` returns them).
    """
    where = where or LogFilter()
    skipped = {"malformed": 0, "partial": 0}
    events: dict[str, int] = {}
    groups: dict[tuple[str, str], _Group] = {}
    started: dict[str, tuple[str, str]] = {}
    slow: list[tuple[float, int, dict[str, Any]]] = []
    bins = TimeBins(width=TIMELINE_WIDTH, cap=TIMELINE_BINS)
    ids: dict[tuple[str, str], int] = {}
    stories: dict[str, list[dict[str, Any]]] = {}
    read = 0
    for n, obj in enumerate(_records(lines, skipped)):
        read += 1
        if detail and isinstance(rid := obj.get("request_id"), str):
            _hold(stories, rid, obj)
        if where.since is not None:
            when = _timestamp(obj)
            if when is None or when < where.since:
                continue
        provider = str(obj.get("provider") or "")
        if where.provider is not None and provider != where.provider:
            continue
        event = str(obj.get("event", "(no event)"))
        events[event] = events.get(event, 0) + 1
        if event == "request_start":
            rid = obj.get("request_id")
            if isinstance(rid, str):
                started[rid] = (provider, str(obj.get("model") or ""))
        elif event == "request_end":
            rid = obj.get("request_id")
            started.pop(rid, None) if isinstance(rid, str) else None
            story_lines = stories.pop(rid, []) if detail and isinstance(rid, str) else []
            if story_lines and story_lines[-1] is not obj:
                story_lines.append(obj)  # past STORY_LINES: the end is still told
            if where.errors_only and obj.get("status") != "error":
                continue
            key = (provider, str(obj.get("model") or ""))
            group = groups.get(key) or groups.setdefault(key, _Group(*key))
            group.add_end(obj)
            if detail and (when := _timestamp(obj)) is not None:
                bins.add(when.timestamp(), f"{ids.setdefault(key, len(ids))} {_outcome(obj)}")
            duration = _number(obj.get("duration_ms"))
            if duration is not None and slowest > 0:
                entry = (duration, -n, _slow_entry(obj, story_lines if detail else None))
                if len(slow) < slowest:
                    heapq.heappush(slow, entry)
                else:
                    heapq.heappushpop(slow, entry)
    if not where.errors_only:
        for key in started.values():
            group = groups.get(key) or groups.setdefault(key, _Group(*key))
            group.unfinished += 1
    ordered = sorted(groups.values(), key=lambda g: (g.provider, g.model))
    report: dict[str, Any] = {
        "lines": read + skipped["malformed"] + skipped["partial"],
        "skipped": skipped,
        "requests": sum(g.requests for g in ordered),
        "events": dict(sorted(events.items(), key=lambda kv: (-kv[1], kv[0]))),
        "groups": [],
        "slowest": [entry for _, _, entry in sorted(slow, reverse=True)],
    }
    if not detail:
        report["groups"] = [g.summary() for g in ordered]
        return report
    timed = bins.as_dict()
    per_group: dict[int, dict[str, list[int]]] = {}
    for name, counts in timed["series"].items():
        gid, outcome = name.split(" ", 1)
        per_group.setdefault(int(gid), {})[outcome] = counts
    start = timed["start_s"]
    report["timeline"] = {
        "start": None if start is None else datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z"),
        "start_s": start,
        "width_s": timed["width_s"],
        "bins": len(next(iter(timed["series"].values()), [])),
    }
    report["groups"] = [g.summary(per_group.get(ids.get((g.provider, g.model), -1), {})) for g in ordered]
    return report


def _slow_entry(obj: dict[str, Any], story_lines: list[dict[str, Any]] | None) -> dict[str, Any]:
    keys = (
        "request_id",
        "provider",
        "model",
        "status",
        "error_kind",
        "duration_ms",
        "ttft_ms",
        "output_tokens",
        "timestamp",
    )
    entry = {k: obj.get(k) for k in keys}
    if story_lines is not None:
        entry["story"] = story_lines
    return entry


def story(lines: Iterable[Line], request_id: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every parsed line carrying `request_id`, in input order, and the skipped-line counts."""
    skipped = {"malformed": 0, "partial": 0}
    return [obj for obj in _records(lines, skipped) if obj.get("request_id") == request_id], skipped


# --- printing ------------------------------------------------------------------------


def _f(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def print_summary(report: dict[str, Any], out: IO[str], *, as_json: bool = False) -> None:
    """Print `summarize`'s report as a table (or as one JSON object)."""
    if as_json:
        print(orjson.dumps(report).decode(), file=out)
        return
    sk = report["skipped"]
    print(
        f"{report['lines']:,} lines, {report['requests']:,} requests; skipped {sk['malformed']} malformed and "
        f"{sk['partial']} partial lines",
        file=out,
    )
    rows = [
        (
            "provider/model",
            "reqs",
            "ok",
            "err",
            "retry",
            "tokens in",
            "tokens out",
            "ttft p50/p95/p99 ms",
            "duration p50/p95/p99 ms",
        )
    ]
    for g in report["groups"]:
        t, d = g["ttft_ms"], g["duration_ms"]
        rows.append(
            (
                f"{g['provider']}/{g['model']}",
                f"{g['requests']:,}",
                f"{g['ok']:,}",
                f"{g['errors']:,}",
                f"{g['retries']:,}",
                f"{g['input_tokens']:,}",
                f"{g['output_tokens']:,}",
                f"{_f(t['p50'])}/{_f(t['p95'])}/{_f(t['p99'])}",
                f"{_f(d['p50'])}/{_f(d['p95'])}/{_f(d['p99'])}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(
            "  "
            + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))),
            file=out,
        )
    for g in report["groups"]:
        extra = []
        if g["errors_by_kind"]:
            extra.append("errors " + ", ".join(f"{k} {n}" for k, n in g["errors_by_kind"].items()))
        if g["cancelled"]:
            extra.append(f"cancelled {g['cancelled']}")
        if g["unfinished"]:
            extra.append(f"no request_end {g['unfinished']}")
        if extra:
            print(f"  {g['provider']}/{g['model']}: {'; '.join(extra)}", file=out)
    print("events: " + ", ".join(f"{k} {n:,}" for k, n in report["events"].items()), file=out)
    if report["slowest"]:
        print("slowest requests:", file=out)
        for s in report["slowest"]:
            kind = f" ({s['error_kind']})" if s.get("error_kind") else ""
            print(
                f"  {_f(s['duration_ms'])} ms  {s['request_id']}  {s['provider']}/{s['model']}  "
                f"{s['status']}{kind}  ttft {_f(s['ttft_ms'])} ms  {s['timestamp']}",
                file=out,
            )


_STORY_FIRST = ("timestamp", "level", "event", "request_id", "provider", "model")


def print_story(lines: Iterable[Line], request_id: str, out: IO[str], *, as_json: bool = False) -> bool:
    """Print one request's lines in order; False (and a note) when there are none."""
    found, skipped = story(lines, request_id)
    if not found:
        print(f"no lines with request_id {request_id!r}", file=out)
        return False
    if not as_json:
        first = next((o for o in found if o.get("provider")), found[0])
        print(
            f"request {request_id}: {first.get('provider', '?')}/{first.get('model', '?')}, {len(found)} lines",
            file=out,
        )
    for obj in found:
        if as_json:
            print(orjson.dumps(obj).decode(), file=out)
            continue
        rest = " ".join(f"{k}={_show(v)}" for k, v in obj.items() if k not in _STORY_FIRST and v is not None)
        print(f"{obj.get('timestamp', '-')}  {obj.get('level', '-'):<7} {obj.get('event', '-'):<14} {rest}", file=out)
    if not as_json and (skipped["malformed"] or skipped["partial"]):
        print(f"(skipped {skipped['malformed']} malformed and {skipped['partial']} partial lines)", file=out)
    return True


def _show(value: Any) -> str:
    return value if isinstance(value, str) and " " not in value else orjson.dumps(value).decode()
