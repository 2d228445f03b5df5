"""Google Gemini `streamGenerateContent?alt=sse`, request and response side (sans-IO).

One format serves two providers: the Gemini API (`generativelanguage.googleapis.com`,
key in `x-goog-api-key`) and Vertex AI's Gemini models (a project/location URL and a
bearer token the actor adds). Only the URL differs, so `GeminiCodec` takes a function
from model id to URL; `gemini_api_url()` and `vertex_gemini_url()` build the two.

The request body is what the google-genai SDK (python-genai 3.x) puts on the wire for
the same call, key order included. That SDK serializes nested config objects with
pydantic field names, so `thinkingConfig` travels as `{"include_thoughts", "thinking_budget"}`
in snake_case; Google's JSON parser accepts either spelling (proto3 JSON parsers take a
field's lowerCamelCase name and its proto name alike). Media parts are spelled as the REST
reference spells them and the SDK sends them to the Gemini API (`models.py` `_Part_to_mldev`,
`_Blob_to_mldev`, `_FileData_to_mldev`): `{"inlineData": {"data", "mimeType"}}` and
`{"fileData": {"fileUri", "mimeType"}}`. (To Vertex AI the SDK sends the same objects
pydantic-dumped, `mime_type` and `file_uri`: the same fields; one body serves both.)

Each SSE event is a whole `GenerateContentResponse`. There is no `[DONE]`: a stream is
complete once a candidate has carried a `finishReason` (or the prompt was blocked),
and the connection then closes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import quote, urlsplit

import attrs
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
from .base import (
    HttpRequestSpec,
    SSEJsonDecoder,
    error_message_from_body,
    inline_file_data,
    json_body,
    json_field,
    refuse_or_drop,
    refuse_part,
    tool_arguments_object,
)
from .media import is_data_url, parse_data_url
from .sse import DEFAULT_MAX_EVENT_BYTES

__all__ = [
    "AUDIO_TYPES",
    "EFFORT_BUDGET",
    "FINISH_MAP",
    "IMAGE_TYPES",
    "GeminiCodec",
    "GeminiStreamDecoder",
    "gemini_api_url",
    "gemini_body",
    "gemini_contents",
    "gemini_unsupported",
    "url_image_type",
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


#: The image types Gemini takes (ai.google.dev/gemini-api/docs/image-understanding and Vertex
#: AI's image-understanding page list the same five; no GIF). "image/jpg", a common
#: misspelling, is sent as jpeg.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})

#: A URL path's extension -> the image type it names: the types Gemini takes, and GIF, which a
#: fetch would not make acceptable (such a URL is refused by its type, not fetched).
_URL_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "gif": "image/gif",
}

#: OpenAI's `input_audio.format` -> the audio type Gemini lists for it
#: (ai.google.dev/gemini-api/docs/audio: WAV audio/wav, MP3 audio/mp3, AIFF, AAC, OGG Vorbis, FLAC).
AUDIO_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mp3",
    "aiff": "audio/aiff",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
}

#: Model ids of the Gemini generations before 3, which reject `functionResponse.parts`
#: (multimodal function responses are a Gemini 3 feature).
_BEFORE_GEMINI_3 = re.compile(r"gemini-[12](?:[.-]|$)")


def url_image_type(url: str) -> str | None:
    """The image type the extension of `url`'s path names (png, jpg/jpeg, webp, heic, heif,
    gif; the query and fragment aside), or None when the path names none."""
    try:
        name = urlsplit(url).path.rpartition("/")[2]
    except ValueError:  # a malformed URL (an unclosed IPv6 bracket, say)
        return None
    stem, dot, ext = name.rpartition(".")
    return _URL_IMAGE_TYPES.get(ext.lower()) if dot and stem else None


def _shown_url(url: str) -> str:
    """A URL for an error message: without its query (a presigned URL's signature) and short."""
    return url.partition("?")[0][:200]


def _function_response(content: str | None) -> dict[str, Any]:
    try:
        value = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"result": content or ""}


