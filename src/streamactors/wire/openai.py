"""OpenAI chat-completions streaming, request and response side (sans-IO).

The same format serves Azure OpenAI, xAI, OpenRouter and every OpenAI-compatible
server; their differences are parameters of `OpenAICodec` (URL, headers, which
max-tokens field) and tolerances of `OpenAIStreamDecoder` (empty `choices`,
`reasoning`/`reasoning_content` deltas, error objects inside a chunk, Perplexity's
top-level `citations` and `search_results`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from ..content import AudioPart, ContentPart, FilePart, ImagePart, TextPart
from ..errors import UsageError, WireError
from ..models import (
    ChatRequest,
    Citation,
    CitationEvent,
    LogprobsEvent,
    Message,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    TokenLogprob,
    ToolCallEvent,
    TopLogprob,
    UsageEvent,
)
from ..reply import TEXT_BLOCK, TextBuffer
from .base import (
    HttpRequestSpec,
    SSEJsonDecoder,
    error_message_from_body,
    inline_file_data,
    json_body,
    json_field,
    refuse_or_drop,
    refuse_part,
)
from .media import is_data_url, parse_data_url
from .sse import DEFAULT_MAX_EVENT_BYTES

__all__ = [
    "AzureCodec",
    "OpenAICodec",
    "OpenAIStreamDecoder",
    "PartsMapper",
    "effort_for_budget",
    "openai_messages",
]

# Delta keys that carry nothing but the content (or are empty or null in a plain text chunk).
_PLAIN_DELTA_KEYS = frozenset({"content", "role", "refusal"})  # (a refusal only when it is null)
# The repeated envelope (see `OpenAIStreamDecoder._learn_envelope`): the key before its slot, how
# many envelopes one stream may learn, and how many chunks in a row with another envelope
# (a field that changes every chunk) make it learn anew.
_CONTENT_KEY = '"content":"'
_OBFUSCATION_KEY = '"obfuscation":"'
_ENVELOPE_LEARNS = 4
_ENVELOPE_MISSES = 3

FINISH_MAP = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "end_turn": "stop",
    "eos": "stop",
    "error": "error",
}

# Error types that mean the request itself is at fault: sending it again cannot help.
NON_RETRYABLE_TYPES = frozenset(
    {"invalid_request_error", "authentication_error", "permission_error", "not_found_error", "invalid_api_key"}
)


def effort_for_budget(budget: int) -> str:
    """Map a thinking-token budget to OpenAI's effort levels."""
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


