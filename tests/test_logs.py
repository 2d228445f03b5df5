"""The log pipeline's own processors."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from streamactors.config import LoggingConfig
from streamactors.logs import (
    FieldsLogger,
    JsonLines,
    Redactor,
    UtcTimeStamper,
    _wrapper_class,
    log_fields,
    make_logger,
)


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


class _Shows:
    """An object whose repr is given (an exception or a client object would print a key so)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"_Shows({self.text})"


def _strings(secret: str) -> st.SearchStrategy[str]:
    """Text with the secret, or a part of it, anywhere in it (or not at all)."""
    piece = st.sampled_from([secret, secret[:-1], secret[1:], secret.upper()])
    return st.lists(st.one_of(st.text(max_size=6), piece), max_size=4).map("".join)


def _values(secret: str) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        _strings(secret), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.none(), st.booleans()
    )
    return st.recursive(
        st.one_of(scalars, _strings(secret).map(_Shows), _strings(secret).map(ValueError)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.lists(inner, max_size=3).map(tuple),
            st.frozensets(_strings(secret), max_size=3),
            st.dictionaries(st.text(max_size=4), inner, max_size=3),
        ),
        max_leaves=8,
    )


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings_in(v)]
    return []


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abc123_XYZ",  # shows in a rendered line as it is: redacted only when it shows
        'sk-"quoted"-key',  # JSON escapes the quotes: every line is redacted first
        "sk-back\\slash",
        "sk-it's-key",  # repr escapes the apostrophe in a string that also holds a double quote
        "sk-tab\tkey",
        "sk-ключ-über",
    ],
)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_json_lines_never_writes_a_credential(secret: str, data: st.DataObject) -> None:
    """At any depth, in any repr, in text or bytes: the line holds no credential, neither as
    written nor once its JSON is decoded; and a line that never held one is the chain's line."""
    event = data.draw(st.dictionaries(st.text(max_size=5), _values(secret), max_size=4))
    event["event"] = data.draw(_strings(secret))
    for binary in (False, True):
        line = JsonLines([secret, "short"[:3]], binary=binary)(None, "info", dict(event))
        raw = line if isinstance(line, bytes) else line.encode()
        assert secret.encode() not in raw
        assert not [s for s in _strings_in(orjson.loads(raw)) if secret in s]
        plain = orjson.dumps(event | {"level": "info", "timestamp": "-"}, default=repr)
        if secret.encode() not in plain and not any(c in secret for c in "\"'\\\t") and secret.isascii():
            assert orjson.loads(raw) | {"timestamp": "-"} == orjson.loads(plain)


def test_json_lines_redacts_a_credential_that_shows_only_in_a_repr() -> None:
    """A set is written as its repr: the credential inside it is found in the rendered line."""
    secret = "sk-proj-abc123"
    line = JsonLines([secret], binary=True)(None, "info", {"event": "x", "keys": {f"a{secret}b"}, "n": 1})
    assert secret.encode() not in line
    assert b"[REDACTED]" in line


def test_json_lines_redacts_a_credential_that_repr_would_escape() -> None:
    """An apostrophe is escaped in the repr of a string that also holds a double quote: such
    a credential is looked for value by value, not in the rendered line."""
    secret = "sk-it's-key"
    error = ValueError(f'rejected "{secret}"')
    assert secret not in repr(error)
    line = JsonLines([secret], binary=True)(None, "info", {"event": "x", "error": error})
    assert b"sk-it\\\\'s-key" not in line
    assert orjson.loads(line)["error"] == repr(ValueError('rejected "[REDACTED]"'))


_FIELDS = {"request_id": "r-1", "model": "m", "status": "ok", "ttft_ms": 1.5, "usage": None, "key": "sk-secret-123"}


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
@pytest.mark.parametrize("method", ["debug", "info", "warning", "error", "critical"])
def test_emit_writes_the_line_the_logger_method_writes(
    monkeypatch: pytest.MonkeyPatch, fmt: str, level: str, method: str
) -> None:
    """`log_fields` on the service's logger (by `emit`): the very line of `getattr(log,
    method)(event, **fields)`, context and contextvars included, or none below the level; and
    the caller's dict is left as it was."""
    monkeypatch.setattr(time, "time", lambda: 1_764_000_000.25)
    structlog.contextvars.bind_contextvars(bound_var="from a contextvar")
    try:
        written = []
        for call in ("method", "emit"):
            out = io.StringIO()
            log = make_logger(LoggingConfig(format=fmt, level=level), ["sk-secret-123"], stream=out).bind(provider="p")
            fields = dict(_FIELDS)
            if call == "method":
                getattr(log, method)("request_end", **fields)
            else:
                log_fields(log, method, "request_end", fields)
            assert fields == _FIELDS
            assert isinstance(log, FieldsLogger)  # so log_fields took emit's path
            written.append(out.getvalue())
        assert written[0] == written[1]
        levels = ["debug", "info", "warning", "error", "critical"]
        assert bool(written[1]) == (levels.index(method) >= levels.index(level))
        assert "sk-secret-123" not in written[1]
    finally:
        structlog.contextvars.clear_contextvars()


def test_log_fields_calls_another_logger_as_it_always_was() -> None:
    """An application's own logger (here structlog's capturing one, no `emit`) gets the call."""
    capture = structlog.testing.CapturingLogger()
    log = structlog.wrap_logger(capture, processors=[], wrapper_class=structlog.make_filtering_bound_logger(20))
    log_fields(log, "warning", "request_end", {"status": "error", "retries": 2})
    log_fields(log, "debug", "request_start", {"request_id": "r-1"})
    assert [(c.method_name, c.kwargs) for c in capture.calls] == [
        ("warning", {"status": "error", "retries": 2, "event": "request_end"})
    ]


def test_emit_drops_an_event_a_processor_drops() -> None:
    def drop(_logger: Any, _method: str, event_dict: Any) -> Any:
        if event_dict.get("drop"):
            raise structlog.DropEvent
        return event_dict

    capture = structlog.testing.CapturingLogger()
    log = structlog.wrap_logger(capture, processors=[drop], wrapper_class=_wrapper_class(20)).bind()
    assert isinstance(log, FieldsLogger)
    log_fields(log, "info", "x", {"drop": True})
    log_fields(log, "info", "y", {"drop": False})
    assert [c.kwargs["event"] for c in capture.calls] == ["y"]
