"""Google Gemini `streamGenerateContent?alt=sse`, request and response side (sans-IO).

One format serves two providers: the Gemini API (`generativelanguage.googleapis.com`,
key in `x-goog-api-key`) and Vertex AI's Gemini models (a project/location URL and a
bearer token the actor adds). Only the URL differs, so `GeminiCodec` takes a function
from model id to URL; `gemini_api_url()` and `vertex_gemini_url()` build the two.

The request body is what the google-genai SDK (python-genai 3.x) puts on the wire for
the same call, key order included. That SDK serializes nested config objects with
pydantic field names, so `thinkingConfig` travels as `{"include_thoughts", "thinking_budget"}`
in snake_case; Google's JSON parser accepts either spelling.

Each SSE event is a whole `GenerateContentResponse`. There is no `[DONE]`: a stream is
complete once a candidate has carried a `finishReason` (or the prompt was blocked),
and the connection then closes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import attrs
import orjson

from ..content import content_text
from ..errors import UsageError, WireError
from ..models import (
    ChatRequest,
    Citation,
    CitationEvent,
    Message,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
    UsageEvent,
)
from .base import (
    HttpRequestSpec,
    SSEJsonDecoder,
    error_message_from_body,
    json_body,
    json_field,
    refuse_or_drop,
    tool_arguments_object,
)
from .sse import DEFAULT_MAX_EVENT_BYTES

__all__ = [
    "EFFORT_BUDGET",
    "FINISH_MAP",
    "GeminiCodec",
    "GeminiStreamDecoder",
    "gemini_api_url",
    "gemini_body",
    "gemini_contents",
    "gemini_unsupported",
    "vertex_gemini_url",
]

#: Thinking-token budget sent for each `Reasoning.effort`.
EFFORT_BUDGET = {"low": 1024, "medium": 8192, "high": 24576}

#: Gemini `finishReason` -> our finish reason. STOP becomes "tool_calls" when the reply
#: called a tool (Gemini has no reason of its own for that). Reasons missing here,
#: including ones Google adds later, map to "error": the reply did not end normally.
FINISH_MAP = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    # MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS,
    # MISSING_THOUGHT_SIGNATURE, OTHER, FINISH_REASON_UNSPECIFIED ...: "error".
}

_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def gemini_api_url(base_url: str, api_version: str = "v1beta") -> Callable[[str], str]:
    """URL builder for the Gemini API: `{base}/{version}/models/{model}:streamGenerateContent?alt=sse`.

    A model id already starting with `models/` or `tunedModels/` is used as it is, as the SDK does.
    """
    base = base_url.rstrip("/")

    def url(model_id: str) -> str:
        name = model_id if model_id.startswith(("models/", "tunedModels/")) else f"models/{model_id}"
        return f"{base}/{api_version}/{quote(name, safe='/')}:streamGenerateContent?alt=sse"

    return url


def vertex_gemini_url(base_url: str, project: str, location: str, api_version: str = "v1") -> Callable[[str], str]:
    """URL builder for Gemini on Vertex AI (publisher `google`); auth is the caller's."""
    prefix = f"{base_url.rstrip('/')}/{api_version}/projects/{project}/locations/{location}/publishers/google/models"
    return lambda model_id: f"{prefix}/{quote(model_id, safe='')}:streamGenerateContent?alt=sse"


def _function_response(content: str | None) -> dict[str, Any]:
    try:
        value = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"result": content or ""}


