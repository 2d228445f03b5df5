"""AWS Bedrock ConverseStream: request body, URL, SigV4 signing, and event-stream decoding.

The fixtures `fixtures/bedrock_*.bin` are the transcripts below encoded by
`testing.formats.bedrock.encode_frame`; `python tests/wire/test_bedrock.py` rewrites
them, and `test_fixture_bytes_come_from_the_transcripts` checks they are current.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
import botocore.auth
import botocore.eventstream
import botocore.parsers
import botocore.session
import orjson
import pytest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.eventstream import EventStreamBuffer
from wire_harness import close, feed

from streamactors.config import BedrockConfig, Config
from streamactors.errors import UsageError, WireError
from streamactors.models import (
    ChatRequest,
    Citation,
    CitationEvent,
    FinishEvent,
    Message,
    Reasoning,
    ReasoningBlock,
    ReasoningEvent,
    ResponseFormat,
    StreamEvent,
    TextEvent,
    Tool,
    ToolCall,
    ToolCallEvent,
    UsageEvent,
)
from streamactors.providers.auth import AwsSigner
from streamactors.testing.formats import bedrock as fmt
from streamactors.testing.routing import route_request
from streamactors.testing.script import Scenario, build_steps, citation_for, token_text
from streamactors.wire.base import HttpRequestSpec
from streamactors.wire.bedrock import (
    EXCEPTION_STATUS,
    RETRYABLE_EXCEPTIONS,
    SERVICE_TIERS,
    STOP_MAP,
    BedrockCodec,
    BedrockStreamDecoder,
    converse_body,
    is_claude,
    sign_request,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ENDPOINT = "https://bedrock-runtime.us-east-1.amazonaws.com"
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
FROZEN = datetime.datetime(2024, 5, 1, 12, 0, 0)
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SESSIONTOKEN")


# --- helpers -------------------------------------------------------------------------------


def event_frame(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return fmt.encode_frame(headers, orjson.dumps(payload))


def exception_frame(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
    return fmt.encode_frame(headers, orjson.dumps(payload))


def decode(data: bytes, *splits: int) -> list[StreamEvent]:
    dec = BedrockStreamDecoder()
    out: list[StreamEvent] = []
    last = 0
    for cut in (*splits, len(data)):
        dec.feed_into(data[last:cut], out)
        last = cut
    dec.close_into(out)
    return out


def as_dicts(events: list[StreamEvent]) -> list[dict[str, Any]]:
    return [{"type": ev.type, **attrs.asdict(ev)} for ev in events]


def rendered(sc: Scenario) -> bytes:
    return b"".join(item for item in fmt.render(build_steps(sc), sc.model, {}) if isinstance(item, bytes))


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> datetime.datetime:
    """botocore.auth reads the time through `get_current_datetime`; pin it."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)
    return FROZEN


class _Captured(Exception):
    pass


def boto3_request(monkeypatch: pytest.MonkeyPatch, model_id: str, body: dict[str, Any]) -> Any:
    """The request botocore's own bedrock-runtime client would send (captured, never sent)."""
    for var in ("AWS_BEARER_TOKEN_BEDROCK", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        monkeypatch.delenv(var, raising=False)
    client = botocore.session.Session().create_client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=ENDPOINT,
        aws_access_key_id=CREDS.access_key, aws_secret_access_key=CREDS.secret_key, aws_session_token=CREDS.token,
    )
    captured: list[Any] = []

    def before_send(request: Any, **kwargs: Any) -> None:
        captured.append(request)
        raise _Captured

    client.meta.events.register("before-send", before_send)
    with pytest.raises(_Captured):
        client.converse_stream(modelId=model_id, **body)
    return captured[0]


# --- request body --------------------------------------------------------------------------

