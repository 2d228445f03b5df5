"""Content parts of a message: text, images, documents and audio, as OpenAI's chat API names them.

A message's `content` is a string, or a tuple of these parts. Each part may carry a
`cache_control` prompt-caching marker (LiteLLM's way of writing Anthropic's): the codecs send it
where the provider takes explicit markers and strip it where it does not. Everything here is
pure data: data URLs are parsed by `wire.media`, and the bytes of a remote image are fetched,
for a provider that takes no URLs, by `http.media`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import attrs

__all__ = [
    "AudioPart",
    "CacheControl",
    "ContentPart",
    "FilePart",
    "ImagePart",
    "TextPart",
    "content_parts",
    "content_text",
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
            raise TypeError(f"a content part must be TextPart, ImagePart, FilePart or AudioPart, got {p!r:.80}")
    return parts


def content_text(content: str | tuple[ContentPart, ...] | None) -> str:
    """The text of a message's content: the string, or its text parts joined. Only the text:
    a codec that must send other parts checks for them itself."""
    if content is None:
        return ""
    if type(content) is str:
        return content
    return "".join(p.text for p in content if type(p) is TextPart)
