"""AWS Bedrock ConverseStream, request and response side (sans-IO).

The request is what boto3's `bedrock-runtime` client sends for `converse_stream(...)`:
the same URL (the model id percent-encoded by `botocore.utils.percent_encode`), the
same JSON body bytes (`json.dumps`, as botocore's rest-json serializer writes them)
and a SigV4 signature made by `botocore.auth.SigV4Auth`. The response is not SSE but
AWS's binary event stream (`application/vnd.amazon.eventstream`); each message is
checked and parsed by `botocore.eventstream.EventStreamBuffer`, one message at a time,
after our own prelude check has bounded its size.

Shapes and names follow botocore's service model
(`botocore/data/bedrock-runtime/2023-09-30/service-2.json`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import unicodedata
import zlib
from collections.abc import Mapping
from typing import Any, cast

import attrs
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError
from botocore.utils import percent_encode

from ..content import AudioPart, CacheControl, ContentPart, FilePart, ImagePart, TextPart
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
    DecoderBase,
    HttpRequestSpec,
    error_message_from_body,
    inline_file_data,
    json_field,
    refuse_given,
    refuse_or_drop,
    tool_arguments_object,
)
from .claude import claude_sampling
from .media import is_data_url, parse_data_url
from .sse import DEFAULT_MAX_EVENT_BYTES

__all__ = [
    "AUDIO_FORMATS",
    "DEFAULT_DOCUMENT_NAME",
    "DOCUMENT_FORMATS",
    "IMAGE_FORMATS",
    "SERVICE_TIERS",
    "UNSUPPORTED",
    "BedrockCodec",
    "BedrockStreamDecoder",
    "cache_point",
    "converse_body",
    "converse_messages",
    "default_endpoint",
    "document_name",
    "is_claude",
    "sign_request",
]

#: Request parameters Converse has no field for (ConverseStreamRequest and
#: InferenceConfiguration in the service model); `logprobs` only when true.
UNSUPPORTED = ("seed", "presence_penalty", "frequency_penalty", "user", "top_logprobs")
#: `service_tier` -> ConverseStream's `serviceTier.type` (ServiceTierType); "auto" (OpenAI's
#: "the default of the account") sends none, which is Bedrock's default tier.
SERVICE_TIERS: dict[str, str | None] = {
    "auto": None,
    "default": "default",
    "flex": "flex",
    "priority": "priority",
    "reserved": "reserved",
}
# RequestMetadata: at most 16 pairs; keys 1-256 and values 0-256 of these characters
# (the service model's patterns, where ",-." is the range ',' to '.').
_METADATA_MAX = 16
_METADATA_KEY = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{1,256}")
_METADATA_VALUE = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{0,256}")

STOP_MAP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}

# Exception type -> the httpStatusCode botocore's service model gives that error shape.
EXCEPTION_STATUS = {
    "validationException": 400,
    "serviceQuotaExceededException": 400,
    "conflictException": 400,
    "accessDeniedException": 403,
    "resourceNotFoundException": 404,
    "modelTimeoutException": 408,
    "modelErrorException": 424,
    "modelStreamErrorException": 424,
    "throttlingException": 429,
    "modelNotReadyException": 429,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
}
# The service model documents these as "Retry your request" (or they are 429/5xx).
RETRYABLE_EXCEPTIONS = frozenset(
    {
        "modelStreamErrorException",
        "modelTimeoutException",
        "modelNotReadyException",
        "throttlingException",
        "internalServerException",
        "serviceUnavailableException",
    }
)

_SIGNATURE_HEADERS = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})
_PRELUDE = 12  # total length, headers length, prelude CRC: three big-endian uint32
_OVERHEAD = _PRELUDE + 4  # plus the message CRC


def default_endpoint(region: str) -> str:
    """The public bedrock-runtime endpoint of `region`."""
    return f"https://bedrock-runtime.{region}.amazonaws.com"


# --- request ---------------------------------------------------------------------------


def converse_messages(
    messages: tuple[Message, ...], provider: str = "Bedrock"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages) in the Converse shape.

    System and developer messages become one `system` text block each. Tool results
    become `toolResult` blocks in a user turn, and consecutive turns of one role are
    merged, since Converse wants user and assistant turns to alternate. An assistant
    turn's signed reasoning blocks go first, as `reasoningContent` blocks.

    Content parts become ContentBlocks (botocore's service model): text as `text`; an
    image data URL as `image` (`IMAGE_FORMATS`, the bytes as base64, which is how the
    service's JSON carries a blob); a file's `file_data` as `document` (`DOCUMENT_FORMATS`,
    named by `document_name`, unique within the request); audio as `audio`
    (`AUDIO_FORMATS`). Converse takes images and documents in user turns only (and in tool
    results), audio in user turns only, and text only in system prompts
    (SystemContentBlock) and assistant turns. A part with `cache_control` is followed by a
    `cachePoint` (`cache_point`); in a tool result, whose content takes no cache point
    (ToolResultContentBlock), one cache point follows the `toolResult` block instead.

    Refused before sending, as a `UsageError` naming `messages[i].content[k]` and the fix:
    a part the role cannot take, an image URL left unfetched (Converse takes no URLs:
    the library fetches them first, `BedrockCodec.must_fetch`), an image, document or
    audio type Converse has no format for, an uploaded `file_id`, and a turn holding a
    document but no text, which Bedrock rejects (the service model's `Message.content`).
    """
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    parts: _Parts | None = None  # made for the first message given as parts

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        content = m.content
        if type(content) is not str and content is not None:
            content = cast("tuple[ContentPart, ...]", content)
            if not content:
                content = None
            else:
                if parts is None:
                    parts = _Parts(provider)
                # The message's index (for errors) is found only here: no counter on the string path.
                i = next(k for k, x in enumerate(messages) if x is m)
                where = f"messages[{i}].content"
                if m.role in ("system", "developer"):
                    parts.system(content, where, system)
                elif m.role == "tool":
                    blocks, cache = parts.tool_result(content, where)
                    result = {"toolResult": {"toolUseId": m.tool_call_id or "", "content": blocks}}
                    add("user", [result] if cache is None else [result, cache_point(cache)])
                elif m.role == "assistant":
                    blocks = _assistant(m, parts.assistant(content, where))
                    if blocks:
                        add("assistant", blocks)
                else:
                    blocks, document = parts.user(content, where)
                    add("user", blocks)
                    if document is not None:
                        parts.documents.append((len(out) - 1, document))
                continue
        # The common case, a string (or nothing).
        if m.role in ("system", "developer"):
            if content:
                system.append({"text": content})
        elif m.role == "tool":
            add("user", [{"toolResult": {"toolUseId": m.tool_call_id or "", "content": [{"text": content or ""}]}}])
        elif m.role == "assistant":
            if m.tool_calls or m.reasoning_blocks:
                blocks = _assistant(m, [{"text": content}] if content else [])
                if blocks:
                    add("assistant", blocks)
            elif content:
                add("assistant", [{"text": content}])
        else:
            add("user", [{"text": content or ""}])
    if parts is not None and parts.documents:
        parts.check_documents(out)
    return system, out


