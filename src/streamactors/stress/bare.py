"""The baseline of `streamactors stress --baseline`: the same requests through a bare
`httpx.AsyncClient`, parsed the way a hand-written client would (our `SSEDecoder` plus
orjson, or botocore's event-stream buffer for Bedrock), with no actors, channels,
retries or normalized events. The ratio of the service's figure to this one's, taken
in the same run on the same fake upstream, is comparable across machines.

Requests are built by the providers' own codecs so the bytes on the wire are the same;
Bedrock requests go unsigned (the fake upstream does not check signatures).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from ..config.schema import Config
from ..providers.kinds import build_codec
from ..request_dict import request_from_dict
from ..wire.sse import SSEDecoder, SSEEvent

__all__ = ["BareClient", "BareFailure"]

TextSink = Callable[[str], None]


class BareFailure(Exception):
    """The upstream failed the request (HTTP status or an in-band error); `kind` as ProviderError's."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _openai_text(ev: SSEEvent) -> str | None:
    if ev.data == "[DONE]":
        return None
    obj = orjson.loads(ev.data)
    choices = obj.get("choices")
    if choices:
        content: str | None = choices[0]["delta"].get("content")
        return content
    if "error" in obj:
        raise BareFailure("upstream")
    return None


def _anthropic_text(ev: SSEEvent) -> str | None:
    obj = orjson.loads(ev.data)
    if ev.event == "content_block_delta":
        text: str | None = obj["delta"].get("text")
        return text
    if ev.event == "error":
        raise BareFailure("upstream")
    return None


def _gemini_text(ev: SSEEvent) -> str | None:
    obj = orjson.loads(ev.data)
    candidates = obj.get("candidates")
    if candidates:
        parts = candidates[0].get("content", {}).get("parts", ())
        return "".join(p["text"] for p in parts if "text" in p and not p.get("thought")) or None
    if "error" in obj:
        raise BareFailure("upstream")
    return None


def _extractor(url: str) -> Callable[[SSEEvent], str | None] | None:
    """The text extractor for an endpoint; None for Bedrock's binary event stream."""
    path = url.split("?", 1)[0]
    if path.endswith("/chat/completions"):
        return _openai_text
    if path.endswith("/v1/messages") or path.endswith(":streamRawPredict"):
        return _anthropic_text
    if path.endswith(":streamGenerateContent"):
        return _gemini_text
    return None


class BareClient:
    """One `httpx.AsyncClient` per configured provider, sized like the service's."""

    def __init__(self, cfg: Config, max_connections: int) -> None:
        self._codecs = {name: build_codec(name, pc) for name, pc in cfg.providers.items()}
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        timeout = httpx.Timeout(connect=10.0, read=None, write=10.0, pool=None)
        self._clients = {name: httpx.AsyncClient(limits=limits, timeout=timeout) for name in cfg.providers}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def stream(self, request: dict[str, Any], on_text: TextSink) -> None:
        """Send `request` (a dict in OpenAI shape, model "<provider>/<id>"); call `on_text` per text."""
        req = request_from_dict(request)
        provider, model_id = req.split_model()
        spec = self._codecs[provider].build_request(req, model_id)
        client = self._clients[provider]
        extract = _extractor(spec.url)
        async with client.stream(spec.method, spec.url, headers=spec.headers, content=spec.body) as response:
            if response.status_code >= 400:
                await response.aread()
                raise BareFailure("http_status")
            if extract is None:
                await _read_eventstream(response, on_text)
                return
            decoder = SSEDecoder()
            async for chunk in response.aiter_bytes():
                events: list[SSEEvent] = []
                decoder.feed_into(chunk, events)
                for ev in events:
                    text = extract(ev)
                    if text:
                        on_text(text)


async def _read_eventstream(response: httpx.Response, on_text: TextSink) -> None:
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    async for chunk in response.aiter_bytes():
        buffer.add_data(chunk)
        for message in buffer:
            headers = message.headers
            if headers.get(":message-type") != "event":
                raise BareFailure("upstream")
            obj = orjson.loads(message.payload)
            if headers.get(":event-type") == "contentBlockDelta":
                text = obj["delta"].get("text")
                if text:
                    on_text(text)
