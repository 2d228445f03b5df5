"""The retry policy of the official OpenAI and Anthropic Python SDKs, as pure functions.

Users expect a gateway to retry exactly as the SDKs do (see PITFALLS.md, "What the official
SDKs do"; openai-python `_base_client.py` `_should_retry`, `_parse_retry_after_header`,
`_calculate_retry_timeout`):

- `should_retry`: an `x-should-retry: true|false` response header decides first; otherwise
  408 (request timeout), 409 (lock timeout), 429 (rate limited) and every status >= 500
  (529 "overloaded" included) are retried, as are connection errors (no status).
- `retry_after_seconds`: `retry-after-ms` first, then `retry-after` as seconds (fractions
  allowed, as the SDKs accept) or as an HTTP date.
- `retry_delay`: a Retry-After in `(0, 60]` seconds is obeyed exactly. A longer one means
  "do not retry": the error surfaces (issue 4; openai-python >= v3 does the same with a
  120 s cap, anthropic-sdk-python falls back to backoff instead). Otherwise the delay is
  `min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * rng.random())`, i.e. 0.5, 1, 2, 4, 8, 8 ...
  seconds less up to 25 % jitter.

No clock is read here: `now_epoch` (Unix seconds, for HTTP dates) and `rng` come from the caller.
"""

from __future__ import annotations

import calendar
import email.utils
import math
import random
from collections.abc import Mapping

from ._headers import lowered

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "INITIAL_RETRY_DELAY",
    "MAX_RETRY_AFTER",
    "MAX_RETRY_DELAY",
    "RETRYABLE_STATUSES",
    "retry_after_seconds",
    "retry_delay",
    "should_retry",
]

#: openai-python / anthropic-sdk-python `_constants.py` values.
DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
#: Longest Retry-After honoured; a longer one stops the retries (issue 4).
MAX_RETRY_AFTER = 60.0
#: Statuses below 500 that are retried (request timeout, lock timeout, rate limited).
RETRYABLE_STATUSES = frozenset({408, 409, 429})

# The SDKs cap the exponent at 1000 to keep `2.0 ** n` finite.
_MAX_EXPONENT = 1000


def should_retry(status: int | None, headers: Mapping[str, str]) -> bool:
    """Whether a failed attempt may be retried. `status` is None for a connection error.

    The non-standard `x-should-retry` header (`true` or `false`, any case) overrides the
    status rules; any other value of it is ignored.
    """
    verdict = lowered(headers).get("x-should-retry")
    if verdict is not None:
        verdict = verdict.strip().lower()
        if verdict == "true":
            return True
        if verdict == "false":
            return False
    if status is None:
        return True
    return status in RETRYABLE_STATUSES or status >= 500


def retry_after_seconds(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """The wait the server asked for, in seconds, or None if it asked for none (or garbled it).

    `retry-after-ms` (milliseconds) wins over `retry-after`; `retry-after` is read as a
    number of seconds, else as an HTTP date, which is turned into seconds after `now_epoch`.
    The result may be 0 or negative (a date in the past); `retry_delay` then ignores it,
    as the SDKs do. NaN and infinities are treated as garbled.
    """
    h = lowered(headers)
    ms = _number(h.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    text = h.get("retry-after")
    if text is None:
        return None
    seconds = _number(text)
    if seconds is not None:
        return seconds
    parsed = email.utils.parsedate_tz(text)
    if parsed is None:
        return None
    try:
        # HTTP dates are always GMT; a date with no zone is read as GMT too (not local time,
        # which is what `email.utils.mktime_tz` would assume).
        when = calendar.timegm(parsed[:9]) - (parsed[9] or 0)
    except (OverflowError, ValueError):
        return None
    return float(when) - now_epoch


def retry_delay(
    attempt: int,
    headers: Mapping[str, str],
    rng: random.Random,
    now_epoch: float,
    *,
    max_retry_after: float = MAX_RETRY_AFTER,
) -> float | None:
    """Seconds to sleep before retry number `attempt + 1`, or None: do not retry.

    `attempt` counts the retries already made (0 before the first retry). A Retry-After
    with `0 < value <= max_retry_after` is returned as is; one above `max_retry_after`
    returns None so that the error surfaces; otherwise the exponential schedule applies,
    drawing one `rng.random()` for the jitter.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be 0 or more, got {attempt!r}")
    after = retry_after_seconds(headers, now_epoch)
    if after is not None and after > 0:
        return after if after <= max_retry_after else None
    base = min(INITIAL_RETRY_DELAY * 2.0 ** min(attempt, _MAX_EXPONENT), MAX_RETRY_DELAY)
    return base * (1.0 - 0.25 * rng.random())


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None
