"""What goes over the wire for every provider kind, as the fake upstream recorded it.

The expected requests are what each provider's official SDK sends for the same
conversation (system prompt, tools, an assistant turn with two tool calls, two tool
results), captured from the SDKs themselves against a recording server:

- Azure, xAI, OpenRouter, Groq, Perplexity, OpenAI-compatible: openai-python 3.54
  (`AzureOpenAI` for Azure): the same path, auth header and JSON body (key order aside).
- Gemini API and Vertex Gemini: google-genai 3.4: the same body (contents, systemInstruction,
  tools, toolConfig, generationConfig; `thinkingConfig` in snake_case). Two deliberate
  differences: this library sends the tool's JSON Schema as given under `parameters`
  (the SDK converts a dict to its Schema type, with upper-case type names), and the API
  versions are the ones issue 3 asks for (`v1beta` for the Gemini API, `v1` for Vertex;
  google-genai 3.4 picks `v1` and `v1beta1`).
- Vertex Claude: anthropic-sdk-python's `AnthropicVertex`: the same `:streamRawPredict` URL,
  bearer token, and Messages body without `model`. `anthropic_version` is
  "vertex-2023-10-16" as Google documents it (anthropic 2.12 sends its own API version there).
- Bedrock: botocore's own `bedrock-runtime` client, run here with the same clock and
  credentials: byte-identical URL, body and SigV4 `Authorization` header.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import botocore.auth
import botocore.session
import pytest
from test_providers_e2e import (
    AWS_KEY_ID,
    AWS_SECRET,
    AZURE_KEY,
    COMPAT_KEY,
    GEMINI_KEY,
    GROQ_KEY,
    OPENROUTER_KEY,
    PERPLEXITY_KEY,
    SECRETS,
    VERTEX_TOKEN,
    XAI_KEY,
    cloud_table,
)

from conftest import LogCapture
from streamactors import Config, ConfigError, ProviderError, open_service
from streamactors.providers.kinds import build_codec
from streamactors.request_dict import request_from_dict
from streamactors.testing import FakeUpstream
from test_service_requests import CONVERSATION


@pytest.fixture
def logs() -> LogCapture:
    return LogCapture(SECRETS)


async def send(fake: FakeUpstream, logs: LogCapture, provider: str, model_id: str, request: dict[str, Any],
               table: dict[str, Any] | None = None, *, fails: bool = False) -> Any:
    """Complete `request` through `provider` (configured against the fake); return what the fake received."""
    providers = {provider: {**cloud_table(fake)[provider], **(table or {})}}
    async with open_service(Config.from_dict({"providers": providers}), logger=logs.logger) as service:
        if fails:
            with pytest.raises(ProviderError):
                await service.complete({"model": f"{provider}/{model_id}", **request})
        else:
            await service.complete({"model": f"{provider}/{model_id}", **request})
    return fake.requests[-1]


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

# --- the OpenAI family ------------------------------------------------------------------------


def openai_sdk_body(model: str | None, max_tokens_field: str) -> dict[str, Any]:
    """What openai-python sends for CONVERSATION (`stream=True, stream_options={"include_usage": True}`)."""
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
        ],
        max_tokens_field: 256,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.5,
        "tool_choice": "auto",
        "tools": [{"type": "function",
                   "function": {"name": "get_weather", "description": "Current weather", "parameters": SCHEMA}}],
    }
    if model is not None:
        body["model"] = model
    return body


def assert_json_post(req: Any) -> None:
    assert req.method == "POST"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "application/json"
    assert int(req.headers["content-length"]) == len(req.body)


@pytest.mark.parametrize(
    ("provider", "model", "path", "key"),
    [
        ("xai", "grok-4", "/v1/chat/completions", XAI_KEY),
        ("openrouter", "openai/gpt-4o", "/api/v1/chat/completions", OPENROUTER_KEY),
        ("openai_compatible", "llama3.1:8b", "/compat/v1/chat/completions", COMPAT_KEY),
        ("groq", "llama-3.3-70b-versatile", "/openai/v1/chat/completions", GROQ_KEY),
        ("perplexity", "sonar-pro", "/chat/completions", PERPLEXITY_KEY),
    ],
)
async def test_openai_family_request(provider: str, model: str, path: str, key: str, fake: FakeUpstream,
                                     logs: LogCapture) -> None:
    """Bearer key, `{base_url}/chat/completions`, the openai SDK's body with `max_tokens`."""
    req = await send(fake, logs, provider, model, CONVERSATION)
    assert_json_post(req)
    assert req.target == path
    assert req.headers["authorization"] == f"Bearer {key}"
    assert "api-key" not in req.headers and "http-referer" not in req.headers and "x-title" not in req.headers
    assert req.json() == openai_sdk_body(model, "max_tokens")


