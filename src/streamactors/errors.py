"""The error tree, arranged by whose fault it is.

    StreamActorsError
    ├── ConfigError            the configuration is wrong (names the key and the fix)
    ├── UsageError             the caller misused the API (bad request dict, unknown provider)
    └── ProviderError          the upstream, the network or our own admission control said no
                               .kind is one of ERROR_KINDS; .partial is the reply received so far

Wire codecs are sans-IO and know nothing of providers or partial replies, so they raise
`WireError`; the provider actor turns it into a `ProviderError` carrying both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Reply

__all__ = [
    "ERROR_KINDS",
    "ConfigError",
    "ProviderError",
    "StreamActorsError",
    "UsageError",
    "WireError",
]

ERROR_KINDS = frozenset(
    {
        "http_status",
        "connection",
        "timeout",
        "protocol",
        "upstream",
        "rate_limited",
        "circuit_open",
        "internal",
        "content_filter",
    }
)


class StreamActorsError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(StreamActorsError, ValueError):
    """Invalid configuration. `key` is the dotted path of the offending key, if known."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class FieldValueError(ValueError):
    """Raised by config validators; turned into a `ConfigError` naming the whole key path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class UsageError(StreamActorsError, ValueError):
    """The caller passed something the API cannot accept (a malformed request, say)."""


class WireError(StreamActorsError):
    """Raised by sans-IO codecs: the bytes received do not form a valid, complete stream.

    `kind` is "protocol" (malformed, oversized or truncated) or "upstream" (the provider
    reported an error inside the stream). `status` and `retryable` carry what the
    upstream said, when it said it.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "protocol",
        status: int | None = None,
        retryable: bool = False,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.retryable = retryable
        self.error_type = error_type


class ProviderError(StreamActorsError):
    """A request to a provider failed.

    Attributes:
        provider: the configured provider name ("openai", ...).
        kind: one of "http_status", "connection", "timeout", "protocol", "upstream",
            "rate_limited", "circuit_open", "internal" (a bug of ours while serving this
            request: it fails alone, its provider's other streams go on), or "content_filter"
            (a stream transform ended the reply: `BlockList(action="error")`; never retryable).
        status: the HTTP status (or the status the provider put in an error event), else None.
        retryable: whether sending the same request again may succeed.
        message: the upstream's own error message (secrets scrubbed), or ours.
        error_type: the provider's error type string (e.g. "overloaded_error"), if any.
        partial: the reply accumulated before the failure (empty if nothing arrived).
        retry_after: seconds the upstream asked us to wait, if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        kind: str,
        status: int | None = None,
        retryable: bool = False,
        error_type: str | None = None,
        partial: Reply | None = None,
        retry_after: float | None = None,
    ) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown ProviderError kind {kind!r}")
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.kind = kind
        self.status = status
        self.retryable = retryable
        self.error_type = error_type
        self.partial = partial
        self.retry_after = retry_after

    def __str__(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        return f"{self.provider}: {self.kind}{status}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"ProviderError(provider={self.provider!r}, kind={self.kind!r}, status={self.status!r}, "
            f"retryable={self.retryable!r}, message={self.message!r})"
        )

    def with_partial(self, partial: Reply) -> ProviderError:
        """Return a copy of this error carrying `partial`."""
        err = ProviderError(
            self.message,
            provider=self.provider,
            kind=self.kind,
            status=self.status,
            retryable=self.retryable,
            error_type=self.error_type,
            partial=partial,
            retry_after=self.retry_after,
        )
        err.__cause__ = self.__cause__
        return err