TOOL = Tool("get_weather", "Current weather for a city",
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
HISTORY = (
    Message("system", "Be brief."),
    Message("developer", "Use metric units."),
    Message("user", "Weather in Paris and Tōkyō?"),
    Message("assistant", "Checking both.", tool_calls=[
        ToolCall("tooluse_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("tooluse_b", "get_weather", ""),
    ]),
    Message("tool", '{"temp": 21}', tool_call_id="tooluse_a"),
    Message("tool", "Tokyo: 18 C", tool_call_id="tooluse_b"),
    Message("user", "Thanks!"),
)


class TestConverseBody:
    def test_minimal_request(self) -> None:
        """A lone user message: no inferenceConfig, no system, no toolConfig."""
        body = converse_body(ChatRequest("bedrock/x", [Message("user", "hi")]))
        assert body == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}

    def test_signed_and_redacted_reasoning_lead_the_assistant_turn(self) -> None:
        """As Converse sent them, before the text and tool use; unsigned reasoning is not sent."""
        blocks = (ReasoningBlock("Plan.", "c2ln"), ReasoningBlock("", None, "EmwK"), ReasoningBlock("unsigned"))
        msgs = [Message("user", "a"),
                Message("assistant", "On it.", tool_calls=[ToolCall("t1", "f", "{}")], reasoning_blocks=blocks)]
        assert converse_body(ChatRequest("bedrock/x", msgs))["messages"][1] == {
            "role": "assistant",
            "content": [{"reasoningContent": {"reasoningText": {"text": "Plan.", "signature": "c2ln"}}},
                        {"reasoningContent": {"redactedContent": "EmwK"}},
                        {"text": "On it."},
                        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}],
        }

    def test_history_with_tools(self) -> None:
        """System prompts become blocks; tool results merge into one user turn with the next user text."""
        body = converse_body(ChatRequest("bedrock/x", HISTORY, tools=[TOOL]))
        assert body == {
            "messages": [
                {"role": "user", "content": [{"text": "Weather in Paris and Tōkyō?"}]},
                {"role": "assistant", "content": [
                    {"text": "Checking both."},
                    {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "tooluse_b", "name": "get_weather", "input": {}}},
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "tooluse_a", "content": [{"text": '{"temp": 21}'}]}},
                    {"toolResult": {"toolUseId": "tooluse_b", "content": [{"text": "Tokyo: 18 C"}]}},
                    {"text": "Thanks!"},
                ]},
            ],
            "system": [{"text": "Be brief."}, {"text": "Use metric units."}],
            "toolConfig": {"tools": [{"toolSpec": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "inputSchema": {"json": dict(TOOL.parameters)},
            }}]},
        }

    def test_inference_config_in_service_model_order(self) -> None:
        req = ChatRequest("bedrock/x", [Message("user", "hi")], max_tokens=64, temperature=0.2, top_p=0.9,
                          stop=["END", "STOP"])
        body = converse_body(req)
        assert body["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.2, "topP": 0.9,
                                           "stopSequences": ["END", "STOP"]}
        assert list(body["inferenceConfig"]) == ["maxTokens", "temperature", "topP", "stopSequences"]

    @pytest.mark.parametrize(("choice", "expected"), [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
        ({"tool": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
        (None, None),
    ])
    def test_tool_choice(self, choice: Any, expected: dict[str, Any] | None) -> None:
        body = converse_body(ChatRequest("bedrock/x", [Message("user", "hi")], tools=[TOOL], tool_choice=choice))
        assert body["toolConfig"].get("toolChoice") == expected

    def test_tool_choice_none(self) -> None:
        """Converse has no "none": drop the tools, unless the history needs a toolConfig."""
        plain = converse_body(ChatRequest("bedrock/x", [Message("user", "hi")], tools=[TOOL], tool_choice="none"))
        assert "toolConfig" not in plain
        history = converse_body(ChatRequest("bedrock/x", HISTORY, tools=[TOOL], tool_choice="none"))
        assert history["toolConfig"] == {"tools": [{"toolSpec": {
            "name": "get_weather", "description": "Current weather for a city",
            "inputSchema": {"json": dict(TOOL.parameters)}}}]}

    @pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 4096), ("high", 16384)])
    def test_reasoning_effort(self, effort: Any, budget: int) -> None:
        """Thinking rides in additionalModelRequestFields; maxTokens must exceed the budget."""
        req = ChatRequest("bedrock/x", [Message("user", "hi")], max_tokens=2000, temperature=0.5, top_p=0.9,
                          reasoning=Reasoning(effort=effort))
        body = converse_body(req)
        assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": budget}}
        assert body["inferenceConfig"] == {"maxTokens": 2000 if budget < 2000 else 2000 + budget}
        assert list(body)[-1] == "additionalModelRequestFields"

    def test_reasoning_budget(self) -> None:
        body = converse_body(ChatRequest("bedrock/x", [Message("user", "hi")], reasoning=Reasoning(budget_tokens=500)))
        assert body["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024
        assert body["inferenceConfig"] == {"maxTokens": 4096}

    def test_body_url_and_signature_equal_botocores(
        self, monkeypatch: pytest.MonkeyPatch, frozen_clock: datetime.datetime
    ) -> None:
        """botocore's client validates the body against its service model and sends the same bytes."""
        req = ChatRequest("bedrock/x", HISTORY, max_tokens=300, temperature=0.3, stop=["END"], tools=[TOOL],
                          tool_choice={"type": "function", "function": {"name": "get_weather"}},
                          reasoning=Reasoning(effort="low"))
        for model_id in (CLAUDE, PROFILE_ARN):
            ours = sign_request(BedrockCodec(ENDPOINT).build_request(req, model_id), CREDS, "us-east-1")
            theirs = boto3_request(monkeypatch, model_id, converse_body(req))
            assert ours.url == theirs.url
            assert ours.body == theirs.body
            signed = {k.lower(): v for k, v in ours.headers}
            for name in ("Content-Type", "X-Amz-Date", "X-Amz-Security-Token", "Authorization"):
                assert signed[name.lower()] == theirs.headers[name].decode()
            assert "accept" not in signed  # boto3 sends no Accept header


@pytest.fixture(scope="module")
def service_model() -> Any:
    return botocore.session.Session().get_service_model("bedrock-runtime")


class TestServiceModel:
    """Our tables agree with botocore's bedrock-runtime service model."""

    def test_operation(self, service_model: Any) -> None:
        op = service_model.operation_model("ConverseStream")
        assert op.http == {"method": "POST", "requestUri": "/model/{modelId}/converse-stream", "responseCode": 200}
        assert service_model.signing_name == "bedrock"
        assert op.output_shape.members["stream"].serialization.get("eventstream")

    def test_every_stop_reason_is_mapped(self, service_model: Any) -> None:
        assert set(service_model.shape_for("StopReason").enum) == set(STOP_MAP)

    def test_exception_statuses(self, service_model: Any) -> None:
        """Every error shape (those the stream can carry included) has its status in our table."""
        stream = service_model.shape_for("ConverseStreamOutput").members
        in_stream = {name for name, shape in stream.items() if shape.metadata.get("exception")}
        assert in_stream == {"internalServerException", "modelStreamErrorException", "validationException",
                             "throttlingException", "serviceUnavailableException"}
        for shape_name in service_model.shape_names:
            shape = service_model.shape_for(shape_name)
            if shape.metadata.get("exception"):
                name = shape_name[0].lower() + shape_name[1:]
                assert EXCEPTION_STATUS[name] == shape.metadata["error"]["httpStatusCode"], name
        assert set(EXCEPTION_STATUS) >= RETRYABLE_EXCEPTIONS


class TestCodec:
    @pytest.mark.parametrize(("model_id", "path"), [
        (CLAUDE, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"),
        (PROFILE_ARN, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
                      "us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"),
        ("meta.llama3-70b-instruct-v1:0~tokens=3", "/model/meta.llama3-70b-instruct-v1%3A0~tokens%3D3/converse-stream"),
    ])
    def test_url_quotes_model_id_like_botocore(self, model_id: str, path: str) -> None:
        codec = BedrockCodec(ENDPOINT + "/")
        assert codec.url(model_id) == ENDPOINT + path

    def test_built_unsigned(self) -> None:
        """The provider's authorizer signs each attempt (`test_signed_by_the_providers_signer`)."""
        codec = BedrockCodec(ENDPOINT)
        spec = codec.build_request(ChatRequest("b/x", [Message("user", "é")]), CLAUDE)
        assert spec.method == "POST"
        assert spec.headers == (("Content-Type", "application/json"),)
        assert spec.body == b'{"messages": [{"role": "user", "content": [{"text": "\\u00e9"}]}]}'

    def test_parse_error(self) -> None:
        codec = BedrockCodec(ENDPOINT)
        assert codec.parse_error(400, b'{"message":"Malformed input request"}') == ("Malformed input request", None)
        aws = b'{"__type":"com.amazon.coral.service#UnrecognizedClientException","Message":"bad token"}'
        assert codec.parse_error(403, aws) == ("bad token", "UnrecognizedClientException")
        assert codec.parse_error(502, b"Bad Gateway") == ("Bad Gateway", None)


# --- the common parameters (issue 13) ----------------------------------------------------------

WEATHER_SCHEMA = {"type": "object", "properties": {"temp": {"type": "number"}}, "required": ["temp"],
                  "additionalProperties": False}
HI = (Message("user", "hi"),)
LLAMA = "meta.llama3-70b-instruct-v1:0"


def with_params(**params: Any) -> ChatRequest:
    return ChatRequest("bedrock/x", HI, **params)


ALL_NATIVE = with_params(
    max_tokens=100, top_k=40, metadata={"team": "search", "run-id": "r1:2"}, service_tier="priority",
    response_format=ResponseFormat("json_schema", WEATHER_SCHEMA, "weather", strict=True),
    parallel_tool_calls=True, logprobs=False,
)

# (request parameters, the parameter refused, a phrase of the reason, the model id)
REFUSED: list[tuple[dict[str, Any], str, str, str]] = [
    ({"seed": 7}, "seed", "", CLAUDE),
    ({"presence_penalty": 0.5}, "presence_penalty", "", CLAUDE),
    ({"frequency_penalty": -0.5}, "frequency_penalty", "", CLAUDE),
    ({"user": "u-42"}, "user", "", CLAUDE),
    ({"logprobs": True}, "logprobs", "", CLAUDE),
    ({"top_logprobs": 3}, "top_logprobs", "", CLAUDE),
    ({"parallel_tool_calls": False, "tools": [TOOL]}, "parallel_tool_calls", "as false", CLAUDE),
    ({"top_k": 40}, "top_k", "only Claude models", LLAMA),
    ({"top_k": 40, "reasoning": Reasoning(effort="low")}, "top_k", "with extended thinking", CLAUDE),
    ({"response_format": ResponseFormat("json_object")}, "response_format", "json_object", CLAUDE),
    ({"service_tier": "scale"}, "service_tier", "'scale'", CLAUDE),
]


class TestParameters:
    def test_native_names(self) -> None:
        """Each under its ConverseStreamRequest name, in the service model's member order."""
        body = converse_body(ALL_NATIVE, CLAUDE)
        assert body == {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 100},
            "additionalModelRequestFields": {"top_k": 40},
            "requestMetadata": {"team": "search", "run-id": "r1:2"},
            "serviceTier": {"type": "priority"},
            "outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
                "schema": json.dumps(WEATHER_SCHEMA), "name": "weather"}}}},
        }
        assert list(body) == ["messages", "inferenceConfig", "additionalModelRequestFields", "requestMetadata",
                              "serviceTier", "outputConfig"]

    def test_body_equals_botocores(self, monkeypatch: pytest.MonkeyPatch, frozen_clock: datetime.datetime) -> None:
        """botocore validates these members against its service model and sends the same bytes."""
        for model_id in (CLAUDE, PROFILE_ARN):
            ours = BedrockCodec(ENDPOINT).build_request(ALL_NATIVE, model_id)
            theirs = boto3_request(monkeypatch, model_id, converse_body(ALL_NATIVE, model_id))
            assert ours.body == theirs.body
            assert ours.dropped == ()

    def test_top_k_with_thinking_off_next_to_nothing_else(self) -> None:
        body = converse_body(with_params(top_k=5, temperature=0.3), "us.anthropic.claude-sonnet-4-20250514-v1:0")
        assert body["additionalModelRequestFields"] == {"top_k": 5}
        assert body["inferenceConfig"] == {"temperature": 0.3}

    @pytest.mark.parametrize(("model_id", "claude"), [
        (CLAUDE, True), (PROFILE_ARN, True), ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", True),
        ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", True),
        (LLAMA, False), ("amazon.nova-pro-v1:0", False), ("mistral.mistral-large-2407-v1:0", False), ("", False),
    ])
    def test_is_claude(self, model_id: str, claude: bool) -> None:
        assert is_claude(model_id) is claude

    @pytest.mark.parametrize(("tier", "sent"), [
        ("auto", None), ("default", "default"), ("flex", "flex"), ("priority", "priority"), ("reserved", "reserved"),
    ])
    def test_service_tier(self, tier: str, sent: str | None) -> None:
        body = converse_body(with_params(service_tier=tier), CLAUDE)
        assert body.get("serviceTier") == (None if sent is None else {"type": sent})

    def test_service_tiers_are_the_service_models(self, service_model: Any) -> None:
        tiers = {t for t in SERVICE_TIERS.values() if t is not None}
        assert tiers == set(service_model.shape_for("ServiceTierType").enum)

    def test_response_format_without_name(self) -> None:
        """`strict` has no field: Converse's structured output is always constrained."""
        body = converse_body(with_params(response_format=ResponseFormat("json_schema", WEATHER_SCHEMA, strict=False)))
        assert body["outputConfig"] == {"textFormat": {"type": "json_schema", "structure": {
            "jsonSchema": {"schema": json.dumps(WEATHER_SCHEMA)}}}}

    def test_response_format_needs_a_schema(self) -> None:
        with pytest.raises(UsageError, match=r"response_format.*needs a schema"):
            converse_body(with_params(response_format=ResponseFormat("json_schema", None, "x")), CLAUDE, drop=True)

    def test_response_format_shape_is_the_service_models(self, service_model: Any) -> None:
        fmt = service_model.shape_for("OutputConfig").members["textFormat"]
        assert fmt.members["type"].enum == ["json_schema"]
        definition = fmt.members["structure"].members["jsonSchema"]
        assert definition.members["schema"].type_name == "string"
        assert set(definition.members) == {"schema", "name", "description"}

    def test_defaults_send_nothing(self) -> None:
        """parallel_tool_calls true is Converse's own behaviour; logprobs false asks for nothing;
        empty metadata is no metadata."""
        body = converse_body(with_params(parallel_tool_calls=True, logprobs=False, metadata={}, tools=[TOOL]), LLAMA)
        assert set(body) == {"messages", "toolConfig"}

    @pytest.mark.parametrize(("metadata", "phrase"), [
        ({f"k{i}": "v" for i in range(17)}, "at most 16 pairs, got 17"),
        ({"bad key!": "v"}, "'bad key!'"),
        ({"": "v"}, "got '': 'v'"),
        ({"k": "x" * 257}, "0 to 256"),
        ({"k": "naïve"}, "'naïve'"),
    ])
    def test_metadata_checked_before_sending(self, metadata: dict[str, str], phrase: str) -> None:
        with pytest.raises(UsageError, match=r"^metadata: ") as info:
            BedrockCodec(ENDPOINT, drop_params=True).build_request(with_params(metadata=metadata), CLAUDE)
        assert phrase in str(info.value)

    def test_metadata_at_the_limits(self) -> None:
        metadata = {f"k{i}": "" for i in range(15)} | {"x" * 256: "y" * 256}
        assert converse_body(with_params(metadata=metadata))["requestMetadata"] == metadata

    @pytest.mark.parametrize(("params", "param", "why", "model_id"), REFUSED, ids=[r[1] for r in REFUSED])
    def test_refused(self, params: dict[str, Any], param: str, why: str, model_id: str) -> None:
        with pytest.raises(UsageError) as info:
            BedrockCodec(ENDPOINT).build_request(with_params(**params), model_id)
        message = str(info.value)
        assert f"parameter {param!r} is not supported by Bedrock" in message
        assert why in message
        assert "drop_params = true" in message

    @pytest.mark.parametrize(("params", "param", "why", "model_id"), REFUSED, ids=[r[1] for r in REFUSED])
    def test_dropped(self, params: dict[str, Any], param: str, why: str, model_id: str) -> None:
        spec = BedrockCodec(ENDPOINT, drop_params=True).build_request(with_params(**params), model_id)
        assert spec.dropped == (param,)
        rest = {k: v for k, v in params.items() if k != param}
        assert json.loads(spec.body) == converse_body(with_params(**rest), model_id)

    def test_several_dropped_in_order(self) -> None:
        req = with_params(seed=1, user="u", logprobs=True, top_logprobs=2, top_k=3, service_tier="scale",
                          response_format=ResponseFormat("json_object"), temperature=0.1)
        spec = BedrockCodec(ENDPOINT, drop_params=True).build_request(req, LLAMA)
        assert spec.dropped == ("seed", "user", "top_logprobs", "logprobs", "top_k", "service_tier",
                                "response_format")
        assert json.loads(spec.body) == {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                                         "inferenceConfig": {"temperature": 0.1}}

    def test_request_members_are_known(self, service_model: Any) -> None:
        """Every ConverseStreamRequest member is either sent or has no ChatRequest counterpart
        (guardrails, prompt variables and the like), so the refusals above stay right."""
        members = set(service_model.operation_model("ConverseStream").input_shape.members)
        assert members == {
            "modelId", "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
            "projectIdentifier", "additionalModelRequestFields", "promptVariables",
            "additionalModelResponseFieldPaths", "requestMetadata", "performanceConfig", "serviceTier",
            "outputConfig",
        }
        inference = service_model.shape_for("InferenceConfiguration").members
        assert set(inference) == {"maxTokens", "temperature", "topP", "stopSequences"}


