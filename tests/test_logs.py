"""The log pipeline's own processors."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import structlog

from streamactors.logs import JsonLines, Redactor, UtcTimeStamper


@pytest.mark.parametrize(
    "now", [1_764_000_000.0, 1_764_000_000.999999, 1_764_000_000.9999996, 1_764_000_001.000001, 951_782_400.5]
)
def test_utc_timestamps_match_datetime_isoformat(monkeypatch: pytest.MonkeyPatch, now: float) -> None:
    stamper = UtcTimeStamper()
    for t in (now - 1.25, now):  # a cached second from an earlier call must not leak into this one
        monkeypatch.setattr(time, "time", lambda t=t: t)
        stamp = stamper(None, "info", {})["timestamp"]
        expected = datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
        if "." not in expected:
            expected = expected[:-1] + ".000000Z"
        assert stamp == expected
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)


def _chain(secrets: list[str]) -> list[Any]:
    """The processor chain `JsonLines` stands for, link by link."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        UtcTimeStamper(),
        structlog.processors.format_exc_info,
        Redactor(secrets),
        lambda _logger, _method, event_dict: orjson.dumps(event_dict, default=repr),
    ]


def _boom() -> BaseException:
    try:
        raise ValueError("failed with sk-secret-123 inside")
    except ValueError as exc:
        return exc


@pytest.mark.parametrize("secrets", [[], ["sk-secret-123"]])
@pytest.mark.parametrize("method", ["info", "warning", "warn", "exception", "error", "debug", "critical"])
@pytest.mark.parametrize(
    "event",
    [
        {"event": "request_start", "request_id": "r-1", "model": "m"},
        {"event": "x", "key": "Bearer sk-secret-123", "nested": {"a": ["sk-secret-123", 1, None]}, "n": 1.5},
        {"event": "x", "exc_info": True},
        {"event": "x", "exc_info": "boom"},
        {"event": "x", "obj": object},
    ],
)
def test_json_lines_writes_what_the_chain_of_processors_writes(
    monkeypatch: pytest.MonkeyPatch, secrets: list[str], method: str, event: dict[str, Any]
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_764_000_000.25)
    structlog.contextvars.bind_contextvars(bound_var="sk-secret-123 in a contextvar", request_id="from-context")
    try:
        for binary in (False, True):
            got = JsonLines(secrets, binary=binary)(None, method, _with_exc(event))
            expected: Any = _with_exc(event)
            for processor in _chain(secrets):
                expected = processor(None, method, expected)
            assert got == (expected if binary else expected.decode())
    finally:
        structlog.contextvars.clear_contextvars()


def _with_exc(event: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy (processors change the dict), with a live exception where asked."""
    copy = dict(event)
    if copy.get("exc_info") == "boom":
        copy["exc_info"] = _boom()
    return copy
