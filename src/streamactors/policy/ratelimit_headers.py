"""Read the providers' quota headers into one `QuotaSnapshot`.

OpenAI (and the many OpenAI-compatible APIs that copy it) sends::

    x-ratelimit-limit-requests: 500         x-ratelimit-limit-tokens: 200000
    x-ratelimit-remaining-requests: 499     x-ratelimit-remaining-tokens: 199000
    x-ratelimit-reset-requests: 120ms       x-ratelimit-reset-tokens: 6m0s

where resets are Go `time.Duration` strings ("1s", "6m0s", "20ms", "1h2m3.5s", "0s").
Anthropic sends `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
remaining,reset}` with RFC 3339 reset times ("2025-01-01T12:00:30Z").

Both describe a bucket that refills until `reset`, when it is full again. Resets are
returned as seconds from now (never negative). Anthropic's `tokens-*` group is already
"the most restrictive limit currently in effect"; when it is absent, the more restrictive
of `input-tokens-*` and `output-tokens-*` is used (the smaller remaining fraction of its
limit, or the smaller remaining count if a limit is missing), so that remaining, limit and
reset always come from the same group. A field given by both families is taken from
OpenAI's header.

Nothing here raises on what a peer sends: a malformed value is ignored, as if absent.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import TypeVar

import attrs

from ._headers import lowered

__all__ = ["QUOTA_PREFIXES", "QuotaSnapshot", "parse_go_duration", "parse_quota", "parse_rfc3339"]


@attrs.frozen(slots=True)
class QuotaSnapshot:
    """What the provider said about its quotas in one response. Every field may be None.

    `reset_requests_s` and `reset_tokens_s` are seconds after the response was received
    until that quota is full again.
    """

    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None


def parse_quota(headers: Mapping[str, str], now_epoch: float) -> QuotaSnapshot | None:
    """Parse OpenAI- and Anthropic-style quota headers; None if no usable one is present.

    `now_epoch` (Unix seconds) turns Anthropic's absolute reset times into durations.
    """
    h = lowered(headers)
    if not any(key.startswith(QUOTA_PREFIXES) for key in h):
        return None
    a_req = _anthropic_group(h, "requests", now_epoch)
    a_tok = _anthropic_tokens(h, now_epoch)
    snap = QuotaSnapshot(
        remaining_requests=_first(_count(h.get("x-ratelimit-remaining-requests")), a_req[0]),
        remaining_tokens=_first(_count(h.get("x-ratelimit-remaining-tokens")), a_tok[0]),
        limit_requests=_first(_count(h.get("x-ratelimit-limit-requests")), a_req[1]),
        limit_tokens=_first(_count(h.get("x-ratelimit-limit-tokens")), a_tok[1]),
        reset_requests_s=_first(_duration(h.get("x-ratelimit-reset-requests")), a_req[2]),
        reset_tokens_s=_first(_duration(h.get("x-ratelimit-reset-tokens")), a_tok[2]),
    )
    return None if snap == _EMPTY else snap


_EMPTY = QuotaSnapshot()
#: The prefixes of the header names `parse_quota` reads (lower case).
QUOTA_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_T = TypeVar("_T")

_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 MICRO SIGN
    "μs": 1e-6,  # U+03BC GREEK SMALL LETTER MU
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
_GO_DURATION = re.compile(rf"(?:{_GO_PART})+")
_GO_PARTS = re.compile(_GO_PART)


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration string ("1h2m3.5s", "20ms", "0"), or None if malformed.

    A plain non-negative number is also accepted, as seconds (some OpenAI-compatible APIs
    send that). Negative durations are rejected: a reset cannot be in the past.
    """
    text = text.strip()
    if text.startswith("+"):
        text = text[1:]
    if _GO_DURATION.fullmatch(text):
        total = sum(float(num) * _GO_UNITS[unit] for num, unit in _GO_PARTS.findall(text))
        return total if math.isfinite(total) else None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 and text[:1].isdigit() else None


def parse_rfc3339(text: str) -> float | None:
    """Unix seconds of an RFC 3339 timestamp, or None if malformed. No zone means UTC."""
    try:
        when = dt.datetime.fromisoformat(text.strip().upper())
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _first(a: _T | None, b: _T | None) -> _T | None:
    return a if a is not None else b


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text.strip())  # also takes "1000.0" and "1e3"; int() would not
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value >= 0 else None


def _duration(text: str | None) -> float | None:
    return None if text is None else parse_go_duration(text)


def _reset_at(text: str | None, now_epoch: float) -> float | None:
    when = None if text is None else parse_rfc3339(text)
    return None if when is None else max(0.0, when - now_epoch)


_Group = tuple[int | None, int | None, float | None]  # remaining, limit, reset seconds


def _anthropic_group(h: Mapping[str, str], name: str, now_epoch: float) -> _Group:
    prefix = f"anthropic-ratelimit-{name}-"
    return (
        _count(h.get(prefix + "remaining")),
        _count(h.get(prefix + "limit")),
        _reset_at(h.get(prefix + "reset"), now_epoch),
    )


def _anthropic_tokens(h: Mapping[str, str], now_epoch: float) -> _Group:
    total = _anthropic_group(h, "tokens", now_epoch)
    if total[0] is not None:
        return total
    groups = [
        g
        for g in (_anthropic_group(h, "input-tokens", now_epoch), _anthropic_group(h, "output-tokens", now_epoch))
        if g[0] is not None
    ]
    if not groups:
        return total
    if all(g[1] for g in groups):
        return min(groups, key=lambda g: (g[0] or 0) / (g[1] or 1))
    return min(groups, key=lambda g: g[0] or 0)
