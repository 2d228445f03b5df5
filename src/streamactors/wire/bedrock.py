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

import json
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import attrs
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError
from botocore.utils import percent_encode

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
    json_field,
    refuse_given,
    refuse_or_drop,
    tool_arguments_object,
)
from .claude import claude_sampling
from .sse import DEFAULT_MAX_EVENT_BYTES

__all__ = [
    "SERVICE_TIERS",
    "UNSUPPORTED",
    "BedrockCodec",
    "BedrockStreamDecoder",
    "converse_body",
    "converse_messages",
    "default_endpoint",
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


def converse_messages(messages: tuple[Message, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages) in the Converse shape.

    System and developer messages become one `system` text block each. Tool results
    become `toolResult` blocks in a user turn, and consecutive turns of one role are
    merged, since Converse wants user and assistant turns to alternate. An assistant
    turn's signed reasoning blocks go first, as `reasoningContent` blocks.
    """
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        if m.role in ("system", "developer"):
            if m.content:
                system.append({"text": m.content})
        elif m.role == "tool":
            result = {"toolUseId": m.tool_call_id or "", "content": [{"text": m.content or ""}]}
            add("user", [{"toolResult": result}])
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = []
            for r in m.reasoning_blocks:  # signed reasoning goes back first, unchanged
                if r.redacted is not None:
                    blocks.append({"reasoningContent": {"redactedContent": r.redacted}})
                elif r.signature is not None:
                    blocks.append({"reasoningContent": {"reasoningText": {"text": r.text, "signature": r.signature}}})
            if m.content:
                blocks.append({"text": m.content})
            for tc in m.tool_calls:
                blocks.append(
                    {"toolUse": {"toolUseId": tc.id, "name": tc.name, "input": tool_arguments_object(tc.arguments)}}
                )
            if blocks:
                add("assistant", blocks)
        else:
            add("user", [{"text": m.content or ""}])
    return system, out


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
    """
    gone: list[str] = dropped if dropped is not None else []

    def refuse(param: str, why: str = "") -> None:
        refuse_or_drop(param, provider + why, drop=drop, dropped=gone)

    refuse_given(request, UNSUPPORTED, provider, drop=drop, dropped=gone)
    if request.logprobs:
        refuse("logprobs")
    if request.parallel_tool_calls is False:
        refuse("parallel_tool_calls", " as false (Converse has no way to turn parallel tool calls off)")
    system, messages = converse_messages(request.messages)
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
            tools = [
                {
                    "toolSpec": {
                        "name": t.name,
                        **({"description": t.description} if t.description else {}),
                        "inputSchema": {"json": dict(t.parameters)},
                    }
                }
                for t in request.tools
            ]
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
