"""Structured logs: a structlog processor pipeline built per service (no global configure).

JSON lines by default (one object per line, for `streamactors logs` and log shippers),
or a console renderer for people. A redaction processor scrubs every configured
credential from every string value, whatever the caller put in the event.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Callable, Iterable
from typing import IO, Any, BinaryIO, ClassVar, TextIO, cast

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from .config.schema import LoggingConfig
from .config.secret import scrub

__all__ = ["FieldsLogger", "JsonLines", "Redactor", "UtcTimeStamper", "log_fields", "make_logger", "open_log_file"]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
# The "level" that structlog's `add_log_level` writes for each logger method.
_LEVEL_NAMES = {"warn": "warning", "exception": "error"}
_CONTEXT_PREFIX = structlog.contextvars.STRUCTLOG_KEY_PREFIX


class Redactor:
    """Processor: replace credential values anywhere in an event: in strings, inside dicts,
    lists and tuples at any depth, and in the repr of any other object (an exception, say),
    which the renderers would print as it is."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = [s for s in secrets if len(s) >= 4]
        # In a repr, a string's backslashes, control characters and (in a string holding both
        # quotes) apostrophes are escaped: look for each credential as each quote style shows it.
        self._in_repr = list(
            dict.fromkeys(form for s in self.secrets for form in (s, repr(s)[1:-1], repr(s + "\"'")[1:-4]))
        )

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        secrets = self.secrets
        if not secrets:
            return event_dict
        # Runs on every line: plain loops, and numbers and None pass without a call.
        for key, value in event_dict.items():
            cls = type(value)
            if cls is str:
                for secret in secrets:
                    if secret in value:
                        event_dict[key] = scrub(value, secrets)
                        break
            elif value is not None and cls is not int and cls is not float and cls is not bool:
                event_dict[key] = self._clean(value)
        return event_dict

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value, self.secrets)
        if value is None or isinstance(value, int | float):  # bool is an int
            return value
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v) for v in value]
        return scrub(repr(value), self._in_repr)


