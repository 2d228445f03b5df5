"""Case-insensitive reads from a header mapping (a plain dict or an `httpx.Headers`)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["lowered"]


def lowered(headers: Mapping[str, str]) -> dict[str, str]:
    """Return `headers` as a dict keyed by lower-case name (the last of same-named keys wins).

    `httpx.Headers` is already case-insensitive, but tests and other callers pass plain
    dicts, and HTTP/1.1 peers send names in any case.
    """
    return {key.lower(): value for key, value in headers.items()}