# --- signing ---------------------------------------------------------------------------------


def reference_sigv4(spec: HttpRequestSpec, creds: Credentials, region: str, service: str, amz_date: str) -> str:
    """SigV4 written out from AWS's specification, without botocore."""
    url = urlsplit(spec.url)
    headers = {k.lower(): v.strip() for k, v in spec.headers}
    headers |= {"host": url.netloc, "x-amz-date": amz_date}
    if creds.token:
        headers["x-amz-security-token"] = creds.token
    names = sorted(headers)
    canonical = "\n".join([
        spec.method,
        quote(url.path, safe="/~"),  # non-S3 services encode the (already encoded) path once more
        url.query,
        "".join(f"{n}:{headers[n]}\n" for n in names),
        ";".join(names),
        hashlib.sha256(spec.body).hexdigest(),
    ])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{creds.secret_key}".encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$"
)


class TestSigning:
    SPEC = HttpRequestSpec(
        "POST", f"{ENDPOINT}/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream",
        (("Content-Type", "application/json"),),
        b'{"messages": [{"role": "user", "content": [{"text": "hi"}]}]}',
    )

    def test_known_signature(self, frozen_clock: datetime.datetime) -> None:
        signed = sign_request(self.SPEC, CREDS, "us-east-1")
        headers = dict(signed.headers)
        assert headers["X-Amz-Date"] == "20240501T120000Z"
        assert headers["X-Amz-Security-Token"] == "SESSIONTOKEN"
        m = AUTH.match(headers["Authorization"])
        assert m is not None
        assert m.group("akid", "date", "region", "service") == ("AKIDEXAMPLE", "20240501", "us-east-1", "bedrock")
        assert m["signed"] == "content-type;host;x-amz-date;x-amz-security-token"
        assert m["sig"] == reference_sigv4(self.SPEC, CREDS, "us-east-1", "bedrock", "20240501T120000Z")
        assert m["sig"] == "b5b40378db83548ab89dfe98fcefafa2402960ec52b7bc0435e541eea2c223da"
        assert signed.url == self.SPEC.url and signed.body == self.SPEC.body

    def test_without_session_token(self, frozen_clock: datetime.datetime) -> None:
        creds = ReadOnlyCredentials("AKIDEXAMPLE", "secret", None)
        headers = dict(sign_request(self.SPEC, creds, "eu-west-3").headers)
        assert "X-Amz-Security-Token" not in headers
        m = AUTH.match(headers["Authorization"])
        assert m is not None
        assert m["region"] == "eu-west-3"
        assert m["signed"] == "content-type;host;x-amz-date"
        plain = Credentials("AKIDEXAMPLE", "secret")
        assert m["sig"] == reference_sigv4(self.SPEC, plain, "eu-west-3", "bedrock", "20240501T120000Z")

    def test_resigning_replaces_the_signature(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A retry signed later with other credentials carries no stale date, token or signature."""
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)
        first = sign_request(self.SPEC, CREDS, "us-east-1")
        later = FROZEN + datetime.timedelta(minutes=7)
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: later)
        creds = ReadOnlyCredentials("AKID2", "secret2", None)
        again = sign_request(first, creds, "us-east-1")
        names = [k.lower() for k, _ in again.headers]
        assert sorted(names) == ["authorization", "content-type", "x-amz-date"]
        headers = dict(again.headers)
        assert headers["X-Amz-Date"] == "20240501T120700Z"
        plain = Credentials("AKID2", "secret2")
        assert headers["Authorization"].endswith(
            "Signature=" + reference_sigv4(self.SPEC, plain, "us-east-1", "bedrock", "20240501T120700Z"))

    async def test_signed_by_the_providers_signer(
        self, monkeypatch: pytest.MonkeyPatch, frozen_clock: datetime.datetime
    ) -> None:
        """The codec's request, signed as the service signs each attempt: by the provider's
        `AwsSigner` (through `sign_request`), with its credentials, frozen once per attempt."""
        calls = []
        freeze = Credentials.get_frozen_credentials

        def counted(creds: Credentials) -> ReadOnlyCredentials:
            calls.append(1)
            return freeze(creds)

        monkeypatch.setattr(Credentials, "get_frozen_credentials", counted)
        table = {"kind": "bedrock", "region": "us-west-2", "endpoint_url": "http://127.0.0.1:8123",
                 "aws_access_key_id": CREDS.access_key, "aws_secret_access_key": CREDS.secret_key,
                 "aws_session_token": CREDS.token}
        pc = Config.from_dict({"providers": {"bedrock": table}}).providers["bedrock"]
        assert isinstance(pc, BedrockConfig)
        codec = BedrockCodec("http://127.0.0.1:8123")
        spec = await AwsSigner("bedrock", pc)(codec.build_request(ChatRequest("b/x", [Message("user", "hi")]),
                                                                  "m~tokens=3"))
        assert calls == [1]
        m = AUTH.match(dict(spec.headers)["Authorization"])
        assert m is not None
        # host includes the non-default port, as the transport will send it
        assert m["sig"] == reference_sigv4(
            HttpRequestSpec(spec.method, spec.url, (("Content-Type", "application/json"),), spec.body),
            CREDS, "us-west-2", "bedrock", "20240501T120000Z")


# --- event-stream framing ------------------------------------------------------------------


class TestFrames:
    def test_round_trip_through_botocore(self) -> None:
        frames = [
            ({":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"},
             '{"contentBlockIndex":0,"delta":{"text":"日本語 🎉"},"p":"abc"}'.encode()),
            ({":exception-type": "throttlingException", ":message-type": "exception"}, b'{"message":"slow down"}'),
            ({"x-unicode-ü": "välue ✓"}, b""),
        ]
        buf = EventStreamBuffer()
        buf.add_data(b"".join(fmt.encode_frame(h, p) for h, p in frames))
        decoded = [(m.headers, m.payload) for m in buf]
        assert decoded == frames

    def test_layout(self) -> None:
        frame = fmt.encode_frame({"a": "b"}, b"xyz")
        total, hlen, crc = struct.unpack("!III", frame[:12])
        assert (total, hlen) == (len(frame), 1 + 1 + 1 + 2 + 1) == (25, 6)
        assert crc == zlib.crc32(frame[:8])
        assert frame[12:18] == b"\x01a\x07\x00\x01b"
        assert frame[18:21] == b"xyz"
        assert struct.unpack("!I", frame[21:])[0] == zlib.crc32(frame[:21])

    def test_header_too_long(self) -> None:
        with pytest.raises(ValueError):
            fmt.encode_frame({"x" * 256: "v"}, b"")


# --- decoding: fixtures ----------------------------------------------------------------------


def _pad(n: int) -> str:
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[:n]


# Shaped after a real Claude 3.7 Sonnet ConverseStream reply with thinking and two tool calls.
TOOL_TRANSCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("messageStart", {"p": _pad(9), "role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {
        "text": "The user wants the weather in Paris and Tōkyō. "}}, "p": _pad(20)}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {
        "text": "I'll call get_weather once per city."}}, "p": _pad(3)}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {
        "signature": "EqoBCkgIARABGAIiQL2nZmF0ZXN0IHNpZ25hdHVyZQ=="}}, "p": _pad(33)}),
    ("contentBlockStop", {"contentBlockIndex": 0, "p": _pad(41)}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Je vérifie la météo à Paris"}, "p": _pad(7)}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": " et à 東京 🌤️."}, "p": _pad(18)}),
    ("contentBlockStop", {"contentBlockIndex": 1, "p": _pad(12)}),
    ("contentBlockStart", {"contentBlockIndex": 2, "p": _pad(5), "start": {"toolUse": {
        "name": "get_weather", "toolUseId": "tooluse_kXqUaJ2lNe2Ez7IPnL3D8Q"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": ""}}, "p": _pad(30)}),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"city": "Par'}}, "p": _pad(2)}),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": 'is"}'}}, "p": _pad(26)}),
    ("contentBlockStop", {"contentBlockIndex": 2, "p": _pad(50)}),
    ("contentBlockStart", {"contentBlockIndex": 3, "p": _pad(15), "start": {"toolUse": {
        "name": "get_weather", "toolUseId": "tooluse_9cR2mWvTQmG0yH1bZ7a4Lw"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 3, "delta": {"toolUse": {"input": '{"city": "東京"}'}}, "p": _pad(8)}),
    ("contentBlockStop", {"contentBlockIndex": 3, "p": _pad(1)}),
    ("messageStop", {"p": _pad(22), "stopReason": "tool_use"}),
    ("metadata", {"metrics": {"latencyMs": 2310}, "p": _pad(4),
                  "usage": {"inputTokens": 412, "outputTokens": 187, "totalTokens": 599}}),
]

# Plain text cut short by maxTokens, with a cached prompt: usage counts the cache reads.
LENGTH_TRANSCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("messageStart", {"p": _pad(30), "role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Once upon a time, a naïve robot"}, "p": _pad(9)}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " named Ωmega set out ✓"}, "p": _pad(27)}),
    ("contentBlockStop", {"contentBlockIndex": 0, "p": _pad(3)}),
    ("messageStop", {"p": _pad(14), "stopReason": "max_tokens"}),
    ("metadata", {"metrics": {"latencyMs": 640}, "p": _pad(44), "usage": {
        "cacheReadInputTokens": 1200, "cacheWriteInputTokens": 0, "inputTokens": 12, "outputTokens": 16,
        "totalTokens": 1228}}),
]

TRANSCRIPTS = {"bedrock_thinking_tools": TOOL_TRANSCRIPT, "bedrock_max_tokens": LENGTH_TRANSCRIPT}


def encode_transcript(transcript: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(event_frame(name, payload) for name, payload in transcript)


def load_fixture(name: str) -> tuple[bytes, list[dict[str, Any]]]:
    return (FIXTURES / f"{name}.bin").read_bytes(), json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))


@pytest.mark.parametrize("name", sorted(TRANSCRIPTS))
class TestFixtures:
    def test_fixture_bytes_come_from_the_transcripts(self, name: str) -> None:
        assert load_fixture(name)[0] == encode_transcript(TRANSCRIPTS[name])

    def test_every_split_gives_the_same_events(self, name: str) -> None:
        data, expected = load_fixture(name)
        assert as_dicts(decode(data)) == expected
        for cut in range(len(data) + 1):
            assert as_dicts(decode(data, cut)) == expected, cut
        assert as_dicts(decode(data, *range(1, len(data)))) == expected  # one byte at a time

    def test_truncated_anywhere_before_message_stop(self, name: str) -> None:
        data, expected = load_fixture(name)
        stop_end = len(data) - len(event_frame(*TRANSCRIPTS[name][-1]))
        for cut in range(stop_end):
            dec = BedrockStreamDecoder()
            feed(dec, data[:cut])
            with pytest.raises(WireError, match="ended before its terminator") as info:
                close(dec)
            assert info.value.kind == "protocol"
        for cut in range(stop_end, len(data)):  # metadata missing or cut: finish, no usage
            dec = BedrockStreamDecoder()
            events = feed(dec, data[:cut]) + close(dec)
            assert as_dicts(events) == [e for e in expected if e["type"] != "usage"]


def test_tool_transcript_positions() -> None:
    """Tool calls are numbered by their position among tool calls, not by contentBlockIndex."""
    events = decode(load_fixture("bedrock_thinking_tools")[0])
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.index, c.id) for c in calls if c.id] == [
        (0, "tooluse_kXqUaJ2lNe2Ez7IPnL3D8Q"), (1, "tooluse_9cR2mWvTQmG0yH1bZ7a4Lw")]
    assert "".join(c.arguments for c in calls if c.index == 0) == '{"city": "Paris"}'
    assert "".join(c.arguments for c in calls if c.index == 1) == '{"city": "東京"}'


# --- decoding: malformed and failing streams ---------------------------------------------------


class TestMalformed:
    def test_bad_message_crc(self) -> None:
        frame = bytearray(event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}))
        frame[-8] ^= 0x01  # a payload byte
        with pytest.raises(WireError, match="Checksum mismatch") as info:
            feed(BedrockStreamDecoder(), bytes(frame))
        assert info.value.kind == "protocol"

    def test_bad_prelude_crc(self) -> None:
        frame = bytearray(event_frame("messageStart", {"role": "assistant"}))
        frame[3] ^= 0x01  # the total length
        with pytest.raises(WireError, match="prelude checksum") as info:
            feed(BedrockStreamDecoder(), bytes(frame[:12]))
        assert info.value.kind == "protocol"

    def test_absurd_length_rejected_from_the_prelude_alone(self) -> None:
        head = struct.pack("!II", 3_000_000_000, 50)
        prelude = head + struct.pack("!I", zlib.crc32(head))
        dec = BedrockStreamDecoder()
        assert feed(dec, prelude[:11]) == []
        with pytest.raises(WireError, match="larger than max_event_bytes") as info:
            feed(dec, prelude[11:])
        assert info.value.kind == "protocol"

    def test_max_event_bytes(self) -> None:
        frame = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x" * 100}})
        assert feed(BedrockStreamDecoder(max_event_bytes=len(frame)), frame) == [TextEvent("x" * 100)]
        with pytest.raises(WireError, match="larger than max_event_bytes"):
            feed(BedrockStreamDecoder(max_event_bytes=len(frame) - 1), frame)

    def test_botocore_limits_apply_from_the_prelude(self) -> None:
        """Past botocore's own 24 MiB payload limit, its InvalidPayloadLength becomes a WireError."""
        head = struct.pack("!II", 30 * 1024 * 1024, 0)
        dec = BedrockStreamDecoder(max_event_bytes=64 * 1024 * 1024)
        with pytest.raises(WireError, match="InvalidPayloadLength") as info:
            feed(dec, head + struct.pack("!I", zlib.crc32(head)))
        assert info.value.kind == "protocol"

    def test_lengths_that_cannot_hold_the_headers(self) -> None:
        head = struct.pack("!II", 20, 10)
        with pytest.raises(WireError, match="malformed event-stream prelude"):
            feed(BedrockStreamDecoder(), head + struct.pack("!I", zlib.crc32(head)))

    def test_bad_header_type(self) -> None:
        frame = bytearray(fmt.encode_frame({"a": "b"}, b"{}"))
        frame[14] = 42  # the header value type
        frame[-4:] = struct.pack("!I", zlib.crc32(bytes(frame[:-4])))
        with pytest.raises(WireError, match="malformed event-stream message"):
            feed(BedrockStreamDecoder(), bytes(frame))

    def test_invalid_json(self) -> None:
        headers = {":event-type": "contentBlockDelta", ":message-type": "event"}
        with pytest.raises(WireError, match="invalid JSON") as info:
            feed(BedrockStreamDecoder(), fmt.encode_frame(headers, b'{"delta": {'))
        assert info.value.kind == "protocol"

    def test_invalid_utf8_is_replaced_and_flagged(self) -> None:
        headers = {":event-type": "contentBlockDelta", ":message-type": "event"}
        dec = BedrockStreamDecoder()
        assert feed(dec, fmt.encode_frame(headers, b'{"delta": {"text": "a\xffb"}}')) == [TextEvent("a\ufffdb")]
        assert dec.invalid_utf8

    def test_missing_message_type(self) -> None:
        with pytest.raises(WireError, match=":message-type"):
            feed(BedrockStreamDecoder(), fmt.encode_frame({":event-type": "messageStart"}, b"{}"))

    def test_tool_input_without_start(self) -> None:
        frame = event_frame("contentBlockDelta", {"contentBlockIndex": 4, "delta": {"toolUse": {"input": "{}"}}})
        with pytest.raises(WireError, match="never started"):
            feed(BedrockStreamDecoder(), frame)

    def test_unknown_events_are_recorded(self) -> None:
        dec = BedrockStreamDecoder()
        data = b"".join([
            event_frame("futureEvent", {}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"image": {"source": {}}}}),
            event_frame("contentBlockStart", {"contentBlockIndex": 1, "start": {"image": {}}}),
            event_frame("messageStop", {"stopReason": "brand_new_reason"}),
        ])
        assert feed(dec, data) == []
        assert close(dec) == [FinishEvent("stop")]
        assert dec.unknown_events == {
            "futureEvent", "contentBlockDelta:image", "contentBlockStart:image", "messageStop:brand_new_reason"}
        assert dec.model is None

    @pytest.mark.parametrize(("stop", "reason"), [
        ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
        ("content_filtered", "content_filter"), ("guardrail_intervened", "content_filter"),
        ("model_context_window_exceeded", "length"), ("malformed_tool_use", "error"),
    ])
    def test_stop_reasons(self, stop: str, reason: str) -> None:
        data = event_frame("messageStop", {"stopReason": stop}) + event_frame("metadata", {"usage": {}})
        assert feed(BedrockStreamDecoder(), data) == [UsageEvent(None, None), FinishEvent(reason)]

    def test_bytes_after_the_end_are_ignored(self) -> None:
        data = event_frame("messageStop", {"stopReason": "end_turn"}) + event_frame("metadata", {"usage": {}})
        dec = BedrockStreamDecoder()
        assert feed(dec, data + b"trailing garbage")[-1] == FinishEvent("stop")
        assert feed(dec, b"more") == []
        assert close(dec) == []