async def test_openrouter_attribution_headers(fake: FakeUpstream, logs: LogCapture) -> None:
    """`http_referer` and `x_title` travel as OpenRouter's `HTTP-Referer` and `X-Title` headers."""
    table = {"http_referer": "https://example.com/my-app", "x_title": "My App"}
    req = await send(fake, logs, "openrouter", "anthropic/claude-sonnet-4", CONVERSATION, table)
    assert req.headers["http-referer"] == "https://example.com/my-app"
    assert req.headers["x-title"] == "My App"
    assert req.headers["authorization"] == f"Bearer {OPENROUTER_KEY}"
    assert req.json() == openai_sdk_body("anthropic/claude-sonnet-4", "max_tokens")


async def test_openai_compatible_without_key_sends_no_auth(fake: FakeUpstream, logs: LogCapture) -> None:
    """A local server (vLLM, Ollama) needs no key: no Authorization header at all."""
    providers = cloud_table(fake)
    table = {k: v for k, v in providers["openai_compatible"].items() if k != "api_key"}
    async with open_service(Config.from_dict({"providers": {"local": table}}), logger=logs.logger) as service:
        await service.complete({"model": "local/qwen2.5:7b", "messages": [{"role": "user", "content": "hi"}]})
    req = fake.requests[-1]
    assert req.target == "/compat/v1/chat/completions"
    assert "authorization" not in req.headers
    assert req.json()["model"] == "qwen2.5:7b"


async def test_azure_request(fake: FakeUpstream, logs: LogCapture) -> None:
    """The deployment is in the path, `api-version` in the query, the key in `api-key`.

    `AzureOpenAI` sends the same path and header, and keeps `model` in the body too."""
    req = await send(fake, logs, "azure", "my-gpt4o", CONVERSATION)
    assert_json_post(req)
    assert req.target == "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
    assert req.headers["api-key"] == AZURE_KEY
    assert "authorization" not in req.headers
    assert req.json() == openai_sdk_body("my-gpt4o", "max_completion_tokens")


async def test_azure_ad_token_and_api_version(fake: FakeUpstream, logs: LogCapture) -> None:
    """With `azure_ad_token` (and no key) the token is a bearer token; `api_version` is configurable."""
    table = {k: v for k, v in cloud_table(fake)["azure"].items() if k != "api_key"}
    table.update(azure_ad_token="eyJ0eXAi.test-AAD-token", api_version="2025-04-01-preview")
    async with open_service(Config.from_dict({"providers": {"azure": table}}), logger=logs.logger) as service:
        await service.complete({"model": "azure/prod gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    req = fake.requests[-1]
    assert req.target == "/openai/deployments/prod%20gpt-4o/chat/completions?api-version=2025-04-01-preview"
    assert req.headers["authorization"] == "Bearer eyJ0eXAi.test-AAD-token"
    assert "api-key" not in req.headers


# --- Gemini and Vertex ----------------------------------------------------------------------------

GEMINI_BODY = {
    "contents": [
        {"parts": [{"text": "Weather in Paris and Rome?"}], "role": "user"},
        {
            "parts": [
                {"functionCall": {"args": {"city": "Paris"}, "name": "get_weather"}},
                {"functionCall": {"args": {"city": "Rome"}, "name": "get_weather"}},
            ],
            "role": "model",
        },
        {
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": "18C"}}},
                {"functionResponse": {"name": "get_weather", "response": {"result": "24C"}}},
            ],
            "role": "user",
        },
    ],
    "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
    "tools": [{"functionDeclarations": [{"description": "Current weather", "name": "get_weather",
                                         "parameters": SCHEMA}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    "generationConfig": {"temperature": 0.5, "maxOutputTokens": 256},
}


async def test_gemini_request(fake: FakeUpstream, logs: LogCapture) -> None:
    req = await send(fake, logs, "gemini", "gemini-2.5-flash", CONVERSATION)
    assert_json_post(req)
    assert req.target == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert req.headers["x-goog-api-key"] == GEMINI_KEY
    assert "authorization" not in req.headers
    body = req.json()
    assert body == GEMINI_BODY
    assert list(body) == list(GEMINI_BODY)  # google-genai's key order


async def test_gemini_thinking_config_and_api_version(fake: FakeUpstream, logs: LogCapture) -> None:
    """Reasoning maps to `thinkingConfig` (snake_case inside, as google-genai sends it);
    `api_version` picks the path's version; `tunedModels/...` ids are used as they are."""
    request = {"messages": [{"role": "user", "content": "hi"}], "top_p": 0.9, "stop": ["END"],
               "reasoning": {"effort": "low"}}
    req = await send(fake, logs, "gemini", "gemini-2.5-flash", request, {"api_version": "v1"})
    assert req.target == "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert req.json() == {
        "contents": [{"parts": [{"text": "hi"}], "role": "user"}],
        "generationConfig": {"topP": 0.9, "stopSequences": ["END"],
                             "thinkingConfig": {"include_thoughts": True, "thinking_budget": 1024}},
    }
    # The fake upstream serves no tuned models: it records the request, then answers 404.
    req = await send(fake, logs, "gemini", "tunedModels/my-tuned-1", request, fails=True)
    assert req.target == "/v1beta/tunedModels/my-tuned-1:streamGenerateContent?alt=sse"


async def test_vertex_gemini_request(fake: FakeUpstream, logs: LogCapture) -> None:
    req = await send(fake, logs, "vertex", "gemini-2.5-pro", CONVERSATION)
    assert_json_post(req)
    assert req.target == (
        "/v1/projects/test-project/locations/us-central1/publishers/google/models/"
        "gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    assert req.headers["authorization"] == f"Bearer {VERTEX_TOKEN}"
    assert "x-goog-api-key" not in req.headers
    assert req.json() == GEMINI_BODY


async def test_vertex_claude_request(fake: FakeUpstream, logs: LogCapture) -> None:
    """Claude on Vertex: `publishers/anthropic/...:streamRawPredict`, a bearer token, the Messages
    body without `model` and with `anthropic_version`; no `x-api-key`, no `anthropic-version` header."""
    req = await send(fake, logs, "vertex", "claude-sonnet-4@20250514", CONVERSATION)
    assert_json_post(req)
    assert req.target == (
        "/v1/projects/test-project/locations/us-central1/publishers/anthropic/models/"
        "claude-sonnet-4@20250514:streamRawPredict"
    )
    assert req.headers["authorization"] == f"Bearer {VERTEX_TOKEN}"
    assert "x-api-key" not in req.headers and "anthropic-version" not in req.headers
    assert req.json() == {
        "anthropic_version": "vertex-2023-10-16",
        "max_tokens": 256,
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "24C"},
                ],
            },
        ],
        "stream": True,
        "system": "Be brief.",
        "temperature": 0.5,
        "tool_choice": {"type": "auto"},
        "tools": [{"name": "get_weather", "description": "Current weather", "input_schema": SCHEMA}],
    }