def openai_messages(messages: tuple[Message, ...], parts: PartsMapper | None = None) -> list[dict[str, Any]]:
    """Messages in the chat-completions shape, as the openai SDK would send them. A string
    content goes as it is; a tuple of parts through `parts` (default: OpenAI's own mapping)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        content: Any = m.content
        if type(content) is not str and content is not None:
            # The message's index (for errors) is found only here: no counter on the string path.
            i = next(k for k, x in enumerate(messages) if x is m)
            content = (parts or _OPENAI_PARTS)(content, m.role, f"messages[{i}].content")
        d: dict[str, Any] = {"role": m.role, "content": content}
        if m.name is not None:
            d["name"] = m.name
        if m.tool_calls:
            d["tool_calls"] = [
                {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
                for tc in m.tool_calls
            ]
        if m.tool_call_id is not None:
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


class PartsMapper:
    """Content parts as chat-completions content parts, as the openai SDK sends the user's
    dicts: `{"type": "text", "text"}`, `{"type": "image_url", "image_url": {"url", "detail"}}`,
    `{"type": "file", "file": {"file_data", "file_id", "filename"}}` and `{"type":
    "input_audio", "input_audio": {"data", "format"}}`, each key only when given.

    - System, developer, assistant and tool messages take text parts only (the Chat
      Completions API's message params): any other part there is a `UsageError`.
    - `refused` part kinds ("image", "file", "audio") are a `UsageError` naming the part and
      the provider, before anything is sent.
    - `cache_control` is stripped (OpenAI-style providers cache prompts automatically), or,
      with `keep_cache` (OpenRouter, which passes it on to Anthropic and Gemini models), kept
      on text parts, the only parts OpenRouter documents it on.
    - With `file_url` (Perplexity), a file goes as Perplexity's `{"type": "file_url",
      "file_url": {"url"}, "file_name"}`, the url being the bare base64 of a data URL.
    """

    __slots__ = ("file_url", "keep_cache", "provider", "refused")

    def __init__(
        self, provider: str, refused: frozenset[str] = frozenset(), *, keep_cache: bool = False, file_url: bool = False
    ) -> None:
        self.provider = provider
        self.refused = refused
        self.keep_cache = keep_cache
        self.file_url = file_url

    def __call__(self, parts: tuple[ContentPart, ...], role: str, where: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        k = -1
        for p in parts:
            k += 1
            cls = type(p)
            if cls is TextPart:
                assert isinstance(p, TextPart)
                d: dict[str, Any] = {"type": "text", "text": p.text}
                if self.keep_cache and p.cache_control is not None:
                    d["cache_control"] = p.cache_control.as_dict()
                out.append(d)
                continue
            kind = "image" if cls is ImagePart else "file" if cls is FilePart else "audio"
            at = f"{where}[{k}]"
            if role != "user":
                raise UsageError(
                    f"{at}: a {role} message takes only text parts in the chat completions API "
                    f"({self.provider}); send the {kind} in a user message"
                )
            if kind in self.refused:
                raise refuse_part(kind, at, self.provider)
            if cls is ImagePart:
                assert isinstance(p, ImagePart)
                image: dict[str, Any] = {"url": p.url}
                if p.detail is not None:
                    image["detail"] = p.detail
                out.append({"type": "image_url", "image_url": image})
            elif cls is FilePart:
                assert isinstance(p, FilePart)
                out.append(self._file(p, at))
            else:
                assert isinstance(p, AudioPart)
                out.append({"type": "input_audio", "input_audio": {"data": p.data, "format": p.format}})
        return out

    def _file(self, p: FilePart, at: str) -> dict[str, Any]:
        if self.file_url:
            # Perplexity's file chunk (docs.perplexity.ai, ChatMessageContentFileChunk), as the
            # AI SDK's @ai-sdk/perplexity writes it: a URL, or the bare base64 of the bytes.
            url = inline_file_data(p, at, self.provider)
            if is_data_url(url):
                url = parse_data_url(url, f"{at}.file.file_data").base64
            d: dict[str, Any] = {"type": "file_url", "file_url": {"url": url}}
            if p.filename is not None:
                d["file_name"] = p.filename
            return d
        inner: dict[str, Any] = {}
        if p.file_data is not None:
            inner["file_data"] = p.file_data
        if p.file_id is not None:
            inner["file_id"] = p.file_id
        if p.filename is not None:
            inner["filename"] = p.filename
        return {"type": "file", "file": inner}


_OPENAI_PARTS = PartsMapper("openai")

# The content part kinds a provider kind cannot take in chat completions (a UsageError before
# sending). Groq's chat API (groq-python `chat_completion_content_part_param.py`, from its
# OpenAPI spec) takes text, image_url and JSON `document` parts: no files, no audio. xAI's
# chat completions document text and image input only ("Image Understanding"; voice is a
# separate API); a file part is passed as given (xAI documents file attachments for its
# Responses API only, so the upstream answers). Perplexity's content chunks are text, image,
# file_url, PDF and video (its ChatMessage schema): no audio. OpenRouter documents images,
# PDFs (file parts) and input_audio. Azure is OpenAI's API.
_REFUSED_PARTS: dict[str, frozenset[str]] = {
    "xai": frozenset({"audio"}),
    "groq": frozenset({"file", "audio"}),
    "perplexity": frozenset({"audio"}),
}


# The common request parameters (ChatRequest's names are OpenAI's own, openai-python
# `types/chat/completion_create_params.py`) that a provider kind cannot honour. top_k is no
# OpenAI parameter (OpenAI, Azure, xAI and Groq reject it); OpenRouter documents it and
# vLLM-style OpenAI-compatible servers accept it. Groq answers 400 to logprobs and
# top_logprobs. Perplexity's chat completions take top_k and the two penalties but none of
# the others (docs.perplexity.ai, POST /chat/completions).
_REFUSED: dict[str, frozenset[str]] = {
    "openai": frozenset({"top_k"}),
    "azure": frozenset({"top_k"}),
    "xai": frozenset({"top_k"}),
    "groq": frozenset({"top_k", "logprobs", "top_logprobs"}),
    "perplexity": frozenset(
        {"seed", "user", "parallel_tool_calls", "logprobs", "top_logprobs", "service_tier", "metadata"}
    ),
    "openrouter": frozenset(),
    "openai_compatible": frozenset(),
}

# The parameters sent under the same name, each with its request attribute, in the openai
# SDK's key order (after `response_format`, which has its own shape).
_SAME_NAME_BEFORE = ("frequency_penalty", "logprobs")
_SAME_NAME_MIDDLE = ("parallel_tool_calls", "presence_penalty")
_SAME_NAME_AFTER = ("seed", "service_tier")

#: The name OpenAI requires in `json_schema` when the request gave none.
DEFAULT_SCHEMA_NAME = "response"


class OpenAICodec:
    """Builds `POST {url}` chat-completions requests and decodes their SSE streams.

    `kind` (the provider's config kind) decides which common parameters are refused (see
    `_REFUSED`); `provider` (the configured name) only names the provider in that error.
    With `drop_params`, a refused parameter is left out and listed in `spec.dropped`.

    `response_format` goes as OpenAI's `{"type": "json_object"}` or `{"type": "json_schema",
    "json_schema": {"name", "schema", "strict"}}`; OpenAI requires a name, so a schema
    given without one is named "response". Perplexity has no `json_object` mode: refused.

    Content parts go as the openai SDK sends them (see `PartsMapper`); `cache_control` is
    stripped from parts and tools but on OpenRouter, which forwards it on text parts and tools.
    """

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        max_tokens_field: str = "max_completion_tokens",
        include_usage: bool = True,
        send_model: bool = True,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        kind: str = "openai",
        provider: str | None = None,
        drop_params: bool = False,
    ) -> None:
        self.url = url
        self.kind = kind
        self.refused = _REFUSED.get(kind, frozenset())
        self.provider_label = f"provider {provider!r} (kind {kind})" if provider else kind
        self.drop_params = drop_params
        self.keep_cache = kind == "openrouter"
        self.parts = PartsMapper(
            self.provider_label,
            _REFUSED_PARTS.get(kind, frozenset()),
            keep_cache=self.keep_cache,
            file_url=kind == "perplexity",
        )
        self.headers = tuple(headers.items())
        self.max_tokens_field = max_tokens_field
        self.include_usage = include_usage
        self.send_model = send_model
        self.max_event_bytes = max_event_bytes

    def body(self, request: ChatRequest, model_id: str, dropped: list[str] | None = None) -> dict[str, Any]:
        """The JSON body, in the key order the openai SDK uses. Raises `UsageError` for a
        parameter this provider cannot honour, or (with `drop_params`) appends it to `dropped`."""
        if dropped is None:
            dropped = []
        body: dict[str, Any] = {"messages": openai_messages(request.messages, self.parts)}
        if self.send_model:
            body["model"] = model_id
        given = request.has_parameters()  # most requests have none: their mapping is skipped
        if given:
            self._same_name(request, _SAME_NAME_BEFORE, body, dropped)
        if request.max_tokens is not None:
            body[self.max_tokens_field] = request.max_tokens
        if given:
            if request.metadata is not None and self._allowed("metadata", dropped):
                body["metadata"] = dict(request.metadata)
            self._same_name(request, _SAME_NAME_MIDDLE, body, dropped)
        if request.reasoning is not None:
            effort = request.reasoning.effort
            if effort is None and request.reasoning.budget_tokens is not None:
                effort = effort_for_budget(request.reasoning.budget_tokens)  # type: ignore[assignment]
            if effort is not None:
                body["reasoning_effort"] = effort
        if given:
            if request.response_format is not None:
                fmt = self._response_format(request, dropped)
                if fmt is not None:
                    body["response_format"] = fmt
            self._same_name(request, _SAME_NAME_AFTER, body, dropped)
        if request.stop:
            body["stop"] = list(request.stop)
        body["stream"] = True
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.tools:
            body["tools"] = tools = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        **({"description": t.description} if t.description is not None else {}),
                        "parameters": dict(t.parameters),
                    },
                }
                for t in request.tools
            ]
            if self.keep_cache:  # OpenRouter forwards a tool's cache_control (as LiteLLM users write it)
                for t, d in zip(request.tools, tools, strict=True):
                    if t.cache_control is not None:
                        d["cache_control"] = t.cache_control.as_dict()
        if given:
            self._same_name(request, ("top_k", "top_logprobs"), body, dropped)
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if given:
            self._same_name(request, ("user",), body, dropped)
        return body

    def _allowed(self, param: str, dropped: list[str]) -> bool:
        """True if `param` may be sent; else refuse it (`UsageError`) or note it as dropped."""
        if param not in self.refused:
            return True
        refuse_or_drop(param, self.provider_label, drop=self.drop_params, dropped=dropped)
        return False

    def _same_name(
        self, request: ChatRequest, params: tuple[str, ...], body: dict[str, Any], dropped: list[str]
    ) -> None:
        for param in params:
            value = getattr(request, param)
            if value is not None and self._allowed(param, dropped):
                body[param] = value

    def _response_format(self, request: ChatRequest, dropped: list[str]) -> dict[str, Any] | None:
        fmt = request.response_format
        assert fmt is not None
        if fmt.type == "json_object":
            if self.kind == "perplexity":  # Perplexity offers json_schema (and regex) only
                refuse_or_drop("response_format", self.provider_label, drop=self.drop_params, dropped=dropped)
                return None
            return {"type": "json_object"}
        schema: dict[str, Any] = {"name": fmt.name or DEFAULT_SCHEMA_NAME}
        if fmt.schema is not None:
            schema["schema"] = dict(fmt.schema)
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": schema}

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        dropped: list[str] = []
        body = json_body(self.body(request, model_id, dropped))
        return HttpRequestSpec("POST", self.url, self.headers, body, dropped=tuple(dropped))

    def new_decoder(self, model_id: str = "") -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(self.max_event_bytes)

    def must_fetch(self, url: str, model_id: str) -> bool:
        """The OpenAI family takes image URLs as they are."""
        return False

    def parse_error(self, status: int, body: bytes) -> tuple[str, str | None]:
        return error_message_from_body(body)


def _token_fields(obj: dict[str, Any], where: str) -> tuple[str, float, tuple[int, ...] | None]:
    """(token, logprob, bytes) of a `logprobs.content` or `top_logprobs` entry."""
    token = json_field(obj, "token", str, where)
    logprob: Any = obj.get("logprob")
    if token is None or type(logprob) not in (float, int):
        raise WireError(f"{where} entry needs a string token and a number logprob", kind="protocol")
    raw = obj.get("bytes")
    if raw is None:
        return token, float(logprob), None
    if type(raw) is not list or any(type(b) is not int for b in raw):
        raise WireError(f"{where}.bytes is not a list of integers", kind="protocol")
    return token, float(logprob), tuple(raw)


class OpenAIStreamDecoder(SSEJsonDecoder):
    """Decodes a chat-completions SSE stream into normalized events.

    Only choice 0 is read. Tool-call fragments are attributed by their `index` (later
    fragments carry no id, BerriAI/litellm#20711); a fragment with a new id *and* a name
    at an index already in use starts a new call (servers that number every call 0).
    A call's id and name are emitted once, with its first fragment that has them.
    A `refusal` is streamed as text, and turns a "stop" finish into "content_filter".

    Usage (openai-python `types/completion_usage.py`): `prompt_tokens` (every input token,
    cached ones included) and `completion_tokens` (reasoning included), with
    `prompt_tokens_details.cached_tokens` as the cache reads and
    `completion_tokens_details.reasoning_tokens` (or Perplexity's top-level
    `usage.reasoning_tokens`) as the reasoning tokens, each only when the payload has it.
    OpenAI reports no cache writes.

    Log probabilities (when the request asked for `logprobs`): a chunk's
    `choices[0].logprobs.content` becomes one `LogprobsEvent`, after the chunk's text, in
    OpenAI's shape (token, logprob, bytes, top_logprobs). `logprobs.refusal` is not read.

    Citations become `CitationEvent`s as they arrive, each once:
    - OpenAI and OpenRouter: `delta.annotations`, a list of `{"type": "url_citation",
      "url_citation": {"url", "title", "start_index", "end_index"}}`; the cited text is the
      reply text (choice 0's `content`, as streamed so far, chunk included) from
      `start_index` to `end_index`, or None when those do not fall inside it. The same
      annotation (url and span) repeated later is not emitted again.
    - Perplexity: chunk-level `search_results` (`{"title", "url", "snippet", ...}`; the
      snippet becomes the cited text) and `citations` (URLs), repeated on every chunk:
      each URL is emitted once, from the first entry that names it (`search_results`
      first within a chunk).
    """

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__(max_event_bytes)
        self._tool_pos: dict[int, int] = {}  # provider tool-call index -> position in the reply
        self._tool_ids: list[str | None] = []  # position -> id given
        self._tool_names: list[str | None] = []  # position -> name given
        self._refused = False
        # Choice 0's content, for annotations' cited text: kept in blocks, about a byte per
        # character (a list of pieces costs some 80 bytes a token for the whole reply).
        self._text = TextBuffer()
        self._cited: set[Any] = set()  # annotations (url, start, end) and Perplexity URLs seen
        # The repeated envelope: a plain text chunk is `head + text + tail`, or with OpenAI's
        # obfuscation `head + text + mid + padding + tail` (`_learn_envelope`).
        self._env_head: str | None = None
        self._env_mid = ""
        self._env_tail = ""
        self._env_size = 0
        self._env_learns = 0
        self._env_misses = 0
        #: False: no envelope is learned and every chunk is parsed (the reference the envelope
        #: path is tested and measured against).
        self.learn_envelopes = True

    def _on_event(self, event: str | None, data: str, out: list[StreamEvent]) -> None:
        learn = event is None
        head = self._env_head
        if head is not None and learn:
            tail = self._env_tail
            if len(data) >= self._env_size and data.startswith(head) and data.endswith(tail):
                mid = self._env_mid
                end = len(data) - len(tail)
                if not mid:
                    text = data[len(head) : end]
                    # A JSON string with no quote, escape or control character in it: the chunk
                    # parses as the learned one did, with this text in choice 0's content.
                    plain = '"' not in text and "\\" not in text and text.isprintable()
                else:  # the text ends at the first quote; the padding, ignored, must be as plain
                    quote = data.find('"', len(head), end)
                    text = data[len(head) : quote]
                    plain = quote >= 0 and data.startswith(mid, quote) and quote + len(mid) <= end
                    if plain:
                        padding = data[quote + len(mid) : end]
                        plain = (
                            "\\" not in text
                            and text.isprintable()
                            and '"' not in padding
                            and "\\" not in padding
                            and padding.isprintable()
                        )
                if plain:
                    if text:
                        fragments = self._text.fragments
                        fragments.append(text)
                        if len(fragments) >= TEXT_BLOCK:
                            self._text.compact()
                        out.append(TextEvent(text))
                    self._env_misses = 0
                    return
                learn = False  # the same envelope, around text that needs parsing
        if event == "error" and not data.startswith(self.terminator):
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise WireError(data[:1000] or "error event", kind="upstream", retryable=True) from None
            raise self._stream_error(obj)
        if data[:1] == "[" and data.startswith(self.terminator):  # as openai-python's Stream does
            # (Tested before parsing: orjson's JSONDecodeError costs ~2 µs to build.)
            self._done = True
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = self._json(data)  # raises the WireError
        if type(obj) is not dict:
            raise WireError(f"stream event is not a JSON object: {data[:200]!r}", kind="protocol")
        if obj.get("error"):  # openai-python raises APIError on a truthy "error" in any chunk
            raise self._stream_error(obj)
        if self.model is None:
            model = obj.get("model")
            if model and isinstance(model, str):
                self.model = model
        choices = obj.get("choices")
        if (
            type(choices) is list
            and len(choices) == 1
            and obj.get("usage") is None
            and "x_groq" not in obj
            and "citations" not in obj
            and "search_results" not in obj
        ):
            # The hot path: one choice with a plain content delta and nothing else.
            choice = choices[0]
            if type(choice) is dict and not choice.get("index") and choice.get("logprobs") is None:
                delta = choice.get("delta")
                finish = choice.get("finish_reason")
                if finish is None and type(delta) is dict:
                    content = delta.get("content")
                    if type(content) is str and delta.keys() <= _PLAIN_DELTA_KEYS and delta.get("refusal") is None:
                        if content:
                            fragments = self._text.fragments
                            fragments.append(content)
                            if len(fragments) >= TEXT_BLOCK:
                                self._text.compact()
                            out.append(TextEvent(content))
                            if learn:
                                self._envelope_seen(data, obj, content)
                        return
                elif type(finish) is str and finish and type(delta) is dict and not delta:
                    # The finish chunk: an empty delta and a finish reason, nothing else.
                    self._set_finish(finish)
                    return
        elif type(choices) is list and not choices and "citations" not in obj and "search_results" not in obj:
            usage = obj.get("usage")
            if type(usage) is dict:  # the usage chunk (`stream_options.include_usage`)
                if usage:
                    self._usage = self._usage_event(usage)
                return
        for choice in json_field(obj, "choices", list, "chunk") or ():
            if type(choice) is not dict:
                raise WireError(f"chunk choice is not a JSON object: {data[:200]!r}", kind="protocol")
            if (json_field(choice, "index", int, "choice") or 0) != 0:
                continue
            delta = json_field(choice, "delta", dict, "choice")
            if delta:
                self._delta(delta, out)
            logprobs = json_field(choice, "logprobs", dict, "choice")
            if logprobs:
                self._logprobs(logprobs, out)
            finish = json_field(choice, "finish_reason", str, "choice")
            if finish:
                self._set_finish(finish)
        usage = json_field(obj, "usage", dict, "chunk")
        if usage is None:  # Groq once sent usage only under x_groq
            x_groq = obj.get("x_groq")
            usage = json_field(x_groq, "usage", dict, "x_groq") if type(x_groq) is dict else None
        if usage:
            self._usage = self._usage_event(usage)
        if "search_results" in obj or "citations" in obj:
            self._perplexity_sources(obj, out)

    def _set_finish(self, finish: str) -> None:
        self._finish = FINISH_MAP.get(finish)
        if self._finish is None:
            self._finish = "stop"
            self.unknown_events.add(f"finish_reason:{finish}")

    def _envelope_seen(self, data: str, obj: dict[str, Any], content: str) -> None:
        """A plain text chunk outside the learned envelope (or with none learned yet)."""
        if self._env_head is not None:
            self._env_misses += 1
            if self._env_misses < _ENVELOPE_MISSES:
                return
            self._env_head = None  # a field that changes from chunk to chunk: learn anew, or stop
        if self.learn_envelopes and self._env_learns < _ENVELOPE_LEARNS:
            self._env_learns += 1
            self._env_misses = 0
            self._learn_envelope(data, obj, content)

    def _learn_envelope(self, data: str, obj: dict[str, Any], content: str) -> None:
        """Learn the envelope of a plain text chunk, `data` (`obj` parsed, `content` its text).

        A stream's text chunks usually differ in their text alone: id, model, fingerprint and
        the choice's other fields repeat. Such a chunk is `head + text + tail`, with the
        text's JSON string between the `"` that ends `head` and the one that starts `tail`.
        A later chunk that is `head + t + tail`, where `t` has no quote, backslash or control
        character (nothing that could end the string or escape within it), parses to the
        same object with `t` as choice 0's content: it is handed out as the hot path would,
        without parsing it (skipping orjson and the shape checks, over half of a token's
        cost). Learned only when the chunk names "content" once and its text is written
        plainly, and proven on the spot: `head + text + "x" + tail` must parse to `obj` with
        only choice 0's content changed, to that text plus "x". OpenAI's `obfuscation` (a
        top-level string of random length on every chunk, read by nobody) is a second slot
        in `tail`, proven by the same probe. Any other field that changes every chunk defeats it:
        after `_ENVELOPE_MISSES` chunks in a row with another envelope it is learned anew,
        at most `_ENVELOPE_LEARNS` times a stream.
        """
        at = data.find(_CONTENT_KEY)
        if at < 0 or data.count('"content"') != 1:
            return
        start = at + len(_CONTENT_KEY)
        end = start + len(content)
        if data[start:end] != content or data[end : end + 1] != '"':
            return  # the text was written with escapes
        head, tail = data[:start], data[end:]
        mid = padding = ""
        at = tail.find(_OBFUSCATION_KEY)
        if at >= 0 and data.count('"obfuscation"') == 1 and type(obj.get("obfuscation")) is str:
            # OpenAI's padding, a top-level string that changes every chunk and that nothing
            # reads: a second slot, proven with the first.
            mid, rest = tail[: at + len(_OBFUSCATION_KEY)], tail[at + len(_OBFUSCATION_KEY) :]
            closing = rest.find('"')
            if closing < 0:
                return
            padding, tail = rest[:closing], rest[closing:]
        try:
            probe = orjson.loads(head + content + "x" + mid + (padding + "y" if mid else "") + tail)
            delta = probe["choices"][0]["delta"]
        except (orjson.JSONDecodeError, LookupError, TypeError):
            return
        if type(delta) is not dict or delta.get("content") != content + "x":
            return
        delta["content"] = content
        if mid:
            if probe.get("obfuscation") != padding + "y":
                return
            probe["obfuscation"] = padding
        if probe != obj:
            return
        self._env_head, self._env_mid, self._env_tail = head, mid, tail
        self._env_size = len(head) + len(mid) + len(tail)

    @staticmethod
    def _usage_event(usage: dict[str, Any]) -> UsageEvent:
        prompt_details = json_field(usage, "prompt_tokens_details", dict, "usage")
        completion_details = json_field(usage, "completion_tokens_details", dict, "usage")
        cached = json_field(prompt_details, "cached_tokens", int, "prompt_tokens_details") if prompt_details else None
        reasoning = (
            json_field(completion_details, "reasoning_tokens", int, "completion_tokens_details")
            if completion_details
            else None
        )
        if reasoning is None:  # Perplexity reports its reasoning tokens in usage itself
            reasoning = json_field(usage, "reasoning_tokens", int, "usage")
        return UsageEvent(
            json_field(usage, "prompt_tokens", int, "usage"),
            json_field(usage, "completion_tokens", int, "usage"),
            cache_read_tokens=cached,
            reasoning_tokens=reasoning,
        )

    @staticmethod
    def _logprobs(logprobs: dict[str, Any], out: list[StreamEvent]) -> None:
        # `logprobs.refusal` (the refusal's tokens) is not read: a refusal streams as text.
        tokens = []
        for item in json_field(logprobs, "content", list, "logprobs") or ():
            if type(item) is not dict:
                raise WireError("logprobs.content item is not a JSON object", kind="protocol")
            tops = []
            for top in json_field(item, "top_logprobs", list, "logprobs.content") or ():
                if type(top) is not dict:
                    raise WireError("top_logprobs item is not a JSON object", kind="protocol")
                tops.append(TopLogprob(*_token_fields(top, "top_logprobs")))
            tokens.append(TokenLogprob(*_token_fields(item, "logprobs.content"), tuple(tops)))
        if tokens:
            out.append(LogprobsEvent(tuple(tokens)))

    def _annotations(self, annotations: list[Any], out: list[StreamEvent]) -> None:
        text: str | None = None
        for ann in annotations:
            if type(ann) is not dict:
                raise WireError("delta.annotations item is not a JSON object", kind="protocol")
            atype = json_field(ann, "type", str, "annotation")
            if atype != "url_citation":
                self.unknown_events.add(f"annotation:{atype}")
                continue
            cite = json_field(ann, "url_citation", dict, "annotation") or {}
            url = json_field(cite, "url", str, "url_citation")
            start = json_field(cite, "start_index", int, "url_citation")
            end = json_field(cite, "end_index", int, "url_citation")
            key = (url, start, end)
            if key in self._cited:
                continue
            self._cited.add(key)
            cited: str | None = None
            if start is not None and end is not None:
                if text is None:
                    text = self._text.join()
                if 0 <= start < end <= len(text):
                    cited = text[start:end]
            out.append(CitationEvent(Citation(url, json_field(cite, "title", str, "url_citation"), cited)))

    def _perplexity_sources(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        for result in json_field(obj, "search_results", list, "chunk") or ():
            if type(result) is not dict:
                raise WireError("search_results item is not a JSON object", kind="protocol")
            url = json_field(result, "url", str, "search_result")
            if url is None or url in self._cited:
                continue
            self._cited.add(url)
            title = json_field(result, "title", str, "search_result")
            snippet = json_field(result, "snippet", str, "search_result") or None
            out.append(CitationEvent(Citation(url, title, snippet)))
        for url in json_field(obj, "citations", list, "chunk") or ():
            if type(url) is not str:
                raise WireError(f"citations item is {type(url).__name__}, expected str", kind="protocol")
            if url not in self._cited:
                self._cited.add(url)
                out.append(CitationEvent(Citation(url)))

    def _delta(self, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        # DeepSeek and xAI send reasoning_content; OpenRouter sends reasoning (and reasoning_details).
        reasoning = json_field(delta, "reasoning_content", str, "delta") or json_field(delta, "reasoning", str, "delta")
        if reasoning:
            out.append(ReasoningEvent(reasoning))
        content = delta.get("content")
        if type(content) is str:
            if content:
                self._text.append(content)
                out.append(TextEvent(content))
        elif type(content) is list:
            self._content_parts(content, out)
        elif content is not None:
            raise WireError(f"delta.content is {type(content).__name__}, expected str", kind="protocol")
        refusal = json_field(delta, "refusal", str, "delta")
        if refusal:
            self._refused = True
            out.append(TextEvent(refusal))
        tool_calls = json_field(delta, "tool_calls", list, "delta")
        if tool_calls:
            for n, tc in enumerate(tool_calls):
                if type(tc) is not dict:
                    raise WireError("delta.tool_calls item is not a JSON object", kind="protocol")
                self._tool_fragment(n, tc, out)
        if delta.get("function_call") is not None:
            self.unknown_events.add("delta.function_call")
        annotations = json_field(delta, "annotations", list, "delta")
        if annotations:
            self._annotations(annotations, out)

    def _content_parts(self, parts: list[Any], out: list[StreamEvent]) -> None:
        # Mistral's reasoning models stream content as typed parts.
        for part in parts:
            ptype = part.get("type") if type(part) is dict else None
            if ptype == "text":
                text = json_field(part, "text", str, "content part")
                if text:
                    self._text.append(text)
                    out.append(TextEvent(text))
            elif ptype == "thinking":
                for sub in json_field(part, "thinking", list, "content part") or ():
                    text = json_field(sub, "text", str, "thinking part") if type(sub) is dict else None
                    if text:
                        out.append(ReasoningEvent(text))
            else:
                self.unknown_events.add(f"content_part:{ptype}")

    def _tool_fragment(self, n: int, tc: dict[str, Any], out: list[StreamEvent]) -> None:
        raw_index = json_field(tc, "index", int, "tool_call")
        if raw_index is None:
            raw_index = n
        tc_id = json_field(tc, "id", str, "tool_call") or None
        fn = json_field(tc, "function", dict, "tool_call") or {}
        name = json_field(fn, "name", str, "function") or None
        raw_args = fn.get("arguments")
        if raw_args is None or type(raw_args) is str:
            args = raw_args or ""
        elif type(raw_args) is dict:  # a few servers send the arguments already parsed
            args = orjson.dumps(raw_args).decode()
        else:
            raise WireError(f"function.arguments is {type(raw_args).__name__}, expected str", kind="protocol")
        pos = self._tool_pos.get(raw_index)
        if pos is None or (tc_id is not None and name is not None and self._tool_ids[pos] not in (None, tc_id)):
            pos = self._tool_pos[raw_index] = len(self._tool_ids)
            self._tool_ids.append(None)
            self._tool_names.append(None)
            self._tool_calls_seen = True
        if tc_id is not None and self._tool_ids[pos] is None:
            self._tool_ids[pos] = tc_id
        else:
            tc_id = None
        if name is not None and self._tool_names[pos] is None:
            self._tool_names[pos] = name
        else:
            name = None
        if tc_id is None and name is None and not args:
            return  # an empty fragment says nothing; it must not break the stream (litellm PR #40207)
        out.append(ToolCallEvent(pos, tc_id, name, args))

    def _final_reason(self) -> str:
        reason = super()._final_reason()
        if reason == "stop" and self._refused:
            return "content_filter"
        return reason

    @staticmethod
    def _stream_error(obj: Any) -> WireError:
        err = (obj.get("error") or obj) if isinstance(obj, dict) else obj
        if isinstance(err, dict):
            message = str(err.get("message") or err)
            code = err.get("code")
            etype = err.get("type") or (str(code) if code is not None else None)
            etype = str(etype) if etype is not None else None
        else:
            message, code, etype = str(err), None, None
        if isinstance(code, str) and code.isdigit():  # some servers send "429"
            code = int(code)
        status = code if type(code) is int and 100 <= code < 600 else None
        if status is not None:
            retryable = status in (408, 409, 429) or status >= 500
        else:
            retryable = etype not in NON_RETRYABLE_TYPES
        return WireError(message, kind="upstream", status=status, retryable=retryable, error_type=etype)


class AzureCodec(OpenAICodec):
    """Azure OpenAI: the deployment (our model id) goes in the URL (the body keeps `model`,
    as the openai SDK's AzureOpenAI client sends it)."""

    def __init__(
        self,
        endpoint: str,
        api_version: str,
        headers: dict[str, str],
        *,
        max_event_bytes: int,
        provider: str | None = None,
        drop_params: bool = False,
    ) -> None:
        super().__init__(
            endpoint,
            headers,
            max_tokens_field="max_completion_tokens",
            max_event_bytes=max_event_bytes,
            kind="azure",
            provider=provider,
            drop_params=drop_params,
        )
        self.endpoint = endpoint
        self.api_version = api_version

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        spec = super().build_request(request, model_id)
        url = f"{self.endpoint}/openai/deployments/{quote(model_id, safe='')}/chat/completions"
        return HttpRequestSpec(
            spec.method, f"{url}?api-version={self.api_version}", spec.headers, spec.body, dropped=spec.dropped
        )
