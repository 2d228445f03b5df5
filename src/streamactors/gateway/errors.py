"""The gateway's own errors: a request it refuses before any provider is asked."""

from __future__ import annotations

__all__ = ["GatewayError"]


class GatewayError(Exception):
    """A request the gateway answers itself with an HTTP error, in the client's dialect.

    Attributes:
        status: the HTTP status (400 for a malformed or unsupported request body).
        message: what is wrong, naming the field and the fix.
        type: the error type the dialect reports ("invalid_request_error", ...).
        param: the offending field's path (e.g. "messages[2].content[1]"), if one.
        code: a machine-readable code (OpenAI's `error.code`), if one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code

    def __repr__(self) -> str:
        return (
            f"GatewayError(status={self.status!r}, type={self.type!r}, param={self.param!r}, message={self.message!r})"
        )
