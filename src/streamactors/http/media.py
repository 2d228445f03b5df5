"""Fetching remote images for providers that take no image URLs (Bedrock, Claude on Vertex AI).

Such a provider gets the image's bytes inline, so the library downloads them itself, in the
caller's task before anything is sent to the provider: bounded in size (`media_max_bytes`),
in time (`media_timeout`, covering connect, redirects and body), and checked to be an image
(by its content-type, or by its first bytes when the server sends none or a generic one). A
failure is a `UsageError` naming the URL (without its query string, where presigned URLs
carry their signatures), never a hang.

The fetched image replaces the part's URL as a data URL, so the codecs see only data URLs.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence

import attrs
import httpx
import trio

from ..content import ImagePart
from ..errors import UsageError
from ..models import ChatRequest, Message
from ..wire.media import remote_images

__all__ = ["MAX_REDIRECTS", "MediaFetcher", "sniff_image_type"]

#: Redirects followed per image (a CDN or a presigned URL often redirects once or twice).
MAX_REDIRECTS = 5
#: Images fetched at once for one request.
_CONCURRENT = 8

_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


def sniff_image_type(head: bytes) -> str | None:
    """The image type of bytes that start with a PNG, JPEG, GIF or WebP signature, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _shown(url: str) -> str:
    return url.partition("?")[0][:200]


class MediaFetcher:
    """Downloads remote images, for every provider of one service.

    Its httpx client is made on first use (a service whose requests carry no remote images
    never opens one) and closed by `aclose()`. `transport` is for tests (an
    `httpx.MockTransport`); by default httpx's own, with the environment's proxies.
    """

    def __init__(self, max_bytes: int, timeout: float, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        """Close the client, if one was made."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def inline(self, request: ChatRequest, must_fetch: Callable[[str], bool]) -> ChatRequest:
        """`request` with every remote image for which `must_fetch(url)` holds replaced by its
        bytes as a data URL (each distinct URL fetched once, several at a time). The request
        itself when there is none to fetch."""
        urls = [url for url in remote_images(request.messages) if must_fetch(url)]
        if not urls:
            return request
        fetched: dict[str, str] = {}
        if len(urls) == 1:
            fetched[urls[0]] = await self.fetch(urls[0])
        else:
            await self._fetch_all(urls, fetched)
        return attrs.evolve(request, messages=tuple(_replaced(m, fetched) for m in request.messages))

    async def _fetch_all(self, urls: list[str], fetched: dict[str, str]) -> None:
        """Fetch `urls` several at a time into `fetched`; the first failure cancels the rest
        and is raised as itself (not in an exception group)."""
        limit = trio.Semaphore(_CONCURRENT)
        failure: list[UsageError] = []

        async def fetch_one(url: str, cancel: trio.CancelScope) -> None:
            async with limit:
                try:
                    fetched[url] = await self.fetch(url)
                except UsageError as exc:
                    failure.append(exc)
                    cancel.cancel()

        async with trio.open_nursery() as nursery:
            for url in urls:
                nursery.start_soon(fetch_one, url, nursery.cancel_scope)
        if failure:
            raise failure[0]

    async def fetch(self, url: str) -> str:
        """The image at `url` as a data URL; raises `UsageError` naming the URL on any failure."""
        if not url.lower().startswith(("https://", "http://")):
            raise UsageError(f"image URL {_shown(url)!r}: only http(s) URLs and data URLs are supported")
        try:
            with trio.fail_after(self.timeout):
                return await self._download(url)
        except trio.TooSlowError:
            raise UsageError(f"image URL {_shown(url)!r}: not fetched within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise UsageError(f"image URL {_shown(url)!r}: fetch failed: {type(exc).__name__}") from None

    async def _download(self, url: str) -> str:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport, follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=None
            )
        async with self._client.stream(
            "GET", url, headers={"accept": "image/*", "accept-encoding": "identity"}
        ) as response:
            if response.status_code != 200:
                raise UsageError(f"image URL {_shown(url)!r}: the server answered HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise self._too_large(url)
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self.max_bytes:
                    raise self._too_large(url)
            ctype = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        return _data_url(url, ctype, bytes(body))

    def _too_large(self, url: str) -> UsageError:
        return UsageError(
            f"image URL {_shown(url)!r}: larger than media_max_bytes ({self.max_bytes} bytes); "
            "send a smaller image, or raise service.media_max_bytes"
        )


def _data_url(url: str, ctype: str, body: bytes) -> str:
    sniffed = sniff_image_type(body[:16])
    if ctype == "image/jpg":
        ctype = "image/jpeg"
    if ctype in _GENERIC_TYPES:
        ctype = sniffed or ctype
    if not ctype.startswith("image/"):
        raise UsageError(f"image URL {_shown(url)!r}: the server sent {ctype or 'no content type'}, not an image")
    return f"data:{ctype};base64,{base64.b64encode(body).decode('ascii')}"


def _replaced(message: Message, fetched: dict[str, str]) -> Message:
    content = message.content
    if content is None or type(content) is str:
        return message
    parts: Sequence[object] = content
    if not any(type(p) is ImagePart and p.url in fetched for p in parts):
        return message
    new = tuple(
        attrs.evolve(p, url=fetched[p.url]) if type(p) is ImagePart and p.url in fetched else p for p in content
    )
    return attrs.evolve(message, content=new)