# --- Bedrock -----------------------------------------------------------------------------------------

BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
BEDROCK_ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0"
FROZEN = datetime.datetime(2025, 3, 14, 15, 9, 26)

# What CONVERSATION is in the Converse API, written as a boto3 user writes it.
CONVERSE_KWARGS: dict[str, Any] = {
    "messages": [
        {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]},
        {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "call_2", "name": "get_weather", "input": {"city": "Rome"}}},
        ]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}},
            {"toolResult": {"toolUseId": "call_2", "content": [{"text": "24C"}]}},
        ]},
    ],
    "system": [{"text": "Be brief."}],
    "inferenceConfig": {"maxTokens": 256, "temperature": 0.5},
    "toolConfig": {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Current weather",
                                "inputSchema": {"json": SCHEMA}}}],
        "toolChoice": {"auto": {}},
    },
}


class _Captured(Exception):
    """Raised from botocore's before-send hook: carries the prepared request, sends nothing."""


def _capture(**kwargs: Any) -> None:
    raise _Captured(kwargs["request"])


def botocore_converse_stream(endpoint_url: str, model_id: str, token: str | None = None,
                             **kwargs: Any) -> Any:
    """The request botocore's own bedrock-runtime client prepares for `converse_stream` (not sent)."""
    client = botocore.session.get_session().create_client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=endpoint_url,
        aws_access_key_id=AWS_KEY_ID, aws_secret_access_key=AWS_SECRET, aws_session_token=token,
    )
    client.meta.events.register("before-send.bedrock-runtime.ConverseStream", _capture)
    try:
        client.converse_stream(modelId=model_id, **kwargs)
    except _Captured as captured:
        return captured.args[0]
    raise AssertionError("botocore sent nothing")


