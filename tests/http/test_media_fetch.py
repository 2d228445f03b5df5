"""The media fetcher (issue 13): remote images downloaded for providers that take no image
URLs, bounded in size and time, checked to be images, and every failure a `UsageError` that
names the URL (without its query).

These tests use the real clock: the fake upstream serving the images is a real server on
loopback, and the timeout test measures that a stalled server is cut at the fetcher's bound
(0.3 s here), not at some socket default."""

from __future__ import annotations

import base64
import re

import pytest
import trio

from streamactors import Config, ImagePart, Message, UsageError, open_service
from streamactors.http.media import MediaFetcher, sniff_image_type
from streamactors.models import ChatRequest
from streamactors.testing import FakeUpstream
from streamactors.testing.server import TINY_PNG

TINY_B64 = base64.b64encode(TINY_PNG).decode()


def media_url(fake: FakeUpstream, query: str = "", name: str = "cat.png") -> str:
    return f"{fake.base_url}/media/{name}" + (f"?{query}" if query else "")


async def test_an_image_becomes_a_data_url(fake: FakeUpstream) -> None:
    fetcher = MediaFetcher(1024, 5.0)
    try:
        assert await fetcher.fetch(media_url(fake)) == f"data:image/png;base64,{TINY_B64}"
        # A content type with parameters, and the common misspelling image/jpg.
        got = await fetcher.fetch(media_url(fake, "type=image/jpg;%20q=1"))
        assert got == f"data:image/jpeg;base64,{TINY_B64}"
    finally:
        await fetcher.aclose()


@pytest.mark.parametrize("ctype", ["none", "application/octet-stream"])
async def test_no_or_a_generic_content_type_is_told_by_the_bytes(fake: FakeUpstream, ctype: str) -> None:
    fetcher = MediaFetcher(1024, 5.0)
    try:
        assert await fetcher.fetch(media_url(fake, f"type={ctype}")) == f"data:image/png;base64,{TINY_B64}"
    finally:
        await fetcher.aclose()


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("type=text/html", "the server sent text/html, not an image"),
        ("status=404", "the server answered HTTP 404"),
        ("status=500", "the server answered HTTP 500"),
        ("size=5000", r"larger than media_max_bytes \(1024 bytes\); send a smaller image"),
        ("size=5000&chunked=1", r"larger than media_max_bytes \(1024 bytes\)"),
        ("delay=5", r"not fetched within 0.3 s"),
    ],
)
async def test_a_failure_names_the_url_without_its_query(fake: FakeUpstream, query: str, why: str) -> None:
    url = media_url(fake, query + "&X-Amz-Signature=secret0123")
    fetcher = MediaFetcher(1024, 0.3)
    started = trio.current_time()
    try:
        with pytest.raises(UsageError, match=re.escape(f"image URL {media_url(fake)!r}: ") + why) as info:
            await fetcher.fetch(url)
    finally:
        await fetcher.aclose()
    assert "secret0123" not in str(info.value)
    assert trio.current_time() - started < 2.0  # never a hang: the stalled server is cut at 0.3 s


async def test_unsupported_schemes_and_unreachable_hosts_are_usage_errors() -> None:
    fetcher = MediaFetcher(1024, 2.0)
    try:
        with pytest.raises(UsageError, match="only http"):
            await fetcher.fetch("ftp://example.com/a.png")
        with trio.socket.socket() as s:  # a port nobody listens on
            await s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with pytest.raises(UsageError, match=rf"http://127.0.0.1:{port}/a.png'.*fetch failed: ConnectError"):
            await fetcher.fetch(f"http://127.0.0.1:{port}/a.png")
    finally:
        await fetcher.aclose()


async def test_inline_fetches_each_url_once_and_only_where_asked(fake: FakeUpstream) -> None:
    a, b, keep = media_url(fake, name="a.png"), media_url(fake, name="b.png"), "https://example.com/keep.png"
    request = ChatRequest(
        "p/m",
        [
            Message("system", "be brief"),
            Message("user", [ImagePart(a), ImagePart(keep), "text"]),
            Message("user", [ImagePart(b, detail="low"), ImagePart(a)]),
        ],
    )
    fetcher = MediaFetcher(1024, 5.0)
    before = len(fake.requests)
    try:
        out = await fetcher.inline(request, lambda url: url != keep)
        assert await fetcher.inline(request, lambda url: False) is request
    finally:
        await fetcher.aclose()
    data = f"data:image/png;base64,{TINY_B64}"
    assert out.messages[0] is request.messages[0]
    assert out.messages[1].content == (ImagePart(data), ImagePart(keep), request.messages[1].content[2])  # type: ignore[index]
    assert out.messages[2].content == (ImagePart(data, detail="low"), ImagePart(data))
    assert sorted(r.path for r in list(fake.requests)[before:]) == ["/media/a.png", "/media/b.png"]


def test_sniffed_types() -> None:
    assert sniff_image_type(TINY_PNG[:16]) == "image/png"
    assert sniff_image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff_image_type(b"GIF89a...") == "image/gif"
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"<html>") is None


def _config(fake: FakeUpstream, kind: str) -> Config:
    table = {
        "anthropic": {"kind": "anthropic", "api_key": "sk-ant-test-0123456789"},
        "vertex": {"kind": "vertex", "access_token": "ya29.test-0123", "project": "p", "location": "us-central1"},
    }[kind]
    return Config.from_dict(
        {
            "providers": {kind: {**table, "base_url": fake.base_url, "max_retries": 0}},
            "service": {"media_max_bytes": 4096, "media_timeout": 2.0},
        }
    )


def _image_request(kind: str, url: str) -> dict[str, object]:
    parts = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]
    return {"model": f"{kind}/claude-fake~tokens=2", "messages": [{"role": "user", "content": parts}]}


async def test_claude_on_vertex_gets_the_bytes_and_anthropic_the_url(fake: FakeUpstream) -> None:
    """Vertex AI takes no URL sources, so the image is fetched and sent as base64; Anthropic's
    own API takes the URL as it is, and nothing is fetched for it."""
    url = media_url(fake, "type=image/png")
    async with open_service(_config(fake, "vertex")) as service:
        await service.complete(_image_request("vertex", url))
    fetch, sent = list(fake.requests)[-2:]
    assert fetch.method == "GET" and fetch.target == "/media/cat.png?type=image/png"
    assert sent.json()["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": TINY_B64},
    }
    async with open_service(_config(fake, "anthropic")) as service:
        await service.complete(_image_request("anthropic", url))
    assert fake.requests[-1].path == "/v1/messages"
    assert fake.requests[-2] is sent
    assert fake.requests[-1].json()["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "url", "url": url},
    }


async def test_a_failed_fetch_sends_nothing_to_the_provider(fake: FakeUpstream) -> None:
    url = media_url(fake, "size=10000")
    async with open_service(_config(fake, "vertex")) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError, match=r"larger than media_max_bytes \(4096 bytes\)"):
            await service.complete(_image_request("vertex", url))
    assert [r.path for r in list(fake.requests)[before:]] == ["/media/cat.png"]


async def test_with_several_images_the_first_failure_is_raised_as_itself(fake: FakeUpstream) -> None:
    request = ChatRequest(
        "p/m", [Message("user", [ImagePart(media_url(fake, name="ok.png")), ImagePart(media_url(fake, "status=404"))])]
    )
    fetcher = MediaFetcher(1024, 5.0)
    try:
        with pytest.raises(UsageError, match="answered HTTP 404"):
            await fetcher.inline(request, lambda url: True)
    finally:
        await fetcher.aclose()