def _append_response(contents: list[dict[str, Any]], part: dict[str, Any]) -> None:
    """A `functionResponse` part: consecutive ones share one user turn."""
    last = contents[-1] if contents else None
    if last is not None and last["role"] == "user" and "functionResponse" in last["parts"][-1]:
        last["parts"].append(part)
    else:
        contents.append({"parts": [part], "role": "user"})


def _model_turn(m: Message, parts: list[dict[str, Any]], names: dict[str, str], contents: list[dict[str, Any]]) -> None:
    """An assistant turn as role "model": its text `parts`, then one `functionCall` per tool call."""
    for tc in m.tool_calls:
        names[tc.id] = tc.name
        call: dict[str, Any] = {"functionCall": {"args": tool_arguments_object(tc.arguments), "name": tc.name}}
        if tc.signature:  # Gemini 3 wants the call's thought signature back with it
            call["thoughtSignature"] = tc.signature
        parts.append(call)
    if parts:
        contents.append({"parts": parts, "role": "model"})


def _tool_name(m: Message, names: dict[str, str]) -> str:
    name = names.get(m.tool_call_id or "") or m.name
    if not name:
        raise UsageError(f"tool message answers unknown tool_call_id {m.tool_call_id!r}")
    return name


@attrs.frozen(slots=True)
class _PartsMapper:
    """Content parts as Gemini parts, for one provider and model (see `gemini_contents`)."""

    provider: str
    model_id: str
    gs_uris: bool

    def texts(self, parts: tuple[ContentPart, ...], where: str, role: str) -> list[dict[str, Any]]:
        """The text parts of a system or assistant message (empty ones left out: Gemini rejects
        empty text); any other part is a `UsageError`."""
        out: list[dict[str, Any]] = []
        for k, p in enumerate(parts):
            if type(p) is not TextPart:
                raise UsageError(
                    f"{where}[{k}]: {role} takes only text on {self.provider}; move the {p.type} part to a user message"
                )
            if p.text:
                out.append({"text": p.text})
        return out

    def user(self, parts: tuple[ContentPart, ...], where: str) -> list[dict[str, Any]]:
        """A user message's parts: text, `inlineData` (an image, document or audio given as
        data) and `fileData` (an image URL)."""
        out: list[dict[str, Any]] = []
        k = -1
        for p in parts:
            k += 1
            if type(p) is TextPart:
                if p.text:
                    out.append({"text": p.text})
            elif type(p) is ImagePart and not is_data_url(p.url):
                mime = self._url_type(p.url, f"{where}[{k}]")
                out.append({"fileData": {"fileUri": p.url, "mimeType": mime}})
            else:
                mime, data = self._blob(p, f"{where}[{k}]")
                out.append({"inlineData": {"data": data, "mimeType": mime}})
        return out

    def tool_result(self, parts: tuple[ContentPart, ...], where: str) -> tuple[str, list[dict[str, Any]]]:
        """(text, media) of a tool result: the text goes in `functionResponse.response` (as a
        string result does), images and documents given as data in `functionResponse.parts`
        (Gemini 3's multimodal function responses, `FunctionResponseBlob` in the SDK's key
        order: mimeType, data). Audio, an image URL, or media for a model before Gemini 3 is a
        `UsageError`."""
        text: list[str] = []
        media: list[dict[str, Any]] = []
        for k, p in enumerate(parts):
            at = f"{where}[{k}]"
            if type(p) is TextPart:
                text.append(p.text)
                continue
            if type(p) is AudioPart:
                raise refuse_part("audio in a tool result", at, self.provider)
            if _BEFORE_GEMINI_3.match(_bare_model(self.model_id)):
                raise UsageError(
                    f"{at}: {self.provider} takes images and documents in a tool result from Gemini 3 on, "
                    f"not on {self.model_id}; move the {p.type} part to a user message"
                )
            if type(p) is ImagePart and not is_data_url(p.url):
                raise UsageError(
                    f"{at}: a tool result takes no image URL on {self.provider}; "
                    "send the image as a data URL (data:image/png;base64,...)"
                )
            mime, data = self._blob(p, at)
            media.append({"inlineData": {"mimeType": mime, "data": data}})
        return "".join(text), media

    def _blob(self, p: ContentPart, where: str) -> tuple[str, str]:
        """(media type, base64 data) of an image data URL, a document or audio."""
        if type(p) is ImagePart:
            data = parse_data_url(p.url, f"{where}.image_url.url")
            mime = "image/jpeg" if data.mime == "image/jpg" else data.mime
            if mime not in IMAGE_TYPES:
                raise UsageError(
                    f"{where}: image type {data.mime!r} is not supported by {self.provider}; "
                    "send image/png, image/jpeg, image/webp, image/heic or image/heif"
                )
            return mime, data.base64
        if type(p) is FilePart:
            data = parse_data_url(inline_file_data(p, where, self.provider), f"{where}.file.file_data")
            if data.mime != "application/pdf" and not data.mime.startswith("text/"):
                raise UsageError(
                    f"{where}: document type {data.mime!r} is not supported by {self.provider}; "
                    "send application/pdf or a text type (text/plain, ...)"
                )
            return data.mime, data.base64
        audio = cast("AudioPart", p)
        audio_type = AUDIO_TYPES.get(audio.format.lower())
        if audio_type is None:
            raise UsageError(
                f"{where}: audio format {audio.format!r} is not supported by {self.provider}; "
                "send wav, mp3, aiff, aac, ogg or flac"
            )
        return audio_type, audio.data

    def _url_type(self, url: str, where: str) -> str:
        """The image type of an image URL `fileData` takes, told from its path."""
        scheme = url.partition(":")[0].lower()
        if scheme == "gs" and not self.gs_uris:
            raise UsageError(
                f"{where}: {self.provider} takes no gs:// URI ({_shown_url(url)!r}) in a request; "
                "register the object with the Files API and send its URI, or send the image as a data URL"
            )
        if scheme not in ("https", "http", "gs"):
            raise UsageError(f"{where}: image URL {_shown_url(url)!r} is neither https nor a data URL")
        mime = url_image_type(url)
        if mime is None:
            # The provider actor fetches such an image first (`GeminiCodec.must_fetch`); one left
            # here was not fetched, and Gemini needs the type of what it is given.
            raise UsageError(
                f"{where}: {self.provider} needs the image's type, which {_shown_url(url)!r} does not show "
                "(its path has no png, jpg, jpeg, webp, heic or heif extension), and it was not fetched; "
                "send the image as a data URL (data:image/png;base64,...)"
            )
        if mime not in IMAGE_TYPES:
            raise UsageError(
                f"{where}: image type {mime!r} is not supported by {self.provider}; "
                "send image/png, image/jpeg, image/webp, image/heic or image/heif"
            )
        return mime