def _h(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize("model_id", [BEDROCK_MODEL, BEDROCK_ARN])
@pytest.mark.parametrize("token", [None, "IQoJb3JpZ2luX2VjE-test-session-token"])
async def test_bedrock_request_matches_botocore(model_id: str, token: str | None, fake: FakeUpstream,
                                                logs: LogCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same clock, same credentials: botocore's client and this library put the very same
    URL, body bytes, `X-Amz-Date`, session token and SigV4 `Authorization` on the wire."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)
    table = {"aws_session_token": token} if token else {}
    req = await send(fake, logs, "bedrock", model_id, CONVERSATION, table)
    sdk = botocore_converse_stream(fake.base_url, model_id, token, **CONVERSE_KWARGS)

    assert req.method == sdk.method == "POST"
    assert fake.base_url + req.target == sdk.url
    assert req.target.startswith("/model/") and "/" not in req.target[len("/model/"):-len("/converse-stream")]
    assert req.body == sdk.body  # byte for byte: botocore's json.dumps spacing and key order
    sdk_headers = {k.lower(): _h(v) for k, v in sdk.headers.items()}
    assert req.headers["content-type"] == sdk_headers["content-type"] == "application/json"
    assert req.headers["x-amz-date"] == sdk_headers["x-amz-date"] == "20250314T150926Z"
    assert req.headers["authorization"] == sdk_headers["authorization"]
    signed = "content-type;host;x-amz-date" + (";x-amz-security-token" if token else "")
    assert re.fullmatch(
        rf"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/20250314/us-east-1/bedrock/aws4_request, "
        rf"SignedHeaders={signed}, Signature=[0-9a-f]{{64}}",
        req.headers["authorization"],
    )
    if token:
        assert req.headers["x-amz-security-token"] == sdk_headers["x-amz-security-token"] == token
    else:
        assert "x-amz-security-token" not in req.headers
    assert json.loads(req.body) == CONVERSE_KWARGS


async def test_bedrock_sends_configured_headers(fake: FakeUpstream, logs: LogCapture) -> None:
    table = {"headers": {"x-amzn-bedrock-trace": "ENABLED"}}
    req = await send(fake, logs, "bedrock", BEDROCK_MODEL, {"messages": [{"role": "user", "content": "hi"}]}, table)
    assert req.headers.get("x-amzn-bedrock-trace") == "ENABLED"


# --- default endpoints ------------------------------------------------------------------------------


def _url(name: str, table: dict[str, Any], model_id: str) -> str:
    cfg = Config.from_dict({"providers": {name: table}})
    request = request_from_dict({"model": f"{name}/{model_id}", "messages": [{"role": "user", "content": "x"}]})
    return build_codec(name, cfg.providers[name]).build_request(request, model_id).url


@pytest.mark.parametrize(
    ("table", "model_id", "url"),
    [
        ({"kind": "gemini", "api_key": "k"}, "gemini-2.5-flash",
         "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
        ({"kind": "vertex", "access_token": "t", "project": "p", "location": "europe-west4"}, "gemini-2.5-pro",
         "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/publishers/google/"
         "models/gemini-2.5-pro:streamGenerateContent?alt=sse"),
        ({"kind": "vertex", "access_token": "t", "project": "p", "location": "global"}, "claude-opus-4-1@20250805",
         "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/anthropic/models/"
         "claude-opus-4-1@20250805:streamRawPredict"),
        ({"kind": "bedrock", "region": "eu-west-3"}, "mistral.mistral-large-2407-v1:0",
         "https://bedrock-runtime.eu-west-3.amazonaws.com/model/mistral.mistral-large-2407-v1%3A0/converse-stream"),
        ({"kind": "azure", "api_key": "k", "endpoint": "https://res.openai.azure.com/"}, "gpt-4o",
         "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"),
        ({"kind": "xai", "api_key": "k"}, "grok-4", "https://api.x.ai/v1/chat/completions"),
        ({"kind": "openrouter", "api_key": "k"}, "openai/gpt-4o", "https://openrouter.ai/api/v1/chat/completions"),
        ({"kind": "groq", "api_key": "k"}, "llama-3.3-70b-versatile",
         "https://api.groq.com/openai/v1/chat/completions"),
        ({"kind": "perplexity", "api_key": "k"}, "sonar", "https://api.perplexity.ai/chat/completions"),
        ({"kind": "openai_compatible", "base_url": "http://localhost:11434/v1/"}, "llama3",
         "http://localhost:11434/v1/chat/completions"),
    ],
    ids=lambda v: v["kind"] if isinstance(v, dict) else None,
)
def test_default_endpoints(table: dict[str, Any], model_id: str, url: str) -> None:
    assert _url("p", table, model_id) == url


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"kind": "openai_compatible"}, "providers.p.base_url"),
        ({"kind": "gemini"}, "providers.p.api_key"),
        ({"kind": "vertex", "access_token": "t"}, "providers.p.project"),
        ({"kind": "azure", "api_key": "k"}, "providers.p.endpoint"),
        ({"kind": "azure", "endpoint": "https://res.openai.azure.com"}, "providers.p.api_key"),
        ({"kind": "xai"}, "providers.p.api_key"),
        ({"kind": "groq"}, "providers.p.api_key"),
    ],
    ids=lambda v: v["kind"] if isinstance(v, dict) else v,
)
def test_missing_required_keys_are_config_errors(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _url("p", table, "m")
    assert info.value.key == key
