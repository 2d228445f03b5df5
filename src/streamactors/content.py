"""Content parts of a message: text, images, documents and audio, as OpenAI's chat API names them.

A message's `content` is a string, or a tuple of these parts. Each part may carry a
`cache_control` prompt-caching marker (LiteLLM's way of writing Anthropic's): the codecs send it
where the provider takes explicit markers and strip it where it does not. Everything here is
pure (no I/O): fetching the bytes of a remote image, for a provider that takes no URLs, is
`http.media`'s job.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import attrs

from .errors import UsageError

__all__ = [
    "AudioPart",
    "CacheControl",
    "ContentPart",
    "DataURL",
    "FilePart",
    "ImagePart",
    "TextPart",
    "content_text",
    "parse_data_url",
]


@attrs.frozen(slots=True)
class CacheControl:
    """A prompt-caching breakpoint after the part (or tool) that carries it: Anthropic's
    `{"type": "ephemeral", "ttl": "5m" | "1h"}`."""

    type: Literal["ephemeral"] = "ephemeral"
    ttl: Literal["5m", "1h"] | None = None

    def as_dict(self) -> dict[str, str]:
        """The marker in Anthropic's (and LiteLLM's) JSON shape."""
        return {"type": self.type} if self.ttl is None else {"type": self.type, "ttl": self.ttl}


@attrs.frozen(slots=True)
class TextPart:
    """Text: OpenAI's `{"type": "text", "text": ...}`."""

    type: ClassVar[str] = "text"
    text: str
    cache_control: CacheControl | None = None


@attrs.frozen(slots=True)
class ImagePart:
    """An image: OpenAI's `{"type": "image_url", "image_url": {"url", "detail"}}`.

    `url` is an https URL or a data URL (`data:image/png;base64,...`); `detail` is OpenAI's
    "auto", "low" or "high" (only the OpenAI family reads it).
    """

    type: ClassVar[str] = "image_url"
    url: str
    detail: Literal["auto", "low", "high"] | None = None
    cache_control: CacheControl | None = None


@attrs.frozen(slots=True)
class FilePart:
    """A document (PDF or text): OpenAI's `{"type": "file", "file": {"file_data", "filename"}}`.

    `file_data` is a data URL (`data:application/pdf;base64,...`). `file_id` (an uploaded
    file's id) only the OpenAI family can resolve.
    """

    type: ClassVar[str] = "file"
    file_data: str | None = None
    filename: str | None = None
    file_id: str | None = None
    cache_control: CacheControl | None = None


@attrs.frozen(slots=True)
class AudioPart:
    """Audio input: OpenAI's `{"type": "input_audio", "input_audio": {"data", "format"}}`;
    `data` is base64, `format` e.g. "wav" or "mp3"."""

    type: ClassVar[str] = "input_audio"
    data: str
    format: str
    cache_control: CacheControl | None = None


ContentPart = TextPart | ImagePart | FilePart | AudioPart


def content_parts(value: str | Sequence[Any] | None) -> str | tuple[ContentPart, ...] | None:
    """`Message.content`'s converter: a string or None as it is; a list of parts as a tuple
    (bare strings in it become `TextPart`s)."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    parts = tuple(TextPart(p) if isinstance(p, str) else p for p in value)
    for p in parts:
        if not isinstance(p, TextPart | ImagePart | FilePart | AudioPart):
            raise UsageError(f"a content part must be TextPart, ImagePart, FilePart or AudioPart, got {p!r:.80}")
    return parts


def content_text(content: str | tuple[ContentPart, ...] | None) -> str:
    """The text of a message's content: the string, or its text parts joined. Only the text:
    a codec that must send other parts checks for them itself."""
    if content is None:
        return ""
    if type(content) is str:
        return content
    return "".join(p.text for p in content if type(p) is TextPart)


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


def has_remote_media(messages: Sequence[Any]) -> bool:
    """Whether any message has an image part whose URL is not a data URL."""
    for m in messages:
        content = m.content
        if content is not None and type(content) is not str:
            for p in content:
                if type(p) is ImagePart and not is_data_url(p.url):
                    return True
    return False