class TestExceptions:
    @pytest.mark.parametrize(("etype", "status", "retryable"), [
        ("throttlingException", 429, True),
        ("modelStreamErrorException", 424, True),
        ("validationException", 400, False),
        ("internalServerException", 500, True),
        ("serviceUnavailableException", 503, True),
        ("accessDeniedException", 403, False),
        ("someNewException", None, True),
    ])
    def test_exception_frame(self, etype: str, status: int | None, retryable: bool) -> None:
        with pytest.raises(WireError) as info:
            feed(BedrockStreamDecoder(), exception_frame(etype, {"message": f"{etype} happened"}))
        err = info.value
        assert (err.kind, err.status, err.retryable, err.error_type) == ("upstream", status, retryable, etype)
        assert err.message == f"{etype} happened"

    def test_capitalized_message_and_non_json_payload(self) -> None:
        with pytest.raises(WireError, match=r"^Too many tokens$"):
            feed(BedrockStreamDecoder(), exception_frame("throttlingException", {"Message": "Too many tokens"}))
        headers = {":exception-type": "internalServerException", ":message-type": "exception"}
        with pytest.raises(WireError, match=r"^oops$"):
            feed(BedrockStreamDecoder(), fmt.encode_frame(headers, b"oops"))

    def test_error_message_type(self) -> None:
        headers = {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "try again"}
        with pytest.raises(WireError, match="try again") as info:
            feed(BedrockStreamDecoder(), fmt.encode_frame(headers, b""))
        assert (info.value.kind, info.value.error_type, info.value.retryable) == ("upstream", "InternalFailure", True)

    def test_events_before_an_exception_survive_any_split(self) -> None:
        """Events completed in the same read as the exception come out first, and the error
        is raised by that same read: no later read is needed to hear of it."""
        data = b"".join([
            event_frame("messageStart", {"role": "assistant"}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "partial "}}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "reply"}}),
            exception_frame("modelStreamErrorException", {"message": "Model stream error", "originalStatusCode": 529}),
        ])
        for cut in range(len(data) + 1):
            dec = BedrockStreamDecoder()
            events: list[StreamEvent] = []
            fed = 0
            with pytest.raises(WireError, match="Model stream error") as info:
                for piece in (data[:cut], data[cut:]):
                    fed += 1
                    dec.feed_into(piece, events)
            # The read that completed the exception frame raised: the second, unless it was empty.
            assert fed == (1 if cut == len(data) else 2), cut
            assert events == [TextEvent("partial "), TextEvent("reply")], cut
            assert info.value.status == 424
            with pytest.raises(WireError):  # sticky
                close(dec)
            with pytest.raises(WireError):
                dec.feed_into(b"", [])