def gemini_contents(
    messages: tuple[Message, ...], provider: str = "Gemini", model_id: str = "", gs_uris: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system instruction parts, contents) in the generateContent shape.

    System and developer messages become `systemInstruction` parts, in order. Assistant
    turns are role "model": their text, then one `functionCall` part per tool call.
    Tool results become `functionResponse` parts; consecutive ones share one user turn.
    Gemini needs the function's name there, found from the assistant message whose
    tool call has the answered `tool_call_id`. Empty text is not sent (Gemini rejects it).

    Content parts: text is a `text` part. In a user message, an image given as a data URL
    (png, jpeg, webp, heic, heif), a document (`file_data`: PDF or text) and audio (wav, mp3,
    aiff, aac, ogg, flac, as `audio/<format>`) are `inlineData`; an image URL is `fileData`
    with the type its path's extension names (an https URL; a gs:// URI with `gs_uris`, Vertex
    AI). A URL whose type its path does not show is fetched by the provider actor first
    (`GeminiCodec.must_fetch`): one left unfetched is a `UsageError`. System, developer and
    assistant messages take text parts only. A tool result's text is its response, its images
    and documents (as data) `functionResponse.parts`, for Gemini 3 models on. `cache_control`
    is not sent: Gemini caches through its cachedContents API, not per-part markers. Any part
    Gemini cannot take is a `UsageError` naming it (`messages[i].content[k]`) and `provider`.
    """
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    mapper: _PartsMapper | None = None
    for m in messages:
        content = m.content
        if type(content) is not str and content is not None:
            # The message's index (for errors) is found only here: no counter on the string path.
            given = cast("tuple[ContentPart, ...]", content)
            i = next(k for k, x in enumerate(messages) if x is m)
            where = f"messages[{i}].content"
            if mapper is None:
                mapper = _PartsMapper(provider, model_id, gs_uris)
            if m.role in ("system", "developer"):
                system.extend(mapper.texts(given, where, "a system instruction"))
            elif m.role == "tool":
                text, media = mapper.tool_result(given, where)
                response = {"name": _tool_name(m, names), "response": _function_response(text)}
                _append_response(contents, {"functionResponse": {"parts": media, **response} if media else response})
            elif m.role == "assistant":
                _model_turn(m, mapper.texts(given, where, "an assistant message"), names, contents)
            else:
                parts = mapper.user(given, where)
                if parts:
                    contents.append({"parts": parts, "role": "user"})
        elif m.role in ("system", "developer"):
            if content:
                system.append({"text": content})
        elif m.role == "tool":
            part = {"functionResponse": {"name": _tool_name(m, names), "response": _function_response(content)}}
            _append_response(contents, part)
        elif m.role == "assistant":
            if m.tool_calls:
                _model_turn(m, [{"text": content}] if content else [], names, contents)
            elif content:
                contents.append({"parts": [{"text": content}], "role": "model"})
        elif content:
            contents.append({"parts": [{"text": content}], "role": "user"})
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


def gemini_body(
    request: ChatRequest, provider: str = "Gemini", *, model_id: str = "", gs_uris: bool = False
) -> dict[str, Any]:
    """The generateContent body, in the key order the google-genai SDK sends.

    The model id is not part of the body: it travels in the URL. The common parameters go
    into `generationConfig` under Gemini's names: `top_k` is `topK`, `seed`, `presence_penalty`
    and `frequency_penalty` are `seed`, `presencePenalty`, `frequencyPenalty`; `logprobs` is
    `responseLogprobs` and `top_logprobs` is `logprobs` (the number of top candidates).
    `response_format` is JSON mode (`responseMimeType: "application/json"`), with a
    "json_schema" format's schema as `responseJsonSchema`. Parameters Gemini cannot honour
    (`gemini_unsupported`) are not sent by this function: `GeminiCodec` refuses or drops them.

    Messages map as `gemini_contents` says (`provider` names the provider in its errors,
    `model_id` decides whether tool results may carry media, `gs_uris` whether gs:// image URIs
    go as they are). Tools go without their `cache_control` (Gemini has no cache markers).
    """
    system, contents = gemini_contents(request.messages, provider, model_id, gs_uris)
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
    out and named in the spec's `dropped`. `gs_uris` (Vertex AI) sends gs:// image URIs as
    they are; the Gemini API takes a Cloud Storage object only once registered with its
    Files API, so there a gs:// URI is a `UsageError`.
    """

    def __init__(
        self,
        url: Callable[[str], str] | str,
        headers: Mapping[str, str],
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        drop_params: bool = False,
        provider: str = "Gemini",
        gs_uris: bool = False,
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
        self.gs_uris = gs_uris

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        """The exact HTTP request for `request` sent to `model_id`.

        Raises `UsageError` for a parameter Gemini cannot honour, unless `drop_params`, and for a
        content part it cannot take (see `gemini_contents`).
        """
        dropped: list[str] = []
        for param in gemini_unsupported(request, model_id):
            refuse_or_drop(param, self.provider, drop=self.drop_params, dropped=dropped)
        if dropped:
            cleared: dict[str, Any] = dict.fromkeys(dropped)
            request = attrs.evolve(request, **cleared)
        body = json_body(gemini_body(request, self.provider, model_id=model_id, gs_uris=self.gs_uris))
        return HttpRequestSpec("POST", self.url_for_model(model_id), self.headers, body, dropped=tuple(dropped))

    def new_decoder(self, model_id: str = "") -> GeminiStreamDecoder:
        """A fresh decoder for one streaming response."""
        return GeminiStreamDecoder(self.max_event_bytes)

    def must_fetch(self, url: str, model_id: str) -> bool:
        """True for an http(s) image URL whose type its path does not show: Gemini takes an
        image URL as `fileData` only with its media type, so the library fetches that image
        (as LiteLLM does) and sends its bytes. Never for a gs:// URI, which only Google reads."""
        return url.partition(":")[0].lower() in ("https", "http") and url_image_type(url) is None

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

    Log probabilities (when the request asked, `generationConfig.responseLogprobs`): a chunk's
    `candidates[0].logprobsResult` becomes one `LogprobsEvent`, after the chunk's text, in
    OpenAI's shape: each of `chosenCandidates` is a token (`token`, `logProbability`; its
    bytes are the token's UTF-8 bytes, as OpenAI gives them), with the same step of
    `topCandidates` as its `top_logprobs`. A field left out is its proto3 default (an empty
    token, a log probability of 0); a field of the wrong type is a protocol error.

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
            logprobs = json_field(cand, "logprobsResult", dict, "candidate")
            if logprobs:
                _logprobs(logprobs, out)
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
        self.held_into(out)
        super()._end_reply(out)

    def held_into(self, out: list[StreamEvent]) -> None:
        """The sources collected so far, as citations (once): at the end of the reply, or
        into the partial reply of one that failed."""
        out.extend(CitationEvent(Citation(*entry)) for entry in self._sources.values())
        self._sources.clear()

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


def _logprob_candidate(obj: Any, where: str) -> tuple[str, float, tuple[int, ...]]:
    """(token, log probability, UTF-8 bytes) of a `LogprobsResult.Candidate`
    (`{"token", "logProbability", "tokenId"}`); an absent field is its proto3 default."""
    if type(obj) is not dict:
        raise WireError(f"{where} item is {type(obj).__name__}, expected a JSON object", kind="protocol")
    token = json_field(obj, "token", str, where) or ""
    logprob: Any = obj.get("logProbability")
    if logprob is None:
        logprob = 0.0
    elif type(logprob) is not float and type(logprob) is not int:
        raise WireError(f"{where}.logProbability is {type(logprob).__name__}, expected a number", kind="protocol")
    json_field(obj, "tokenId", int, where)
    return token, float(logprob), tuple(token.encode())


def _logprobs(result: dict[str, Any], out: list[StreamEvent]) -> None:
    """One chunk's `logprobsResult` as a `LogprobsEvent` (none when it chose no token)."""
    chosen = json_field(result, "chosenCandidates", list, "logprobsResult") or ()
    steps = json_field(result, "topCandidates", list, "logprobsResult") or ()
    tokens: list[TokenLogprob] = []
    for i, item in enumerate(chosen):
        tops: tuple[TopLogprob, ...] = ()
        if i < len(steps):
            step = steps[i]
            if type(step) is not dict:
                raise WireError(
                    f"logprobsResult.topCandidates item is {type(step).__name__}, expected a JSON object",
                    kind="protocol",
                )
            alternatives = json_field(step, "candidates", list, "topCandidates") or ()
            tops = tuple(TopLogprob(*_logprob_candidate(c, "topCandidates.candidates")) for c in alternatives)
        tokens.append(TokenLogprob(*_logprob_candidate(item, "logprobsResult.chosenCandidates"), tops))
    if tokens:
        out.append(LogprobsEvent(tuple(tokens)))


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