def _assistant(m: Message, content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An assistant turn's blocks: signed reasoning first, unchanged, then its content and
    tool calls. Unsigned reasoning is not sent."""
    blocks: list[dict[str, Any]] = []
    for r in m.reasoning_blocks:
        if r.redacted is not None:
            blocks.append({"reasoningContent": {"redactedContent": r.redacted}})
        elif r.signature is not None:
            blocks.append({"reasoningContent": {"reasoningText": {"text": r.text, "signature": r.signature}}})
    blocks.extend(content)
    for tc in m.tool_calls:
        blocks.append({"toolUse": {"toolUseId": tc.id, "name": tc.name, "input": tool_arguments_object(tc.arguments)}})
    return blocks


# --- content parts ---------------------------------------------------------------------

#: Image media types -> ImageFormat; "image/jpg", a common misspelling, is jpeg.
IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
#: Document media types -> DocumentFormat (the service model's nine formats).
DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
#: AudioFormat: the `format` values of an audio part Converse takes.
AUDIO_FORMATS = frozenset(
    {"mp3", "opus", "wav", "aac", "flac", "mp4", "ogg", "mkv", "mka", "x-aac", "m4a", "mpeg", "mpga", "pcm", "webm"}
)
#: The name of a document given without a usable filename.
DEFAULT_DOCUMENT_NAME = "document"
_DOCUMENT_NAME_MAX = 200  # DocumentBlockNameString
# Everything but what a document name may hold (ASCII letters and digits, hyphens,
# parentheses, square brackets); a run of it, whitespace included, becomes one space.
_NAME_DISALLOWED = re.compile(r"[^A-Za-z0-9()\[\]-]+")
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")


def cache_point(cache: CacheControl) -> dict[str, Any]:
    """The `cachePoint` block that follows a block marked with `cache`.

    The installed service model's CachePointBlock has a `ttl` member ("5m" | "1h"), so a
    marker's ttl is sent; a marker without one sends the type alone (Bedrock's default,
    five minutes). `cache_control` itself is never sent: Bedrock rejects it.
    """
    if cache.ttl is None:
        return {"cachePoint": {"type": "default"}}
    return {"cachePoint": {"type": "default", "ttl": cache.ttl}}


def document_name(filename: str | None) -> str:
    """A DocumentBlock name for `filename`, as Bedrock allows it: ASCII letters and digits,
    hyphens, parentheses, square brackets and single spaces, 1 to 200 characters.

    The extension goes (the format travels in `format`); accents are dropped from their
    letters (NFKD); every run of other characters (dots, underscores, tabs, several
    spaces, non-Latin letters) becomes one space; the ends are trimmed. A filename that
    leaves nothing is `DEFAULT_DOCUMENT_NAME`. Uniqueness is the caller's (`_Parts`).
    """
    if not filename:
        return DEFAULT_DOCUMENT_NAME
    stem, dot, extension = filename.rpartition(".")
    if dot and _EXTENSION.fullmatch(extension):
        filename = stem
    if not filename.isascii():
        decomposed = unicodedata.normalize("NFKD", filename)
        filename = "".join(c for c in decomposed if not unicodedata.combining(c))
    name = _NAME_DISALLOWED.sub(" ", filename).strip()[:_DOCUMENT_NAME_MAX].rstrip()
    return name or DEFAULT_DOCUMENT_NAME


def _shown_url(url: str) -> str:
    """A URL for an error message: without its query (a presigned URL's signature) and short."""
    return url.partition("?")[0][:200]


class _Parts:
    """Maps the content parts of one request; made for its first message given as parts.

    It holds what spans messages: the document names used so far (Bedrock rejects two
    documents of one name in a request, in any case), and where each user turn's first
    document went, for the check that the turn also holds text.
    """

    __slots__ = ("documents", "names", "provider")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.names: set[str] = set()
        #: (index in the Converse messages, where the document was given)
        self.documents: list[tuple[int, str]] = []

    def system(self, content: tuple[ContentPart, ...], where: str, system: list[dict[str, Any]]) -> None:
        """A system message's text parts as SystemContentBlocks (an empty one left out: the
        service model's NonEmptyString); any other part is a `UsageError`."""
        for k, p in enumerate(content):
            if type(p) is not TextPart:
                raise UsageError(
                    f"{where}[{k}]: a system prompt takes only text on {self.provider}; "
                    f"move the {p.type} part to a user message"
                )
            if p.text:
                system.append({"text": p.text})
            # A marker on an empty part caches what precedes it, if anything does and no
            # cache point already ends it.
            if p.cache_control is not None and system and "cachePoint" not in system[-1]:
                system.append(cache_point(p.cache_control))

    def assistant(self, content: tuple[ContentPart, ...], where: str) -> list[dict[str, Any]]:
        """An assistant turn's text parts: Converse takes images and documents in user turns only."""
        blocks: list[dict[str, Any]] = []
        for k, p in enumerate(content):
            if type(p) is not TextPart:
                raise UsageError(
                    f"{where}[{k}]: an assistant message takes only text on {self.provider}; "
                    f"move the {p.type} part to a user message"
                )
            blocks.append({"text": p.text})
            if p.cache_control is not None:
                blocks.append(cache_point(p.cache_control))
        return blocks

    def user(self, content: tuple[ContentPart, ...], where: str) -> tuple[list[dict[str, Any]], str | None]:
        """A user turn's blocks, each marked one followed by its cache point, and where its
        first document was given (None when it holds none)."""
        blocks: list[dict[str, Any]] = []
        document: str | None = None
        for k, p in enumerate(content):
            at = f"{where}[{k}]"
            if type(p) is TextPart:
                blocks.append({"text": p.text})
            elif type(p) is ImagePart:
                blocks.append(self.image(p, at))
            elif type(p) is FilePart:
                blocks.append(self.document(p, at))
                if document is None:
                    document = at
            else:
                blocks.append(self.audio(cast("AudioPart", p), at))
            if p.cache_control is not None:
                blocks.append(cache_point(p.cache_control))
        return blocks, document

    def tool_result(
        self, content: tuple[ContentPart, ...], where: str
    ) -> tuple[list[dict[str, Any]], CacheControl | None]:
        """A tool result's content (ToolResultContentBlocks: text, image, document) and the
        marker of its last marked part, for the cache point after the `toolResult` block."""
        blocks: list[dict[str, Any]] = []
        cache: CacheControl | None = None
        for k, p in enumerate(content):
            at = f"{where}[{k}]"
            if type(p) is TextPart:
                blocks.append({"text": p.text})
            elif type(p) is ImagePart:
                blocks.append(self.image(p, at))
            elif type(p) is FilePart:
                blocks.append(self.document(p, at))
            else:
                raise UsageError(
                    f"{at}: a tool result takes text, images and documents on {self.provider}; "
                    "move the audio part to a user message"
                )
            if p.cache_control is not None:
                cache = p.cache_control
        return blocks, cache

    def image(self, part: ImagePart, where: str) -> dict[str, Any]:
        """An `image` block from a data URL."""
        url = part.url
        if not is_data_url(url):
            # The provider actor fetches every remote image for Bedrock (`must_fetch`);
            # one left here was not fetched, and Converse would reject it.
            raise UsageError(
                f"{where}: {self.provider} takes no image URLs, and {_shown_url(url)!r} was not fetched; "
                "send the image as a data URL (data:image/png;base64,...)"
            )
        data = parse_data_url(url, f"{where}.image_url.url")
        fmt = IMAGE_FORMATS.get(data.mime)
        if fmt is None:
            raise UsageError(
                f"{where}: image type {data.mime!r} is not supported by {self.provider}; "
                "send image/jpeg, image/png, image/gif or image/webp"
            )
        return {"image": {"format": fmt, "source": {"bytes": self._bytes(data.base64, where)}}}

    def document(self, part: FilePart, where: str) -> dict[str, Any]:
        """A `document` block from `file_data`, named from its filename."""
        data = parse_data_url(inline_file_data(part, where, self.provider), f"{where}.file.file_data")
        fmt = DOCUMENT_FORMATS.get(data.mime)
        if fmt is None:
            raise UsageError(
                f"{where}: document type {data.mime!r} is not supported by {self.provider}; send "
                + ", ".join(DOCUMENT_FORMATS)
            )
        source = {"bytes": self._bytes(data.base64, where)}
        return {"document": {"format": fmt, "name": self._unique(document_name(part.filename)), "source": source}}

    def audio(self, part: AudioPart, where: str) -> dict[str, Any]:
        """An `audio` block; `data` is already base64."""
        fmt = part.format.lower()
        if fmt not in AUDIO_FORMATS:
            raise UsageError(
                f"{where}: audio format {part.format!r} is not supported by {self.provider}; "
                f"send one of {', '.join(sorted(AUDIO_FORMATS))}"
            )
        data = part.data.strip()
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{where}: input_audio.data is not valid base64") from None
        return {"audio": {"format": fmt, "source": {"bytes": self._bytes(data, where)}}}

    def _bytes(self, data: str, where: str) -> str:
        if not data:  # the service model's blobs hold at least one byte
            raise UsageError(f"{where}: the part holds no data; {self.provider} rejects an empty one")
        return data

    def _unique(self, name: str) -> str:
        """`name`, or `name (2)`, `name (3)`... if a document of the request already has it."""
        n = 1
        unique = name
        while unique.lower() in self.names:
            n += 1
            suffix = f" ({n})"
            unique = name[: _DOCUMENT_NAME_MAX - len(suffix)].rstrip() + suffix
        self.names.add(unique.lower())
        return unique

    def check_documents(self, messages: list[dict[str, Any]]) -> None:
        """Bedrock rejects a turn that holds a document and no text (the service model's
        `Message.content`): a `UsageError` naming the document, rather than Bedrock's 400."""
        for index, where in self.documents:
            if not any(b.get("text") for b in messages[index]["content"]):
                raise UsageError(
                    f"{where}: {self.provider} rejects a message that holds a document and no text; "
                    "add a text part to that message (the question or instruction about the document)"
                )


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    """Bedrock's toolChoice for an OpenAI-style (or already Bedrock-style) choice."""
    if isinstance(choice, str):
        return {"auto": {"auto": {}}, "required": {"any": {}}, "any": {"any": {}}}.get(choice)
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if isinstance(fn, Mapping) and "name" in fn:
            return {"tool": {"name": fn["name"]}}
        if len(choice) == 1 and next(iter(choice)) in ("auto", "any", "tool"):
            return dict(choice)
    return None


def is_claude(model_id: str) -> bool:
    """Whether `model_id` (a model id, inference profile id or ARN) names a Claude model."""
    lowered = model_id.lower()
    return "anthropic." in lowered or "claude" in lowered


def converse_body(
    request: ChatRequest,
    model_id: str = "",
    *,
    provider: str = "Bedrock",
    drop: bool = False,
    dropped: list[str] | None = None,
) -> dict[str, Any]:
    """The ConverseStream JSON body (everything but `modelId`, which goes in the URL).

    Keys follow the service model's member order, which is the order boto3 users write
    them in. Reasoning is sent as Anthropic's `thinking` in `additionalModelRequestFields`,
    under Claude's thinking rule (`wire/claude.py`): it drops temperature/topP and raises
    maxTokens above the budget.

    The common parameters (botocore's `ConverseStreamRequest`): `top_k` as
    `additionalModelRequestFields.top_k` for Claude models (`is_claude`), refused for
    others and, with thinking on, for Claude too (Anthropic's extended-thinking docs: not
    compatible with top_k); `metadata` as `requestMetadata`; `service_tier` as
    `serviceTier.type` (`SERVICE_TIERS`); `response_format` json_schema as
    `outputConfig.textFormat` (the schema as a JSON string, as `JsonSchemaDefinition`
    wants it; Converse's structured output is always constrained, so `strict` has no
    field); json_object is refused (Converse has no schema-less JSON mode).
    `parallel_tool_calls: true` is Converse's own behaviour (several `toolUse` blocks per
    turn) and sends nothing; false is refused, as are `logprobs: true` and `UNSUPPORTED`.
    A refused parameter is a `UsageError` naming it and `provider`, or with `drop` it is
    left out and its name appended to `dropped`.

    Content parts map as `converse_messages` says; a tool's `cache_control` is a
    `cachePoint` entry right after its `toolSpec` in `toolConfig.tools`.
    """
    gone: list[str] = dropped if dropped is not None else []

    def refuse(param: str, why: str = "") -> None:
        refuse_or_drop(param, provider + why, drop=drop, dropped=gone)

    refuse_given(request, UNSUPPORTED, provider, drop=drop, dropped=gone)
    if request.logprobs:
        refuse("logprobs")
    if request.parallel_tool_calls is False:
        refuse("parallel_tool_calls", " as false (Converse has no way to turn parallel tool calls off)")
    system, messages = converse_messages(request.messages, provider)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    sampling = claude_sampling(request, require_max_tokens=False)
    inference: dict[str, Any] = {}
    if sampling.max_tokens is not None:
        inference["maxTokens"] = sampling.max_tokens
    if sampling.temperature is not None:
        inference["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        inference["topP"] = sampling.top_p
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    if inference:
        body["inferenceConfig"] = inference
    if request.tools:
        has_tool_blocks = any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])
        # Converse has no "none": leave the tools out, unless the history uses tool
        # blocks, which Converse only accepts alongside a toolConfig.
        if request.tool_choice != "none" or has_tool_blocks:
            tools: list[dict[str, Any]] = []
            for t in request.tools:
                spec: dict[str, Any] = {"name": t.name}
                if t.description:
                    spec["description"] = t.description
                spec["inputSchema"] = {"json": dict(t.parameters)}
                tools.append({"toolSpec": spec})
                if t.cache_control is not None:
                    tools.append(cache_point(t.cache_control))
            config: dict[str, Any] = {"tools": tools}
            choice = _tool_choice(request.tool_choice)
            if choice is not None:
                config["toolChoice"] = choice
            body["toolConfig"] = config
    additional: dict[str, Any] = {}
    if sampling.thinking_budget is not None:
        additional["thinking"] = {"type": "enabled", "budget_tokens": sampling.thinking_budget}
    if request.top_k is not None:
        if not is_claude(model_id):
            refuse("top_k", f" for model {model_id!r} (only Claude models take top_k)")
        elif sampling.thinking_budget is not None:
            refuse("top_k", " with extended thinking")
        else:
            additional["top_k"] = request.top_k
    if additional:
        body["additionalModelRequestFields"] = additional
    if request.metadata:
        body["requestMetadata"] = _request_metadata(request.metadata)
    if request.service_tier is not None:
        if request.service_tier not in SERVICE_TIERS:
            refuse("service_tier", f" as {request.service_tier!r} (only {', '.join(SERVICE_TIERS)})")
        elif (tier := SERVICE_TIERS[request.service_tier]) is not None:
            body["serviceTier"] = {"type": tier}
    fmt = request.response_format
    if fmt is not None:
        if fmt.type != "json_schema":
            refuse("response_format", f" for type {fmt.type} (only json_schema has a native mode)")
        elif fmt.schema is None:
            raise UsageError("response_format: type 'json_schema' needs a schema")
        else:
            schema: dict[str, Any] = {"schema": json.dumps(dict(fmt.schema))}
            if fmt.name is not None:
                schema["name"] = fmt.name
            text_format = {"type": "json_schema", "structure": {"jsonSchema": schema}}
            body["outputConfig"] = {"textFormat": text_format}
    return body


