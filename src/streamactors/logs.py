"""Structured logs: a structlog processor pipeline built per service (no global configure).

JSON lines by default (one object per line, for `streamactors logs` and log shippers),
or a console renderer for people. A redaction processor scrubs every configured
credential from every string value, whatever the caller put in the event.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any, BinaryIO, TextIO, cast

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from .config import LoggingConfig
from .secret import scrub

__all__ = ["Redactor", "make_logger", "open_log_file"]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class Redactor:
    """Processor: replace credential values anywhere in an event: in strings, inside dicts,
    lists and tuples at any depth, and in the repr of any other object (an exception, say),
    which the renderers would print as it is."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = [s for s in secrets if len(s) >= 4]

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        if not self.secrets:
            return event_dict
        for key, value in event_dict.items():
            if type(value) is not str or any(s in value for s in self.secrets):
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
        return scrub(repr(value), self.secrets)


def _json_default(value: Any) -> Any:
    return repr(value)


def _render_json(logger: WrappedLogger, method: str, event_dict: EventDict) -> bytes:
    return orjson.dumps(event_dict, default=_json_default)


def _render_json_text(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
    return orjson.dumps(event_dict, default=_json_default).decode()


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


def make_logger(
    cfg: LoggingConfig, secrets: Iterable[str] = (), stream: IO[Any] | None = None
) -> structlog.typing.FilteringBoundLogger:
    """Build the service's logger. `stream` overrides the configured file (which, opened
    here, stays open as long as the logger lives; see `open_log_file`)."""
    level = _LEVELS.get(cfg.level.lower(), 20)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        Redactor(secrets),
    ]
    out: IO[Any] = stream if stream is not None else open_log_file(cfg) or sys.stderr
    if cfg.format == "json":
        if "b" in getattr(out, "mode", ""):
            processors.append(_render_json)
            logger: Any = structlog.BytesLogger(cast(BinaryIO, out))
        else:
            # Write text to the stream we were given (holding it keeps it open).
            processors.append(_render_json_text)
            logger = structlog.WriteLogger(cast(TextIO, out))
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        logger = structlog.WriteLogger(cast(TextIO, out))
    bound: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        logger,
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    return bound