def gemini_contents(messages: tuple[Message, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system instruction parts, contents) in the generateContent shape.

    System and developer messages become `systemInstruction` parts, in order. Assistant
    turns are role "model": their text, then one `functionCall` part per tool call.
    Tool results become `functionResponse` parts; consecutive ones share one user turn.
    Gemini needs the function's name there, found from the assistant message whose
    tool call has the answered `tool_call_id`. Empty text is not sent (Gemini rejects it).
    """
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for m in messages:
        if m.role in ("system", "developer"):
            if m.content:
                system.append({"text": m.content})
        elif m.role == "tool":
            name = names.get(m.tool_call_id or "") or m.name
            if not name:
                raise UsageError(f"tool message answers unknown tool_call_id {m.tool_call_id!r}")
            part = {"functionResponse": {"name": name, "response": _function_response(content_text(m.content))}}
            last = contents[-1] if contents else None
            if last is not None and last["role"] == "user" and "functionResponse" in last["parts"][-1]:
                last["parts"].append(part)
            else:
                contents.append({"parts": [part], "role": "user"})
        elif m.role == "assistant":
            parts: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
            for tc in m.tool_calls:
                names[tc.id] = tc.name
                call: dict[str, Any] = {"functionCall": {"args": tool_arguments_object(tc.arguments), "name": tc.name}}
                if tc.signature:  # Gemini 3 wants the call's thought signature back with it
                    call["thoughtSignature"] = tc.signature
                parts.append(call)
            if parts:
                contents.append({"parts": parts, "role": "model"})
        elif m.content:
            contents.append({"parts": [{"text": m.content}], "role": "user"})
    return system, contents


def _tool_config(choice: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(choice, str):
        mode = _MODES.get(choice)
        return {"functionCallingConfig": {"mode": mode}} if mode else None
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if isinstance(fn, Mapping) and fn.get("name"):
            return {"functionCallingConfig": {"allowedFunctionNames": [fn["name"]], "mode": "ANY"}}
    return None


def _bare_model(model_id: str) -> str:
    return model_id.rsplit("/", 1)[-1]


def gemini_unsupported(request: ChatRequest, model_id: str) -> list[str]:
    """The parameters of `request` that Gemini cannot honour for `model_id`, by OpenAI name.

    `user`, `parallel_tool_calls` (Gemini has no switch: the model decides whether to call
    functions in parallel), `service_tier` and `metadata` (the Gemini API takes no request
    metadata) have no Gemini equivalent at all. Gemini 3 models reject `presencePenalty`
    and `frequencyPenalty`, so the penalties are refused for model ids starting "gemini-3".
    """
    out = [
        name
        for name, value in (
            ("user", request.user),
            ("parallel_tool_calls", request.parallel_tool_calls),
            ("service_tier", request.service_tier),
            ("metadata", request.metadata),
        )
        if value is not None
    ]
    if _bare_model(model_id).startswith("gemini-3"):
        out += [
            name
            for name, value in (
                ("presence_penalty", request.presence_penalty),
                ("frequency_penalty", request.frequency_penalty),
            )
            if value is not None
        ]
    return out


def gemini_body(request: ChatRequest) -> dict[str, Any]:
    """The generateContent body, in the key order the google-genai SDK sends.

    The model id is not part of the body: it travels in the URL. The common parameters go
    into `generationConfig` under Gemini's names: `top_k` is `topK`, `seed`, `presence_penalty`
    and `frequency_penalty` are `seed`, `presencePenalty`, `frequencyPenalty`; `logprobs` is
    `responseLogprobs` and `top_logprobs` is `logprobs` (the number of top candidates).
    `response_format` is JSON mode (`responseMimeType: "application/json"`), with a
    "json_schema" format's schema as `responseJsonSchema`. Parameters Gemini cannot honour
    (`gemini_unsupported`) are not sent by this function: `GeminiCodec` refuses or drops them.
    """
    system, contents = gemini_contents(request.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system, "role": "user"}
    if request.tools:
        body["tools"] = [
            {
                "functionDeclarations": [
                    {
                        **({"description": t.description} if t.description is not None else {}),
                        "name": t.name,
                        "parameters": dict(t.parameters),
                    }
                    for t in request.tools
                ]
            }
        ]
    tool_config = _tool_config(request.tool_choice)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.top_k is not None:
        config["topK"] = request.top_k
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.logprobs is not None:
        config["responseLogprobs"] = request.logprobs
    if request.top_logprobs is not None:
        config["logprobs"] = request.top_logprobs
    if request.presence_penalty is not None:
        config["presencePenalty"] = request.presence_penalty
    if request.frequency_penalty is not None:
        config["frequencyPenalty"] = request.frequency_penalty
    if request.seed is not None:
        config["seed"] = request.seed
    fmt = request.response_format
    if fmt is not None:
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema is not None:
            # Full JSON Schema; `responseSchema` would take only Google's OpenAPI subset.
            config["responseJsonSchema"] = dict(fmt.schema)
    if request.reasoning is not None:
        budget = request.reasoning.budget_tokens
        if budget is None and request.reasoning.effort is not None:
            budget = EFFORT_BUDGET[request.reasoning.effort]
        if budget is not None:
            # A zero budget turns thinking off; there are then no thoughts to include.
            thinking = {"include_thoughts": True, "thinking_budget": budget} if budget else {"thinking_budget": 0}
            config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    return body


class GeminiCodec:
    """Builds `POST ...:streamGenerateContent?alt=sse` requests and decodes their streams.

    `url` maps a model id to the full request URL (see `gemini_api_url`,
    `vertex_gemini_url`); a string is a template whose `{model}` is replaced.
    A parameter Gemini cannot honour (`gemini_unsupported`) is a `UsageError` naming it and
    `provider`, unless `drop_params` (the provider's `drop_params = true`): then it is left
    out and named in the spec's `dropped`.
    """

    def __init__(
        self,
        url: Callable[[str], str] | str,
        headers: Mapping[str, str],
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        drop_params: bool = False,
        provider: str = "Gemini",
    ) -> None:
        if isinstance(url, str):
            template = url
            self.url_for_model: Callable[[str], str] = lambda model_id: template.replace("{model}", model_id)
        else:
            self.url_for_model = url
        self.headers = tuple(headers.items())
        self.max_event_bytes = max_event_bytes
        self.drop_params = drop_params
        self.provider = provider

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        """The exact HTTP request for `request` sent to `model_id`.

        Raises `UsageError` for a parameter Gemini cannot honour, unless `drop_params`.
        """
        dropped: list[str] = []
        for param in gemini_unsupported(request, model_id):
            refuse_or_drop(param, self.provider, drop=self.drop_params, dropped=dropped)
        if dropped:
            cleared: dict[str, Any] = dict.fromkeys(dropped)
            request = attrs.evolve(request, **cleared)
        body = json_body(gemini_body(request))
        return HttpRequestSpec("POST", self.url_for_model(model_id), self.headers, body, dropped=tuple(dropped))

    def new_decoder(self, model_id: str = "") -> GeminiStreamDecoder:
        """A fresh decoder for one streaming response."""
        return GeminiStreamDecoder(self.max_event_bytes)

    def must_fetch(self, url: str, model_id: str) -> bool:
        """The provider takes image URLs as they are."""
        return False

    def parse_error(self, status: int, body: bytes) -> tuple[str, str | None]:
        """(message, Google status string such as "RESOURCE_EXHAUSTED") from an error body."""
        return error_message_from_body(body)


class GeminiStreamDecoder(SSEJsonDecoder):
    """Decodes a `streamGenerateContent?alt=sse` stream into normalized events.

    Only candidate 0 is read. Function calls arrive whole, one part each, so each becomes
    a single `ToolCallEvent` with compact JSON arguments. Gemini rarely gives a call an
    id; the decoder then makes one from the response id and the call's position, so the
    same stream always yields the same ids. `finish_reason_raw` keeps Gemini's own reason.

    Usage (`usageMetadata`, repeated on chunks with running totals: the last one counts):
    `promptTokenCount` already includes the cached tokens, so it is `input_tokens` as it
    is; `cachedContentTokenCount` is `cache_read_tokens` (Gemini reports no cache writes);
    `thoughtsTokenCount` is `reasoning_tokens`, and `output_tokens` is
    `candidatesTokenCount + thoughtsTokenCount`, unless `totalTokenCount` shows the
    thoughts already inside `candidatesTokenCount` (some Vertex models count them there).

    Citations are the candidate's `groundingMetadata.groundingChunks` (`web`,
    `retrievedContext` or `maps` sources, each with `uri` and `title`). They come late,
    often in the last chunk with the finish reason, and Google may resend the metadata
    gathered so far on later chunks, so they are collected and emitted at the end of the
    reply, before the usage, one `CitationEvent` per distinct source in order of first
    appearance. Its `cited_text` is the `segment.text` of the first `groundingSupports`
    entry that points at the source (the reply text the source supports), else the
    retrieved passage of a `retrievedContext` source, else None.
    """

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__(max_event_bytes)
        self.response_id: str | None = None
        self.finish_reason_raw: str | None = None
        self._tool_count = 0
        #: (uri, title, retrieved text) -> [uri, title, cited text], in order of first appearance.
        self._sources: dict[tuple[str | None, str | None, str | None], list[str | None]] = {}

    def _on_event(self, event: str | None, data: str, out: list[StreamEvent]) -> None:
        obj = self._json(data)
        # Google sometimes wraps an error object in a one-element list.
        for item in obj if isinstance(obj, list) else (obj,):
            if not isinstance(item, dict):
                raise WireError(f"stream event is not a JSON object: {data[:200]!r}", kind="protocol")
            self._on_response(item, out)

    def _on_response(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        # Fields are read through `json_field`: a value of the wrong JSON type is a protocol
        # error, never an event whose text is a number or a model name that is a list.
        if "error" in obj:
            raise _stream_error(obj["error"])
        self.model = json_field(obj, "modelVersion", str, "chunk") or self.model
        self.response_id = json_field(obj, "responseId", str, "chunk") or self.response_id
        candidates = json_field(obj, "candidates", list, "chunk")
        for cand in candidates or ():
            if type(cand) is not dict:
                raise WireError(f"candidate is {type(cand).__name__}, expected a JSON object", kind="protocol")
            if (json_field(cand, "index", int, "candidate") or 0) != 0:
                continue
            content = json_field(cand, "content", dict, "candidate") or {}
            for part in json_field(content, "parts", list, "content") or ():
                if type(part) is not dict:
                    raise WireError(f"content part is {type(part).__name__}, expected a JSON object", kind="protocol")
                self._part(part, out)
            reason = json_field(cand, "finishReason", str, "candidate")
            if reason:
                self.finish_reason_raw = reason
                self._finish = FINISH_MAP.get(reason, "error")
            grounding = json_field(cand, "groundingMetadata", dict, "candidate")
            if grounding is not None:
                self._grounding(grounding)
        feedback = json_field(obj, "promptFeedback", dict, "chunk") or {}
        block = json_field(feedback, "blockReason", str, "promptFeedback")
        if block and not candidates:
            self.finish_reason_raw = block
            self._finish = "content_filter"
        usage = json_field(obj, "usageMetadata", dict, "chunk")
        if usage is not None:
            self._usage = _usage_event(usage)

    def _grounding(self, meta: dict[str, Any]) -> None:
        """Collect the sources of one `groundingMetadata`; its supports' indices are into its own list."""
        chunks = json_field(meta, "groundingChunks", list, "groundingMetadata") or []
        cited: dict[int, str] = {}
        for support in json_field(meta, "groundingSupports", list, "groundingMetadata") or ():
            if type(support) is not dict:
                raise WireError(
                    f"grounding support is {type(support).__name__}, expected a JSON object", kind="protocol"
                )
            segment = json_field(support, "segment", dict, "groundingSupport") or {}
            text = json_field(segment, "text", str, "segment")
            for index in json_field(support, "groundingChunkIndices", list, "groundingSupport") or ():
                if type(index) is not int:
                    raise WireError(f"grounding chunk index is {type(index).__name__}, expected int", kind="protocol")
                if text:
                    cited.setdefault(index, text)
        for i, chunk in enumerate(chunks):
            if type(chunk) is not dict:
                raise WireError(f"grounding chunk is {type(chunk).__name__}, expected a JSON object", kind="protocol")
            kind = next((k for k in _SOURCE_KINDS if k in chunk), None)
            if kind is None:
                self.unknown_events.add("groundingChunk:" + ",".join(sorted(chunk)))
                continue
            source = json_field(chunk, kind, dict, "groundingChunk") or {}
            uri = json_field(source, "uri", str, kind)
            title = json_field(source, "title", str, kind)
            passage = json_field(source, "text", str, kind) if kind == "retrievedContext" else None
            entry = self._sources.setdefault((uri, title, passage), [uri, title, None])
            if entry[2] is None:
                entry[2] = cited.get(i) or passage

    def _end_reply(self, out: list[StreamEvent]) -> None:
        out.extend(CitationEvent(Citation(*entry)) for entry in self._sources.values())
        super()._end_reply(out)

    def _part(self, part: dict[str, Any], out: list[StreamEvent]) -> None:
        if "text" in part:
            text = json_field(part, "text", str, "part")
            if text:
                out.append(ReasoningEvent(text) if part.get("thought") else TextEvent(text))
        elif "functionCall" in part:
            call = json_field(part, "functionCall", dict, "part") or {}
            pos = self._tool_count
            self._tool_count += 1
            self._tool_calls_seen = True
            call_id = json_field(call, "id", str, "functionCall") or (
                f"call_{self.response_id}_{pos}" if self.response_id else f"call_{pos}"
            )
            args = call.get("args")
            arguments = orjson.dumps(args if args is not None else {}).decode()
            signature = json_field(part, "thoughtSignature", str, "part")
            out.append(ToolCallEvent(pos, call_id, json_field(call, "name", str, "functionCall"), arguments, signature))
        elif "thoughtSignature" not in part:
            self.unknown_events.add("part:" + ",".join(sorted(part)))


#: The `groundingChunks` entry kinds read as cited sources, each with `uri` and `title`.
_SOURCE_KINDS = ("web", "retrievedContext", "maps")


def _usage_event(usage: dict[str, Any]) -> UsageEvent:
    """One `usageMetadata` as a `UsageEvent` (see `GeminiStreamDecoder`)."""
    prompt = json_field(usage, "promptTokenCount", int, "usageMetadata")
    candidates_n = json_field(usage, "candidatesTokenCount", int, "usageMetadata")
    thoughts = json_field(usage, "thoughtsTokenCount", int, "usageMetadata")
    total = json_field(usage, "totalTokenCount", int, "usageMetadata")
    tool_prompt = json_field(usage, "toolUsePromptTokenCount", int, "usageMetadata")
    if candidates_n is None and thoughts is None:
        output = None
    elif thoughts and candidates_n and total == (prompt or 0) + candidates_n + (tool_prompt or 0):
        output = candidates_n  # the total leaves no room for the thoughts: they are inside the candidates
    else:
        output = (candidates_n or 0) + (thoughts or 0)
    cached = json_field(usage, "cachedContentTokenCount", int, "usageMetadata")
    return UsageEvent(prompt, output, cache_read_tokens=cached, reasoning_tokens=thoughts)


def _stream_error(err: Any) -> WireError:
    if not isinstance(err, dict):
        return WireError(str(err), kind="upstream", retryable=True)
    code = err.get("code")
    status = code if isinstance(code, int) and 100 <= code < 600 else None
    retryable = status is None or status in (408, 429) or status >= 500
    return WireError(
        str(err.get("message") or err.get("status") or "error in stream"),
        kind="upstream",
        status=status,
        retryable=retryable,
        error_type=err["status"] if isinstance(err.get("status"), str) else None,
    )