class UtcTimeStamper:
    """Processor: `timestamp` as ISO 8601 UTC with microseconds ("2026-11-24T01:28:04.123456Z"),
    as structlog's `TimeStamper(fmt="iso", utc=True)` writes it, for a quarter of its cost:
    the date and time of day are formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        micro = round((now - second) * 1_000_000)  # rounded, as datetime.fromtimestamp does
        if micro == 1_000_000:
            second, micro = second + 1, 0
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event_dict["timestamp"] = f"{self._prefix}.{micro:06d}Z"
        return event_dict


def _shows_as_is(secret: str) -> bool:
    """Whether `secret` shows unchanged in a rendered line: in a string, orjson escapes only
    quotes, backslashes and control characters, and `repr` those and the other quote."""
    return secret.isascii() and secret.isprintable() and not any(c in secret for c in "\"'\\")


def _json_default(value: Any) -> Any:
    return repr(value)


class JsonLines:
    """The JSON pipeline's processors in one call, for the lines every request writes:
    `merge_contextvars`, `add_log_level`, `UtcTimeStamper`, `format_exc_info`, `Redactor` and
    the orjson rendering (to text, or to bytes for a binary stream), in that order and with
    the same result as that chain. One processor, not six: each link costs a call and a
    trip through structlog's loop, a few microseconds a line.

    The line is rendered first and redacted only if a credential shows in it: walking every
    value for every credential was two thirds of a line's Python work. The rendered bytes
    show every occurrence, at any depth and in any repr, as long as no credential holds a
    character that JSON or `repr` escapes; when one does, every line is redacted first.
    A line without credentials may differ from the chain's in one way: a set or frozenset
    is written as its repr (as it is with no credentials configured), where the redactor
    would have made it a list."""

    __slots__ = ("_binary", "_needles", "_redact", "_stamp")

    def __init__(self, secrets: Iterable[str], *, binary: bool) -> None:
        redactor = Redactor(secrets)
        self._redact: Callable[[WrappedLogger, str, EventDict], EventDict] | None = (
            redactor if redactor.secrets else None
        )
        # The credentials as they show in a rendered line; None: some would show escaped.
        self._needles: tuple[bytes, ...] | None = (
            tuple(s.encode() for s in redactor.secrets)
            if all(_shows_as_is(s) for s in redactor.secrets)
            else None
        )
        self._stamp = UtcTimeStamper()
        self._binary = binary

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str | bytes:
        ctx = contextvars.copy_context()
        for var in ctx:  # structlog.contextvars.bind_contextvars's values, as merge_contextvars takes them
            name = var.name
            if name.startswith(_CONTEXT_PREFIX) and (value := ctx[var]) is not Ellipsis:
                event_dict.setdefault(name[len(_CONTEXT_PREFIX) :], value)
        event_dict["level"] = _LEVEL_NAMES.get(method) or method
        event_dict = self._stamp(logger, method, event_dict)
        if "exc_info" in event_dict:
            event_dict = structlog.processors.format_exc_info(logger, method, event_dict)
        redact, needles = self._redact, self._needles
        if redact is not None and needles is None:
            event_dict = redact(logger, method, event_dict)
        line = orjson.dumps(event_dict, default=_json_default)
        if redact is not None and needles is not None:
            for needle in needles:
                if needle in line:
                    line = orjson.dumps(redact(logger, method, event_dict), default=_json_default)
                    break
        return line if self._binary else line.decode()


def open_log_file(cfg: LoggingConfig) -> IO[Any] | None:
    """The configured log file, opened for appending (None if logs go to stderr).

    The caller owns it: `open_service` closes it on exit, which also flushes the last
    lines (JSON logs are block-buffered).
    """
    if not cfg.file:
        return None
    if cfg.format == "json":
        return open(cfg.file, "ab")
    return open(cfg.file, "a", buffering=1)


class FieldsLogger:
    """Mixin of the service's bound loggers: `emit`, a line from a dict of fields.

    `log.info(event, **fields)` with a dict built for the line packs and unpacks its keyword
    arguments twice on the way to the processors (and CPython matches each name against the
    parameters' names at every call): about 26,000 instructions of the 69,000 a line of 15
    fields costs. `emit` hands the dict to structlog's `_process_event`, the hook structlog
    keeps for wrapper classes, as `_proxy_to_logger` does."""

    min_level: ClassVar[int] = 0

    def emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        """`getattr(self, method)(event, **fields)`: the same line, or none below the level."""
        if _LEVELS[_LEVEL_NAMES.get(method, method)] < self.min_level:
            return
        bound = cast(Any, self)
        try:
            args, kw = bound._process_event(method, event, fields)
        except structlog.DropEvent:
            return
        getattr(bound._logger, method)(*args, **kw)


def log_fields(logger: Any, method: str, event: str, fields: dict[str, Any]) -> None:
    """`getattr(logger, method)(event, **fields)`, by `FieldsLogger.emit` where it can (the
    service's own loggers; an application's logger is called as it always was)."""
    if isinstance(logger, FieldsLogger):
        logger.emit(method, event, fields)
    else:
        getattr(logger, method)(event, **fields)


_WRAPPERS: dict[int, type[Any]] = {}


def _wrapper_class(level: int) -> type[Any]:
    """structlog's filtering bound logger for `level`, with `FieldsLogger.emit`."""
    cls = _WRAPPERS.get(level)
    if cls is None:
        base = structlog.make_filtering_bound_logger(level)
        cls = _WRAPPERS[level] = type(f"ServiceLogger{level}", (FieldsLogger, base), {"min_level": level})
    return cls


def make_logger(
    cfg: LoggingConfig, secrets: Iterable[str] = (), stream: IO[Any] | None = None
) -> structlog.typing.FilteringBoundLogger:
    """Build the service's logger. `stream` overrides the configured file (which, opened
    here, stays open as long as the logger lives; see `open_log_file`)."""
    level = _LEVELS.get(cfg.level.lower(), 20)
    out: IO[Any] = stream if stream is not None else open_log_file(cfg) or sys.stderr
    processors: list[Any]
    if cfg.format == "json":
        binary = "b" in getattr(out, "mode", "")
        processors = [JsonLines(secrets, binary=binary)]
        # Text goes to the stream we were given (holding it keeps it open).
        logger: Any = structlog.BytesLogger(cast(BinaryIO, out)) if binary else structlog.WriteLogger(cast(TextIO, out))
    else:
        processors = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            UtcTimeStamper(),
            # Tracebacks become text here, before redaction: a secret in a frame's message is scrubbed.
            structlog.processors.format_exc_info,
            Redactor(secrets),
            structlog.dev.ConsoleRenderer(colors=False),
        ]
        logger = structlog.WriteLogger(cast(TextIO, out))
    bound: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        logger,
        processors=processors,
        wrapper_class=_wrapper_class(level),
        cache_logger_on_first_use=True,
    )
    return bound