def _request_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """`requestMetadata`, checked against the service model's limits before anything is sent."""
    if len(metadata) > _METADATA_MAX:
        raise UsageError(f"metadata: Bedrock takes at most {_METADATA_MAX} pairs, got {len(metadata)}")
    for key, value in metadata.items():
        if not _METADATA_KEY.fullmatch(key) or not _METADATA_VALUE.fullmatch(value):
            raise UsageError(
                "metadata: Bedrock's keys (1 to 256 characters) and values (0 to 256) hold only letters, "
                f"digits, whitespace and the characters :_@$#=/+,-. (got {key!r}: {value!r})"
            )
    return dict(metadata)


def sign_request(
    spec: HttpRequestSpec,
    credentials: Credentials | ReadOnlyCredentials,
    region: str,
    service: str = "bedrock",
) -> HttpRequestSpec:
    """Return `spec` signed with SigV4 by botocore, at the current time.

    Adds `X-Amz-Date`, `X-Amz-Security-Token` (when the credentials carry a session
    token) and `Authorization`; every other header in `spec` is signed, plus `host`
    taken from the URL. Signing a signed spec again replaces its signature, so a retry
    can be re-signed. Pure CPU, except that refreshable credentials are frozen first,
    which may refresh them: pass frozen ones to stay free of I/O.
    """
    if isinstance(credentials, Credentials):
        # One consistent (key, secret, token) triple, as botocore's RequestSigner takes.
        credentials = credentials.get_frozen_credentials()
    headers = {k: v for k, v in spec.headers if k.lower() not in _SIGNATURE_HEADERS}
    aws = AWSRequest(method=spec.method, url=spec.url, headers=headers, data=spec.body)
    SigV4Auth(credentials, service, region).add_auth(aws)
    return attrs.evolve(spec, headers=tuple((k, str(v)) for k, v in aws.headers.items()))


