"""HTTP client construction and the mapping of transport failures to `ProviderError` kinds."""

from __future__ import annotations

import httpx

from .config import ProviderConfig
from .fasthttp import FastTransport

__all__ = ["classify_transport_error", "make_client"]


def make_client(pc: ProviderConfig, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` sized to the provider's concurrency.

    Only connect and write timeouts are httpx's; first-token, idle and total deadlines
    are trio cancel scopes in the provider actor, so time spent waiting on a slow
    consumer is never counted as upstream idleness.
    """
    limits = httpx.Limits(
        max_connections=pc.max_concurrency,
        max_keepalive_connections=pc.max_concurrency,
        keepalive_expiry=30.0,
    )
    timeout = httpx.Timeout(connect=pc.timeouts.connect, read=None, write=pc.timeouts.connect, pool=None)
    if transport is None:
        # Bulk chunked decoding on trio sockets; falls back to httpx's own transport for
        # proxies and HTTP/2 (see streamactors.fasthttp).
        transport = FastTransport(limits=limits)
    return httpx.AsyncClient(limits=limits, timeout=timeout, transport=transport, follow_redirects=False)


def classify_transport_error(exc: Exception) -> tuple[str, str]:
    """(kind, message) for an httpx exception, by type, most specific first."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", f"{type(exc).__name__}: {exc or 'timed out'}"
    if isinstance(exc, httpx.RemoteProtocolError):
        # The peer broke HTTP framing, typically by closing mid-body.
        return "connection", f"connection lost: {exc}"
    if isinstance(exc, httpx.TransportError):
        return "connection", f"{type(exc).__name__}: {exc}"
    return "connection", f"{type(exc).__name__}: {exc}"