# --- usage details and citations -------------------------------------------------------------


def _every_split(data: bytes) -> list[StreamEvent]:
    """The events of `data`, checked to be the same whole, cut at every offset and byte by byte."""
    events = decode(data)
    for cut in range(len(data) + 1):
        assert decode(data, cut) == events, cut
    assert decode(data, *range(1, len(data))) == events
    return events


def _end(usage: dict[str, Any], stop: str = "end_turn") -> bytes:
    return event_frame("messageStop", {"stopReason": stop}) + event_frame(
        "metadata", {"metrics": {"latencyMs": 5}, "usage": usage})


WEB_CITATION = {
    "title": "Renewable energy - Wikipedia",
    "sourceContent": [{"text": "Solar power is the "}, {"text": "fastest-growing source."}],
    "location": {"web": {"url": "https://en.wikipedia.org/wiki/Renewable_energy", "domain": "en.wikipedia.org"}},
}
DOCUMENT_CITATION = {
    "title": "report.pdf",
    "sourceContent": [{"text": "Revenue rose 12%."}],
    "location": {"documentChar": {"documentIndex": 0, "start": 120, "end": 137}},
}


class TestUsageDetails:
    def test_cache_reads_and_writes_count_in_the_input(self) -> None:
        """`inputTokens` leaves the cached tokens out; input_tokens is the total (LiteLLM's rule)."""
        usage = {"cacheReadInputTokens": 1200, "cacheWriteInputTokens": 30, "inputTokens": 12, "outputTokens": 16,
                 "totalTokens": 1258}
        events = _every_split(event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}})
                              + _end(usage))
        assert events == [TextEvent("hi"), UsageEvent(1242, 16, 1200, 30, None), FinishEvent("stop")]

    def test_without_cache_fields_they_are_none(self) -> None:
        events = _every_split(_end({"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}))
        assert events == [UsageEvent(7, 3, None, None, None), FinishEvent("stop")]

    def test_zero_is_kept_and_one_field_alone(self) -> None:
        events = decode(_end({"cacheWriteInputTokens": 0, "inputTokens": 7, "outputTokens": 3, "totalTokens": 10}))
        assert events[0] == UsageEvent(7, 3, None, 0, None)
        events = decode(_end({"cacheReadInputTokens": 5, "inputTokens": 7, "outputTokens": 3, "totalTokens": 15}))
        assert events[0] == UsageEvent(12, 3, 5, None, None)

    def test_reasoning_tokens_are_never_reported(self) -> None:
        """Converse has no reasoning count: reasoning is inside outputTokens."""
        data = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {
            "text": "hmm"}}}) + _end({"inputTokens": 7, "outputTokens": 300, "totalTokens": 307})
        assert decode(data)[-2] == UsageEvent(7, 300, None, None, None)

    def test_wrong_type_is_a_protocol_error(self) -> None:
        with pytest.raises(WireError, match=r"usage\.cacheReadInputTokens is str") as info:
            feed(BedrockStreamDecoder(), _end({"cacheReadInputTokens": "5", "inputTokens": 7, "outputTokens": 3}))
        assert info.value.kind == "protocol"