class BedrockCodec:
    """Builds `POST {endpoint_url}/model/{modelId}/converse-stream` requests and decodes
    their event streams.

    Requests are built unsigned: the provider's authorizer (`providers.auth.AwsSigner`)
    signs each attempt with `sign_request` just before it is sent, so a retry gets a
    fresh date and refreshed credentials.
    """

    content_type = "application/vnd.amazon.eventstream"

    def __init__(
        self,
        endpoint_url: str,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        extra_headers: Mapping[str, str] | None = None,
        drop_params: bool = False,
    ) -> None:
        #: Headers from the config, sent (and signed) with every request.
        self.extra_headers = tuple((extra_headers or {}).items())
        self.endpoint_url = endpoint_url.rstrip("/")
        self.max_event_bytes = max_event_bytes
        #: The config's `drop_params`: leave out what Converse cannot honour, instead of refusing.
        self.drop_params = drop_params

    def url(self, model_id: str) -> str:
        """The ConverseStream URL; ':' and '/' in model ids and ARNs are percent-encoded."""
        return f"{self.endpoint_url}/model/{percent_encode(model_id)}/converse-stream"

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        dropped: list[str] = []
        body = json.dumps(converse_body(request, model_id, drop=self.drop_params, dropped=dropped)).encode("utf-8")
        headers = (("Content-Type", "application/json"), *self.extra_headers)
        return HttpRequestSpec("POST", self.url(model_id), headers, body, dropped=tuple(dropped))

    def new_decoder(self, model_id: str = "") -> BedrockStreamDecoder:
        return BedrockStreamDecoder(self.max_event_bytes)

    def must_fetch(self, url: str, model_id: str) -> bool:
        """Bedrock's Converse takes image bytes only: every remote image is fetched."""
        return True

    def parse_error(self, status: int, body: bytes) -> tuple[str, str | None]:
        """AWS sends `{"message": ...}` (the type is in `x-amzn-ErrorType`); some
        front ends send `{"Message": ..., "__type": "ns#Name"}`."""
        message, etype = error_message_from_body(body)
        if etype is None:
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict) and isinstance(obj.get("__type"), str):
                etype = obj["__type"].rpartition("#")[2]
        return message, etype


