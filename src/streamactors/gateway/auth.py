"""The gateway's API keys: who may call `/v1`, checked in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from ..config.secret import Secret

__all__ = ["KeyCheck"]


class KeyCheck:
    """Accepts a request that carries one of the configured keys, as `Authorization: Bearer
    KEY` (the openai SDK) or `x-api-key: KEY` (the anthropic SDK). Without keys, every
    request is accepted.

    Each presented key is compared with every configured key by `hmac.compare_digest`, and
    all of them are compared whatever the outcome, so the time taken tells neither which key
    matched nor how much of one did.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[Secret]) -> None:
        self._keys = tuple(k.reveal().encode() for k in keys if k)

    @property
    def enabled(self) -> bool:
        """Whether any key is configured."""
        return bool(self._keys)

    def allows(self, authorization: str | None, x_api_key: str | None) -> bool:
        """Whether the request's credentials name a configured key."""
        if not self._keys:
            return True
        presented: list[bytes] = []
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer":
                presented.append(token.strip().encode("utf-8", "surrogateescape"))
        if x_api_key is not None:
            presented.append(x_api_key.strip().encode("utf-8", "surrogateescape"))
        ok = False
        for candidate in presented:
            for key in self._keys:
                ok |= hmac.compare_digest(candidate, key)
        return ok