class TestCitations:
    def test_one_event_each_in_order_none_lost_at_the_end(self) -> None:
        """Each `citation` delta is one citation, emitted as it comes; the last one arrives in
        the same read as messageStop and metadata and still comes out, before usage and finish."""
        data = b"".join([
            event_frame("messageStart", {"role": "assistant"}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Solar leads."}}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"citation": WEB_CITATION}}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " Revenue rose."}}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"citation": DOCUMENT_CITATION}}),
            event_frame("contentBlockStop", {"contentBlockIndex": 0}),
            _end({"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}),
        ])
        events = _every_split(data)
        assert events == [
            TextEvent("Solar leads."),
            CitationEvent(Citation("https://en.wikipedia.org/wiki/Renewable_energy", "Renewable energy - Wikipedia",
                                   "Solar power is the fastest-growing source.")),
            TextEvent(" Revenue rose."),
            CitationEvent(Citation(None, "report.pdf", "Revenue rose 12%.")),  # a document location has no URL
            UsageEvent(7, 3),
            FinishEvent("stop"),
        ]

    def test_sparse_citation(self) -> None:
        frame = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"citation": {
            "location": {"web": {"domain": "example.org"}}, "sourceContent": []}}})
        assert feed(BedrockStreamDecoder(), frame) == [CitationEvent(Citation(None, None, None))]

    @pytest.mark.parametrize(("citation", "match"), [
        ({"title": 3}, "delta.citation.title is int"),
        ({"sourceContent": {"text": "x"}}, "delta.citation.sourceContent is dict"),
        ({"sourceContent": ["x"]}, "sourceContent holds a str"),
        ({"sourceContent": [{"text": 1}]}, "sourceContent.text is int"),
        ({"location": {"web": {"url": ["u"]}}}, "location.web.url is list"),
        ("just text", "delta.citation is str"),
    ])
    def test_malformed_citation(self, citation: Any, match: str) -> None:
        frame = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"citation": citation}})
        with pytest.raises(WireError, match=match) as info:
            feed(BedrockStreamDecoder(), frame)
        assert info.value.kind == "protocol"

    def test_field_names_are_the_service_models(self, service_model: Any) -> None:
        members = service_model.shape_for("TokenUsage").members
        assert {"inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"} <= set(members)
        assert "citation" in service_model.shape_for("ContentBlockDelta").members
        delta = service_model.shape_for("CitationsDelta").members
        assert {"title", "sourceContent", "location"} <= set(delta)
        assert "text" in delta["sourceContent"].member.members
        assert "url" in delta["location"].members["web"].members


