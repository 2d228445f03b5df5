"""Media in requests, sans-IO: data URLs parsed, and the check for parts that must be fetched."""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Sequence
from typing import Any

import attrs

from ..content import ImagePart
from ..errors import UsageError

__all__ = ["DataURL", "is_data_url", "parse_data_url", "remote_images"]


@attrs.frozen(slots=True)
class DataURL:
    """A parsed data URL: its media type (lowercase, no parameters) and its bytes in base64."""

    mime: str
    base64: str

    def bytes(self) -> bytes:
        """The decoded bytes."""
        return base64.b64decode(self.base64)


def is_data_url(url: str) -> bool:
    """Whether `url` is a data URL (else it is a URL to fetch)."""
    return url[:5].lower() == "data:"


def parse_data_url(url: str, where: str = "url") -> DataURL:
    """Parse `data:<mime>[;params][;base64],<data>`; raises `UsageError` naming `where`.

    A data URL without `;base64` (percent-encoded text) is re-encoded as base64, since every
    provider's inline format takes base64.
    """
    if not is_data_url(url):
        raise UsageError(f"{where}: expected a data URL (data:<type>;base64,...), got {url[:60]!r}")
    header, comma, data = url[5:].partition(",")
    if not comma:
        raise UsageError(f"{where}: a data URL needs a comma before its data, got {url[:60]!r}")
    params = [p.strip() for p in header.split(";")]
    mime = (params[0] or "text/plain").lower()
    if "base64" in (p.lower() for p in params[1:]):
        data = data.strip()
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{where}: the data URL's base64 data is invalid") from None
        return DataURL(mime, data)
    raw = urllib.parse.unquote_to_bytes(data)
    return DataURL(mime, base64.b64encode(raw).decode("ascii"))


def remote_images(messages: Sequence[Any]) -> list[str]:
    """The URLs of the image parts that are not data URLs, in order, each once."""
    urls: dict[str, None] = {}
    for m in messages:
        content = m.content
        if content is not None and type(content) is not str:
            for p in content:
                if type(p) is ImagePart and not is_data_url(p.url):
                    urls[p.url] = None
    return list(urls)