# --- response --------------------------------------------------------------------------


class BedrockStreamDecoder(DecoderBase):
    """Decodes a ConverseStream event stream into normalized events.

    Bedrock sends `metadata` (usage) after `messageStop` (the finish reason), so the
    reply ends once both arrived, or at `close_into` after `messageStop`; usage and finish
    then come out last, in that order, as from the other decoders. The contract
    (errors raised by the read that finds them, sticky) is `StreamDecoder`'s.
    """

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__()  # `model` stays None: ConverseStream does not echo the model
        self.max_event_bytes = max_event_bytes
        self.invalid_utf8 = False
        self._buf = bytearray()  # the message being received
        self._need = _PRELUDE  # its length, once the prelude is known
        self._frames = EventStreamBuffer()
        self._tool_pos: dict[int, int] = {}  # contentBlockIndex -> tool call position
        self._metadata = False

    def _feed(self, data: bytes, out: list[StreamEvent]) -> None:
        view = memoryview(data)
        while view and not self._closed:
            take = self._need - len(self._buf)
            self._buf += view[:take]
            view = view[take:]
            if len(self._buf) < self._need:
                return
            if self._need == _PRELUDE:
                self._need = self._check_prelude(bytes(self._buf))
                continue
            self._frames.add_data(bytes(self._buf[_PRELUDE:]))
            self._buf.clear()
            self._need = _PRELUDE
            msg = self._next()
            if msg is None:  # cannot happen: botocore was given the whole message
                raise WireError("event-stream message incomplete after its declared length", kind="protocol")
            try:
                self._on_message(msg, out)
            except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
                # A payload of a shape `_on_event` does not check for: the stream's fault, not ours.
                raise WireError(
                    f"malformed event-stream event ({type(exc).__name__}: {exc}): {msg.payload[:200]!r}",
                    kind="protocol",
                ) from exc
            if self._finish is not None and self._metadata:
                self._end_reply(out)

    def _incomplete_message(self) -> str:
        partial = f" ({len(self._buf)} bytes of an unfinished message)" if self._buf else ""
        return f"stream ended before its terminator (messageStop): the reply is incomplete{partial}"

    # --- framing -----------------------------------------------------------------------

    def _check_prelude(self, prelude: bytes) -> int:
        """Validate a prelude before buffering the rest; return the message length.

        The CRC comes first, so that the lengths can be trusted; then our limit, then
        botocore's own (128 KiB of headers, 24 MiB of payload), which it checks as soon
        as it has the prelude.
        """
        total, headers_len, crc = struct.unpack("!III", prelude)
        if zlib.crc32(prelude[:8]) != crc:
            raise WireError(f"event-stream prelude checksum mismatch: {prelude.hex()}", kind="protocol")
        if total > self.max_event_bytes:
            raise WireError(
                f"event-stream message of {total} bytes is larger than max_event_bytes={self.max_event_bytes}",
                kind="protocol",
            )
        if total < _OVERHEAD + headers_len:
            raise WireError(
                f"malformed event-stream prelude: total length {total}, headers length {headers_len}",
                kind="protocol",
            )
        self._frames.add_data(prelude)
        self._next()
        return int(total)

    def _next(self) -> EventStreamMessage | None:
        """botocore's next message (it checks both CRCs and parses the headers), if complete."""
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except (ParserError, struct.error, KeyError, ValueError) as exc:
            raise WireError(f"malformed event-stream message: {exc!r}", kind="protocol") from exc

    def _payload(self, raw: bytes) -> dict[str, Any]:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                self.invalid_utf8 = True
                return self._payload(raw.decode("utf-8", errors="replace").encode())
            raise WireError(f"invalid JSON in event payload: {exc}: {raw[:200]!r}", kind="protocol") from exc
        if not isinstance(obj, dict):
            raise WireError(f"event payload is not a JSON object: {raw[:200]!r}", kind="protocol")
        return obj

    # --- messages ----------------------------------------------------------------------

    def _on_message(self, msg: EventStreamMessage, out: list[StreamEvent]) -> None:
        headers = msg.headers
        mtype = headers.get(":message-type")
        if mtype == "event":
            self._on_event(str(headers.get(":event-type")), self._payload(msg.payload), out)
        elif mtype == "exception":
            raise self._exception(str(headers.get(":exception-type")), msg.payload)
        elif mtype == "error":
            raise WireError(
                str(headers.get(":error-message") or "event-stream error"),
                kind="upstream",
                retryable=True,
                error_type=str(headers.get(":error-code") or "") or None,
            )
        else:
            raise WireError(f"event-stream message with :message-type {mtype!r}", kind="protocol")

    def _on_event(self, etype: str, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        # Every field is read through `json_field`: a value of the wrong JSON type is a
        # protocol error here, never an event whose text is a number.
        if etype == "contentBlockDelta":
            delta = json_field(obj, "delta", dict, etype) or {}
            if "text" in delta:
                text = json_field(delta, "text", str, "delta")
                if text:
                    out.append(TextEvent(text))
            elif "toolUse" in delta:
                block = json_field(obj, "contentBlockIndex", int, etype)
                pos = self._tool_pos.get(block) if block is not None else None
                if pos is None:
                    raise WireError(f"tool input for content block {block!r}, which never started", kind="protocol")
                tool_use = json_field(delta, "toolUse", dict, "delta") or {}
                fragment = json_field(tool_use, "input", str, "delta.toolUse") or ""
                if fragment:
                    out.append(ToolCallEvent(pos, None, None, fragment))
            elif "reasoningContent" in delta:
                content = json_field(delta, "reasoningContent", dict, "delta") or {}
                text = json_field(content, "text", str, "delta.reasoningContent")
                if text:
                    out.append(ReasoningEvent(text))
                signature = json_field(content, "signature", str, "delta.reasoningContent")
                if signature:
                    out.append(ReasoningEvent("", signature=signature))
                redacted = json_field(content, "redactedContent", str, "delta.reasoningContent")
                if redacted:  # a blob: base64 in the JSON payload, kept as it came
                    out.append(ReasoningEvent("", redacted=redacted))
            elif "citation" in delta:
                citation = json_field(delta, "citation", dict, "delta")
                if citation is not None:  # one CitationsDelta per cited source, emitted as it comes
                    out.append(CitationEvent(_citation(citation)))
            else:
                self.unknown_events.add(f"contentBlockDelta:{','.join(delta) or '(empty)'}")
        elif etype == "contentBlockStart":
            start = json_field(obj, "start", dict, etype) or {}
            tool = json_field(start, "toolUse", dict, "start")
            if tool is not None:
                block = json_field(obj, "contentBlockIndex", int, etype)
                pos = self._tool_pos[block if block is not None else -1 - len(self._tool_pos)] = len(self._tool_pos)
                self._tool_calls_seen = True
                tool_id = json_field(tool, "toolUseId", str, "start.toolUse")
                out.append(ToolCallEvent(pos, tool_id, json_field(tool, "name", str, "start.toolUse"), ""))
            else:
                self.unknown_events.add(f"contentBlockStart:{','.join(start) or '(empty)'}")
        elif etype == "messageStop":
            stop = json_field(obj, "stopReason", str, etype)
            self._finish = STOP_MAP.get(stop or "", "stop")
            if stop not in STOP_MAP:
                self.unknown_events.add(f"messageStop:{stop}")
        elif etype == "metadata":
            self._metadata = True
            usage = json_field(obj, "usage", dict, etype)
            if usage is not None:
                self._usage = _usage(usage)
        elif etype not in ("messageStart", "contentBlockStop"):
            self.unknown_events.add(etype)

    @staticmethod
    def _exception(etype: str, raw: bytes) -> WireError:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            message = str(obj.get("Message") or obj.get("message") or etype)
        else:
            message = raw[:500].decode("utf-8", errors="replace").strip() or etype
        status = EXCEPTION_STATUS.get(etype)
        retryable = etype in RETRYABLE_EXCEPTIONS or status is None
        return WireError(message, kind="upstream", status=status, retryable=retryable, error_type=etype)


def _usage(usage: dict[str, Any]) -> UsageEvent:
    """A `TokenUsage`: `inputTokens` leaves out the prompt-cache reads and writes, which
    `input_tokens` counts (as OpenAI's prompt_tokens and LiteLLM do). Converse reports no
    reasoning count (reasoning is inside `outputTokens`)."""
    inp = json_field(usage, "inputTokens", int, "usage")
    read = json_field(usage, "cacheReadInputTokens", int, "usage")
    write = json_field(usage, "cacheWriteInputTokens", int, "usage")
    if inp is not None:
        inp += (read or 0) + (write or 0)
    return UsageEvent(inp, json_field(usage, "outputTokens", int, "usage"), read, write, None)


def _citation(citation: dict[str, Any]) -> Citation:
    """A `CitationsDelta` (one per cited source): the URL of a `web` location (the other
    locations point into documents sent with the request, and have none), the title, and
    the `sourceContent` texts joined."""
    location = json_field(citation, "location", dict, "delta.citation") or {}
    web = json_field(location, "web", dict, "delta.citation.location") or {}
    pieces = json_field(citation, "sourceContent", list, "delta.citation") or []
    texts = []
    for piece in pieces:
        if type(piece) is not dict:
            raise WireError(f"delta.citation.sourceContent holds a {type(piece).__name__}", kind="protocol")
        text = json_field(piece, "text", str, "delta.citation.sourceContent")
        if text:
            texts.append(text)
    return Citation(
        json_field(web, "url", str, "delta.citation.location.web"),
        json_field(citation, "title", str, "delta.citation"),
        "".join(texts) or None,
    )