# --- the fake upstream's format ------------------------------------------------------------


def _texts(events: list[StreamEvent], cls: type[TextEvent] | type[ReasoningEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, cls))


class TestFakeFormat:
    def test_plain_scenario(self) -> None:
        sc = Scenario(model="anthropic.claude-3-haiku-20240307-v1:0", tokens=7, tokens_per_chunk=2)
        events = decode(rendered(sc))
        assert _texts(events, TextEvent) == "".join(token_text(i) for i in range(7))
        assert events[-2:] == [UsageEvent(10, 7), FinishEvent("stop")]

    def test_reasoning_tools_unicode(self) -> None:
        sc = Scenario(tokens=5, reasoning=3, tool_calls=2, unicode=True)
        data = rendered(sc)
        events = decode(data)
        assert _texts(events, ReasoningEvent) == "".join(token_text(i, True) for i in range(3))
        assert _texts(events, TextEvent) == "".join(token_text(i, True) for i in range(5))
        calls = [e for e in events if isinstance(e, ToolCallEvent)]
        assert [(c.index, c.id, c.name) for c in calls if c.id] == [
            (0, "tooluse_call_0000", "get_weather"), (1, "tooluse_call_0001", "get_weather")]
        for pos in (0, 1):
            args = json.loads("".join(c.arguments for c in calls if c.index == pos))
            assert args == {"city": f"Paris {pos}", "units": "celsius", "days": pos + 1}
        assert events[-2:] == [UsageEvent(10, 8), FinishEvent("tool_calls")]
        for cut in range(0, len(data), 7):
            assert decode(data, cut) == events

    def test_cache_reasoning_and_citations(self) -> None:
        """Cached tokens are reported apart from inputTokens (and counted back in), citations
        come as `citation` deltas, one event each, in order, before usage and finish."""
        sc = Scenario(tokens=5, reasoning=3, cache_read=40, cache_write=8, citations=2, input_tokens=100)
        data = rendered(sc)
        events = decode(data)
        assert _texts(events, ReasoningEvent) == "".join(token_text(i) for i in range(3))
        assert _texts(events, TextEvent) == "".join(token_text(i) for i in range(5))
        assert events[-4:] == [CitationEvent(Citation(c.url, c.title, c.cited_text))
                               for c in map(citation_for, range(2))] + [
            UsageEvent(100, 8, 40, 8, None), FinishEvent("stop")]
        for cut in range(len(data) + 1):
            assert decode(data, cut) == events, cut
        buf = EventStreamBuffer()
        buf.add_data(data)
        payloads = {m.headers[":event-type"]: json.loads(m.payload) for m in buf}
        assert payloads["metadata"]["usage"] == {"cacheReadInputTokens": 40, "cacheWriteInputTokens": 8,
                                                 "inputTokens": 52, "outputTokens": 8, "totalTokens": 108}

    def test_citations_after_tool_calls_and_cache_read_alone(self) -> None:
        sc = Scenario(tokens=1, tool_calls=1, cache_read=40, citations=1)
        events = decode(rendered(sc))
        cite = citation_for(0)
        assert events[-3:] == [CitationEvent(Citation(cite.url, cite.title, cite.cited_text)),
                               UsageEvent(10, 1, 40, 0, None), FinishEvent("tool_calls")]

    def test_no_cache_fields_without_cache(self) -> None:
        buf = EventStreamBuffer()
        buf.add_data(rendered(Scenario(tokens=2)))
        usage = [json.loads(m.payload) for m in buf][-1]["usage"]
        assert usage == {"inputTokens": 10, "outputTokens": 2, "totalTokens": 12}

    def test_botocore_parses_every_field(self, service_model: Any) -> None:
        """botocore's own event-stream parser, which keeps only the members its service model
        defines, gives back each payload whole (less the padding): every name is the model's."""
        data = rendered(Scenario(tokens=2, reasoning=1, tool_calls=1, cache_read=4, cache_write=2, citations=2))

        class Body:
            def stream(self) -> Iterator[bytes]:
                yield data

        shape = service_model.operation_model("ConverseStream").output_shape.members["stream"]
        parsed = list(botocore.eventstream.EventStream(
            Body(), shape, botocore.parsers.EventStreamJSONParser(), "ConverseStream"))
        buf = EventStreamBuffer()
        buf.add_data(data)
        raw = [{m.headers[":event-type"]: {k: v for k, v in json.loads(m.payload).items() if k != "p"}} for m in buf]
        assert parsed == raw
        assert sum("citation" in e.get("contentBlockDelta", {}).get("delta", {}) for e in parsed) == 2

    def test_frames_look_like_bedrocks(self) -> None:
        buf = EventStreamBuffer()
        buf.add_data(rendered(Scenario(tokens=1)))
        messages = list(buf)
        assert [m.headers[":event-type"] for m in messages] == [
            "messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
        for m in messages:
            assert m.headers[":content-type"] == "application/json"
            assert m.headers[":message-type"] == "event"
            assert isinstance(json.loads(m.payload)["p"], str)

    @pytest.mark.parametrize("finish", ["length", "content_filter"])
    def test_finish(self, finish: str) -> None:
        assert decode(rendered(Scenario(tokens=2, finish=finish)))[-1] == FinishEvent(finish)

    def test_midstream_error(self) -> None:
        data = rendered(Scenario(tokens=10, fail="midstream", fail_at=4))
        dec = BedrockStreamDecoder()
        with pytest.raises(WireError) as info:
            for cut in range(0, len(data), 5):
                feed(dec, data[cut : cut + 5])
        assert (info.value.kind, info.value.error_type, info.value.status) == (
            "upstream", "modelStreamErrorException", 424)

    def test_truncated_scenario(self) -> None:
        dec = BedrockStreamDecoder()
        feed(dec, rendered(Scenario(tokens=3, fail="truncate", fail_at=2)))
        with pytest.raises(WireError, match="ended before its terminator"):
            close(dec)

    def test_garbage_scenario(self) -> None:
        with pytest.raises(WireError, match="prelude checksum"):
            decode(rendered(Scenario(tokens=3, fail="garbage", fail_at=1)))

    def test_route(self) -> None:
        route = route_request("/model/anthropic.claude-3-haiku-20240307-v1%3A0~tokens%3D3/converse-stream", {})
        assert route is not None
        assert route[0] is fmt and route[1] == "anthropic.claude-3-haiku-20240307-v1:0~tokens=3"
        arn = route_request("/model/" + quote(PROFILE_ARN, safe="") + "/converse-stream", {})
        assert arn is not None and arn[1] == PROFILE_ARN

    def test_error_body(self) -> None:
        assert fmt.error_body(429, "Too many requests") == b'{"message":"Too many requests"}'
        assert fmt.CONTENT_TYPE == "application/vnd.amazon.eventstream"


def _write_fixtures() -> Iterator[Path]:
    for name, transcript in TRANSCRIPTS.items():
        path = FIXTURES / f"{name}.bin"
        path.write_bytes(encode_transcript(transcript))
        yield path


if __name__ == "__main__":
    for written in _write_fixtures():
        print("wrote", written)
