"""Anthropic Messages API streaming, request and response side (sans-IO)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import orjson

from ..content import CacheControl, ContentPart, FilePart, ImagePart, TextPart
from ..errors import UsageError, WireError
from ..models import (
    ChatRequest,
    Citation,
    CitationEvent,
    Message,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    Tool,
    ToolCallEvent,
    UsageEvent,
)
from .base import (
    HttpRequestSpec,
    SSEJsonDecoder,
    error_message_from_body,
    inline_file_data,
    json_body,
    json_field,
    refuse_given,
    refuse_or_drop,
    refuse_part,
    tool_arguments_object,
)
from .claude import claude_sampling
from .media import is_data_url, parse_data_url
from .sse import DEFAULT_MAX_EVENT_BYTES

__all__ = ["SERVICE_TIERS", "AnthropicCodec", "AnthropicStreamDecoder", "anthropic_body"]

ANTHROPIC_VERSION = "2023-06-01"

#: OpenAI's `service_tier` values (and Anthropic's own) -> Anthropic's `service_tier`
#: ("auto" | "standard_only", anthropic-sdk-python `types/message_create_params.py`). "auto"
#: uses priority capacity when the organization has it, else standard: it is both OpenAI's
#: "auto" and the nearest to its "priority" (Anthropic has no per-request priority switch);
#: OpenAI's "default" (standard processing) is "standard_only". OpenAI's "flex" and "scale"
#: have no Messages API equivalent and are refused.
SERVICE_TIERS = {"auto": "auto", "priority": "auto", "default": "standard_only", "standard_only": "standard_only"}

#: The request parameters the Messages API has no counterpart for (anthropic-sdk-python
#: `types/message_create_params.py` has no seed, penalties or logprobs).
UNSUPPORTED = ("seed", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs")

STOP_MAP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# The TextCitation kinds of anthropic-sdk-python `types/text_citation.py`.
CITATION_TYPES = frozenset(
    {"char_location", "page_location", "content_block_location", "web_search_result_location", "search_result_location"}
)

# Anthropic error types -> the HTTP status that carries the same type.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}.get(
            choice, {"type": "auto"}
        )
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if isinstance(fn, Mapping) and "name" in fn:
            return {"type": "tool", "name": fn["name"]}
        return dict(choice)
    return None


#: The image media types the Messages API takes (anthropic-sdk-python
#: `types/base64_image_source_param.py`); "image/jpg", a common misspelling, is sent as jpeg.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def _cached(block: dict[str, Any], cache: CacheControl | None) -> dict[str, Any]:
    if cache is not None:
        block["cache_control"] = cache.as_dict()
    return block


def _shown_url(url: str) -> str:
    """A URL for an error message: without its query (a presigned URL's signature) and short."""
    return url.partition("?")[0][:200]


def _image_source(url: str, where: str, provider: str, url_sources: bool) -> dict[str, Any]:
    """An image block's source: `base64` for a data URL, `url` for a URL (when the API takes them)."""
    if is_data_url(url):
        data = parse_data_url(url, f"{where}.image_url.url")
        mime = "image/jpeg" if data.mime == "image/jpg" else data.mime
        if mime not in IMAGE_TYPES:
            raise UsageError(
                f"{where}: image type {data.mime!r} is not supported by {provider}; "
                "send image/jpeg, image/png, image/gif or image/webp"
            )
        return {"type": "base64", "media_type": mime, "data": data.base64}
    if not url_sources:
        # The provider actor fetches remote images for such a provider (`must_fetch`);
        # one left here was not fetched, and the API would reject it.
        raise UsageError(
            f"{where}: {provider} takes no image URLs, and {_shown_url(url)!r} was not fetched; "
            "send the image as a data URL (data:image/png;base64,...)"
        )
    return {"type": "url", "url": url}


def _document(part: FilePart, where: str, provider: str) -> dict[str, Any]:
    """A `document` block: a PDF as a `base64` source, text as a `text` source (the text itself)."""
    data = parse_data_url(inline_file_data(part, where, provider), f"{where}.file.file_data")
    source: dict[str, Any]
    if data.mime == "application/pdf":
        source = {"type": "base64", "media_type": "application/pdf", "data": data.base64}
    elif data.mime.startswith("text/"):
        # PlainTextSource takes text/plain only; any text type travels as that (the text is the same).
        try:
            text = data.bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{where}: a {data.mime} document must be UTF-8 text") from None
        source = {"type": "text", "media_type": "text/plain", "data": text}
    else:
        raise UsageError(
            f"{where}: document type {data.mime!r} is not supported by {provider}; send application/pdf or text/plain"
        )
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    return block


def _blocks(parts: tuple[ContentPart, ...], where: str, provider: str, url_sources: bool) -> list[dict[str, Any]]:
    """Content parts as Messages API blocks (text, image, document); audio is refused."""
    out: list[dict[str, Any]] = []
    for k, p in enumerate(parts):
        at = f"{where}[{k}]"
        block: dict[str, Any]
        if type(p) is TextPart:
            block = {"type": "text", "text": p.text}
        elif type(p) is ImagePart:
            block = {"type": "image", "source": _image_source(p.url, at, provider, url_sources)}
        elif type(p) is FilePart:
            block = _document(p, at, provider)
        else:
            raise refuse_part("audio", at, provider)
        out.append(_cached(block, p.cache_control))
    return out


def _system_blocks(system: list[str | list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A system prompt with cache markers as the text blocks the anthropic SDK sends: a
    message given as a string (or as unmarked parts) is one block of its text."""
    out: list[dict[str, Any]] = []
    for s in system:
        if isinstance(s, str):
            out.append({"type": "text", "text": s})
        else:
            out.extend(s)
    return out


def anthropic_messages(
    messages: tuple[Message, ...], provider: str = "Anthropic", *, url_sources: bool = True
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(system prompt, messages) in the Messages API shape.

    System and developer messages become the system prompt: one string (the messages joined
    by blank lines), or, when a part carries `cache_control`, a list of text blocks with the
    markers on them. Tool results become `tool_result` blocks in a user turn, their parts as
    its `content` blocks (text, image, document); consecutive turns of one role are merged,
    so parallel tool results travel together as the API requires. An assistant turn's
    signed reasoning blocks go first, as `thinking` / `redacted_thinking` blocks.

    Content parts become blocks: text as `text`; an image as `image` with a `base64` source
    for a data URL (jpeg, png, gif, webp) and a `url` source for a URL (a `UsageError` when
    not `url_sources`: Vertex AI takes none); a PDF or text file as `document` (titled by
    its filename); each with its `cache_control`. Audio (the API takes none), an uploaded
    `file_id` and any other media type are a `UsageError` naming the part, before sending.
    """
    # Each system message's text; a message whose parts carry a cache marker, as its blocks.
    system: list[str | list[dict[str, Any]]] = []
    marked = False
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:
            prev = out[-1]["content"]
            if isinstance(prev, str):
                prev = out[-1]["content"] = [{"type": "text", "text": prev}]
            prev.extend(blocks)
        elif len(blocks) == 1 and blocks[0]["type"] == "text" and len(blocks[0]) == 2:
            out.append({"role": role, "content": blocks[0]["text"]})
        else:
            out.append({"role": role, "content": blocks})

    i = -1  # the message's index, for errors (a counter: cheaper than enumerate on this path)
    for m in messages:
        i += 1
        content = m.content
        if content is not None and type(content) is not str:
            content = cast("tuple[ContentPart, ...]", content)
            if not content:
                content = None
            else:
                where = f"messages[{i}].content"
                if m.role in ("system", "developer"):
                    texts = _system_texts(content, where, provider)
                    if any("cache_control" in b for b in texts):
                        system.append(texts)
                        marked = True
                    elif texts:
                        system.append("".join(b["text"] for b in texts))
                    continue
                blocks = _blocks(content, where, provider, url_sources)
                if m.role == "tool":
                    add("user", [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": blocks}])
                elif m.role == "assistant":
                    _assistant(m, blocks, add)
                else:
                    add("user", blocks)
                continue
        # The common case, a string (or nothing).
        if m.role in ("system", "developer"):
            if content:
                system.append(content)
        elif m.role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": content or ""}])
        elif m.role == "assistant":
            if m.tool_calls or m.reasoning_blocks:
                _assistant(m, [{"type": "text", "text": content}] if content else [], add)
            elif content:
                add("assistant", [{"type": "text", "text": content}])
        else:
            add("user", [{"type": "text", "text": content or ""}])
    if marked:
        return _system_blocks(system), out
    return ("\n\n".join(system) if system else None), out  # type: ignore[arg-type]  # unmarked: strings only


def _system_texts(content: tuple[ContentPart, ...], where: str, provider: str) -> list[dict[str, Any]]:
    """A system message's parts as text blocks (an empty unmarked one left out: the API
    rejects empty text blocks); any other part is a `UsageError`."""
    texts: list[dict[str, Any]] = []
    for k, p in enumerate(content):
        if type(p) is not TextPart:
            raise UsageError(
                f"{where}[{k}]: a system prompt takes only text on {provider}; move the {p.type} part to a user message"
            )
        if p.text or p.cache_control is not None:
            texts.append(_cached({"type": "text", "text": p.text}, p.cache_control))
    return texts


def _assistant(m: Message, content: list[dict[str, Any]], add: Callable[[str, list[dict[str, Any]]], None]) -> None:
    """An assistant turn: signed thinking first, unchanged, as the API requires of a
    tool-use turn; then its content blocks and tool calls."""
    blocks: list[dict[str, Any]] = []
    for r in m.reasoning_blocks:
        if r.redacted is not None:
            blocks.append({"type": "redacted_thinking", "data": r.redacted})
        elif r.signature is not None:
            blocks.append({"type": "thinking", "thinking": r.text, "signature": r.signature})
    blocks.extend(content)
    for tc in m.tool_calls:
        blocks.append({"type": "tool_use", "id": tc.id, "name": tc.name, "input": tool_arguments_object(tc.arguments)})
    if blocks:
        add("assistant", blocks)


def anthropic_body(
    request: ChatRequest,
    model_id: str | None,
    *,
    provider: str = "Anthropic",
    drop: bool = False,
    dropped: list[str] | None = None,
    service_tier: bool = True,
    url_sources: bool = True,
) -> dict[str, Any]:
    """The Messages API body, in the key order the anthropic SDK uses.

    The common parameters go under Anthropic's names (anthropic-sdk-python
    `types/message_create_params.py`): `top_k` as is; `user` as `metadata.user_id`
    (Anthropic's metadata has `user_id` only: the request's `metadata` may give `user_id`,
    any other key is refused); `parallel_tool_calls: false` as
    `tool_choice.disable_parallel_tool_use: true` (tool_choice then `{"type": "auto"}` when
    none was given; "none" takes no such field); `service_tier` through `SERVICE_TIERS`
    (only when `service_tier`: Vertex AI has no such field); `response_format` json_schema
    as `output_config.format` (`{"type": "json_schema", "schema": ...}`, the GA form: the
    beta `output_format` is deprecated). json_object is refused: the Messages API has no
    schema-less JSON mode. `seed`, the penalties and `logprobs` / `top_logprobs` (`UNSUPPORTED`)
    are refused. With thinking on, temperature and top_p are dropped (`claude_sampling`) and
    `top_k` is refused: Anthropic's extended-thinking docs say thinking is not compatible with
    `top_k`. A refused parameter is a `UsageError` naming it and `provider`, or with `drop`
    it is left out and its name appended to `dropped`.

    Content parts map as `anthropic_messages` says (image URLs as `url` sources only when
    `url_sources`); a tool's `cache_control` goes on its definition.
    """
    gone: list[str] = dropped if dropped is not None else []

    def refuse(param: str, why: str = "") -> None:
        refuse_or_drop(param, provider + why, drop=drop, dropped=gone)

    refuse_given(request, UNSUPPORTED, provider, drop=drop, dropped=gone)
    system, messages = anthropic_messages(request.messages, provider, url_sources=url_sources)
    # The Messages API requires max_tokens; thinking drops temperature and top_p.
    sampling = claude_sampling(request, require_max_tokens=True)
    body: dict[str, Any] = {"max_tokens": sampling.max_tokens, "messages": messages}
    if model_id is not None:
        body["model"] = model_id
    metadata = _metadata(request, refuse)
    if metadata:
        body["metadata"] = metadata
    fmt = request.response_format
    if fmt is not None:
        if fmt.type == "json_schema" and fmt.schema is not None:
            body["output_config"] = {"format": {"type": "json_schema", "schema": dict(fmt.schema)}}
        elif fmt.type == "json_schema":
            raise UsageError("response_format: type 'json_schema' needs a schema")
        else:
            refuse("response_format", " for type json_object (only json_schema has a native mode)")
    if request.service_tier is not None:
        tier = SERVICE_TIERS.get(request.service_tier) if service_tier else None
        if tier is not None:
            body["service_tier"] = tier
        else:
            why = f" as {request.service_tier!r} (only auto, default, priority)" if service_tier else ""
            refuse("service_tier", why)
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    body["stream"] = True
    if system is not None:
        body["system"] = system
    if sampling.temperature is not None:
        body["temperature"] = sampling.temperature
    if sampling.thinking_budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": sampling.thinking_budget}
    tool_choice = _tool_choice(request.tool_choice)
    if request.parallel_tool_calls is False:
        if tool_choice is None:
            tool_choice = {"type": "auto"}
        if tool_choice.get("type") != "none":
            tool_choice["disable_parallel_tool_use"] = True
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
    if request.top_k is not None:
        if sampling.thinking_budget is None:
            body["top_k"] = request.top_k
        else:
            refuse("top_k", " with extended thinking")
    if sampling.top_p is not None:
        body["top_p"] = sampling.top_p
    return body


def _tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["input_schema"] = dict(tool.parameters)
    return _cached(out, tool.cache_control)


def _metadata(request: ChatRequest, refuse: Callable[[str], None]) -> dict[str, str]:
    """Anthropic's `metadata` (`types/metadata_param.py`: `user_id` only) from `user` and
    the request's `metadata`; any other metadata key is refused."""
    out: dict[str, str] = {}
    for key, value in (request.metadata or {}).items():
        if key == "user_id":
            out["user_id"] = value
        else:
            refuse(f"metadata.{key}")
    if request.user is not None:
        if out.get("user_id", request.user) != request.user:
            raise UsageError("user and metadata.user_id differ; Anthropic takes one user_id")
        out["user_id"] = request.user
    return out


class AnthropicCodec:
    """Builds `POST {base_url}/v1/messages` requests and decodes their SSE streams."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        drop_params: bool = False,
    ) -> None:
        self.url = url
        self.headers = tuple(headers.items())
        self.max_event_bytes = max_event_bytes
        self.drop_params = drop_params

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        dropped: list[str] = []
        body = anthropic_body(request, model_id, drop=self.drop_params, dropped=dropped)
        return HttpRequestSpec("POST", self.url, self.headers, json_body(body), dropped=tuple(dropped))

    def new_decoder(self, model_id: str = "") -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(self.max_event_bytes)

    def must_fetch(self, url: str, model_id: str) -> bool:
        """The Messages API takes image URLs as they are."""
        return False

    def parse_error(self, status: int, body: bytes) -> tuple[str, str | None]:
        return error_message_from_body(body)


class AnthropicStreamDecoder(SSEJsonDecoder):
    """Decodes a Messages API SSE stream into normalized events.

    Tool calls are numbered 0, 1, ... in the order their `tool_use` blocks start,
    whatever the content block indexes (a text or thinking block usually comes first,
    Portkey-AI/gateway#1275). Usage follows the SDK's `accumulate_event`: each usage
    field of `message_start` is replaced by the same field of a later `message_delta`
    when present; input tokens are reported with the cache tokens included, as
    OpenAI's `prompt_tokens` are (input + cache creation + cache read, as LiteLLM does),
    cache writes and reads as `cache_creation_input_tokens` and `cache_read_input_tokens`,
    and reasoning tokens as `output_tokens_details.thinking_tokens` (each None where the
    stream does not say). Each `citations_delta` of a text block is one `CitationEvent`.
    """

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__(max_event_bytes)
        self._input_parts: dict[str, int] = {}
        self._output_tokens: int | None = None
        self._thinking_tokens: int | None = None
        self._block_tool: dict[int, int] = {}  # content block index -> tool position
        self._tool_count = 0

    def _on_event(self, event: str | None, data: str, out: list[StreamEvent]) -> None:
        if event == "error":
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:  # the SDK, too, reports the raw text
                raise WireError(data[:1000] or "error event", kind="upstream", retryable=True) from None
        else:
            obj = self._json(data)
        if not isinstance(obj, dict):
            raise WireError(f"stream event is not a JSON object: {data[:200]!r}", kind="protocol")
        etype = json_field(obj, "type", str, "event") or event
        if event == "error" or etype == "error":
            raise _stream_error(obj)
        if etype == "content_block_delta":
            self._block_delta(obj, out)
        elif etype == "content_block_start":
            self._block_start(obj, out)
        elif etype == "content_block_stop" or etype == "ping":
            pass
        elif etype == "message_start":
            message = json_field(obj, "message", dict, "message_start") or {}
            model = json_field(message, "model", str, "message")
            if model:
                self.model = model
            self._usage_from(json_field(message, "usage", dict, "message"))
        elif etype == "message_delta":
            delta = json_field(obj, "delta", dict, "message_delta") or {}
            stop = json_field(delta, "stop_reason", str, "delta")
            if stop:
                self._finish = STOP_MAP.get(stop)
                if self._finish is None:
                    self._finish = "stop"
                    self.unknown_events.add(f"stop_reason:{stop}")
            self._usage_from(json_field(obj, "usage", dict, "message_delta"))
        elif etype == "message_stop":
            self._done = True
        else:
            self.unknown_events.add(str(etype))

    def _block_start(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        index = json_field(obj, "index", int, "content_block_start")
        block = json_field(obj, "content_block", dict, "content_block_start") or {}
        btype = json_field(block, "type", str, "content_block")
        if btype == "tool_use":
            pos = self._tool_count
            self._tool_count += 1
            if index is not None:
                self._block_tool[index] = pos
            self._tool_calls_seen = True
            tool_id = json_field(block, "id", str, "tool_use")
            name = json_field(block, "name", str, "tool_use")
            out.append(ToolCallEvent(pos, tool_id, name, ""))
            initial = json_field(block, "input", dict, "tool_use")
            if initial:  # the API streams `{}` then input_json_delta; a proxy may send it whole
                out.append(ToolCallEvent(pos, None, None, orjson.dumps(initial).decode()))
        elif btype == "text":
            text = json_field(block, "text", str, "text block")
            if text:
                out.append(TextEvent(text))
            # The API starts a text block with no citations and streams them as citations_delta;
            # a proxy may send the block whole, citations included.
            for citation in json_field(block, "citations", list, "text block") or ():
                if not isinstance(citation, dict):
                    raise WireError(f"text block citation is not an object: {citation!r:.200}", kind="protocol")
                self._citation(citation, out)
        elif btype == "thinking":
            text = json_field(block, "thinking", str, "thinking block")
            if text:
                out.append(ReasoningEvent(text))
            signature = json_field(block, "signature", str, "thinking block")
            if signature:  # the API streams "" then a signature_delta; a proxy may send it whole
                out.append(ReasoningEvent("", signature=signature))
        elif btype == "redacted_thinking":
            data = json_field(block, "data", str, "redacted_thinking block")
            if data:
                out.append(ReasoningEvent("", redacted=data))
        else:
            self.unknown_events.add(f"content_block_start:{btype}")

    def _block_delta(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = json_field(obj, "delta", dict, "content_block_delta") or {}
        dtype = json_field(delta, "type", str, "delta")
        if dtype == "text_delta":
            text = json_field(delta, "text", str, "text_delta")
            if text:
                out.append(TextEvent(text))
        elif dtype == "input_json_delta":
            part = json_field(delta, "partial_json", str, "input_json_delta")
            index = json_field(obj, "index", int, "content_block_delta")
            pos = self._block_tool.get(index) if index is not None else None
            # Deltas of server tool blocks (web search) have no position: they are not our calls.
            if part and pos is not None:
                out.append(ToolCallEvent(pos, None, None, part))
        elif dtype == "thinking_delta":
            text = json_field(delta, "thinking", str, "thinking_delta")
            if text:
                out.append(ReasoningEvent(text))
        elif dtype == "signature_delta":
            signature = json_field(delta, "signature", str, "signature_delta")
            if signature:
                out.append(ReasoningEvent("", signature=signature))
        elif dtype == "citations_delta":
            citation = json_field(delta, "citation", dict, "citations_delta")
            if citation is not None:
                self._citation(citation, out)
        else:
            self.unknown_events.add(f"content_block_delta:{dtype}")

    def _citation(self, citation: dict[str, Any], out: list[StreamEvent]) -> None:
        """One `TextCitation` (anthropic-sdk-python `types/text_citation.py`) as a `CitationEvent`.

        `web_search_result_location` has `url` and `title`; `search_result_location` has
        `source` (the result's URL or identifier) and `title`; the document locations
        (`char_location`, `page_location`, `content_block_location`) have `document_title`.
        Every kind has `cited_text`.
        """
        ctype = json_field(citation, "type", str, "citation")
        if ctype not in CITATION_TYPES:
            self.unknown_events.add(f"citation:{ctype}")
        url = json_field(citation, "url", str, "citation") or json_field(citation, "source", str, "citation")
        title = json_field(citation, "document_title", str, "citation") or json_field(
            citation, "title", str, "citation"
        )
        cited_text = json_field(citation, "cited_text", str, "citation")
        if url is not None or title is not None or cited_text is not None:
            out.append(CitationEvent(Citation(url, title, cited_text)))

    def _usage_from(self, usage: dict[str, Any] | None) -> None:
        if usage is None:
            return
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            value = json_field(usage, key, int, "usage")
            if value is not None:
                self._input_parts[key] = value
        output = json_field(usage, "output_tokens", int, "usage")
        if output is not None:
            self._output_tokens = output
        details = json_field(usage, "output_tokens_details", dict, "usage")
        if details is not None:
            thinking = json_field(details, "thinking_tokens", int, "output_tokens_details")
            if thinking is not None:
                self._thinking_tokens = thinking
        parts = self._input_parts
        # Anthropic counts cached prompt tokens apart; OpenAI's prompt_tokens include them.
        total_input = sum(parts.values()) if parts else None
        self._usage = UsageEvent(
            total_input,
            self._output_tokens,
            cache_read_tokens=parts.get("cache_read_input_tokens"),
            cache_write_tokens=parts.get("cache_creation_input_tokens"),
            reasoning_tokens=self._thinking_tokens,
        )


def _stream_error(obj: dict[str, Any]) -> WireError:
    """The WireError for an `error` event: `{"type": "error", "error": {"type", "message"}}`."""
    err = obj.get("error")
    error_type: str | None = None
    if isinstance(err, dict):
        raw_type = err.get("type")
        error_type = raw_type if isinstance(raw_type, str) else None
        message = str(err.get("message") or error_type or "error event")
    elif isinstance(err, str):
        message = err
    else:
        message = "error event"
    status = ERROR_STATUS.get(error_type or "")
    retryable = status is None or status == 429 or status >= 500
    return WireError(message, kind="upstream", status=status, retryable=retryable, error_type=error_type)
