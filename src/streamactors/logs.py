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

__all__ = ["Redactor", "make_logger"]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class Redactor:
    """Processor: replace credential values in any string field (nested one level into dicts)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = [s for s in secrets if len(s) >= 4]

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        if not self.secrets:
            return event_dict
        for key, value in event_dict.items():
            if isinstance(value, str):
                event_dict[key] = scrub(value, self.secrets)
            elif isinstance(value, BaseException):
                event_dict[key] = scrub(repr(value), self.secrets)
            elif isinstance(value, dict):
                event_dict[key] = {k: scrub(v, self.secrets) if isinstance(v, str) else v for k, v in value.items()}
        return event_dict


def _json_default(value: Any) -> Any:
    return repr(value)


def _render_json(logger: WrappedLogger, method: str, event_dict: EventDict) -> bytes:
    return orjson.dumps(event_dict, default=_json_default)


def _render_json_text(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
    return orjson.dumps(event_dict, default=_json_default).decode()


def make_logger(
    cfg: LoggingConfig, secrets: Iterable[str] = (), stream: IO[Any] | None = None
) -> structlog.typing.FilteringBoundLogger:
    """Build the service's logger. `stream` overrides the configured file (for tests)."""
    level = _LEVELS.get(cfg.level.lower(), 20)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        Redactor(secrets),
    ]
    out: IO[Any]
    if stream is not None:
        out = stream
    elif cfg.file:
        out = open(cfg.file, "ab" if cfg.format == "json" else "a", buffering=1 if cfg.format != "json" else -1)  # noqa: SIM115
    else:
        out = sys.stderr
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
