"""`Secret`: a credential that never shows itself in a repr, a log line or an error."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Secret", "scrub"]


class Secret:
    """Holds a credential. `str()`/`repr()` print a mask; `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The credential itself: only for building the request that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value (of 4+ chars) in `text` by a mask."""
    for value in secrets:
        if len(value) >= 4 and value in text:
            text = text.replace(value, "[REDACTED]")
    return text
