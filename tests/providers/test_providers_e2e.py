"""Every provider kind end to end over real sockets: service -> provider actor -> fake upstream.

Each case drives one configured provider through the built-in fake upstream, which
answers in that provider's own wire format (Gemini SSE, Vertex Gemini and Vertex Claude,
Bedrock's binary event stream, Azure with content filtering, OpenRouter with keep-alive
comments and in-chunk errors, the OpenAI format for xAI, Groq, Perplexity and any
OpenAI-compatible server). OpenAI and Anthropic are covered in test_service_streaming.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import orjson
import pytest
import trio

from conftest import LogCapture, provider_table, user
from streamactors import (
    ChatRequest,
    Config,
    FinishEvent,
    Message,
    ProviderError,
    Reasoning,
    ReasoningBlock,
    Reply,
    StreamEvent,
    TextEvent,
    UsageEvent,
    open_service,
)
from streamactors.testing import FakeUpstream, parse_scenario, token_text
from streamactors.testing.formats.gemini import STATUS_NAME
from streamactors.testing.routing import route_request
from streamactors.testing.script import Scenario, build_steps

GEMINI_KEY = "AIza-test-GEMINI-0123456789abcdef"
VERTEX_TOKEN = "ya29.test-VERTEX-0123456789abcdef"
AWS_KEY_ID = "AKIATESTBEDROCK01234"
AWS_SECRET = "test/BEDROCK/secret+0123456789abcdefghij"
AZURE_KEY = "azure-test-KEY-0123456789abcdef"
XAI_KEY = "xai-test-KEY-0123456789abcdef"
OPENROUTER_KEY = "sk-or-v1-test-0123456789abcdef"
COMPAT_KEY = "compat-test-KEY-0123456789abcdef"
GROQ_KEY = "gsk_test-GROQ-0123456789abcdef"
PERPLEXITY_KEY = "pplx-test-0123456789abcdef"
SECRETS = [GEMINI_KEY, VERTEX_TOKEN, AWS_KEY_ID, AWS_SECRET, AZURE_KEY, XAI_KEY, OPENROUTER_KEY, COMPAT_KEY,
           GROQ_KEY, PERPLEXITY_KEY]

COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}


def cloud_table(fake: FakeUpstream, **overrides: Any) -> dict[str, dict[str, Any]]:
    """A `[providers]` table with every provider kind pointing at the fake upstream."""
    base = fake.base_url
    common = {**COMMON, **overrides}
    return {
        "gemini": {"kind": "gemini", "api_key": GEMINI_KEY, "base_url": base, **common},
        "vertex": {"kind": "vertex", "access_token": VERTEX_TOKEN, "project": "test-project",
                   "location": "us-central1", "base_url": base, **common},
        "bedrock": {"kind": "bedrock", "region": "us-east-1", "endpoint_url": base,
                    "aws_access_key_id": AWS_KEY_ID, "aws_secret_access_key": AWS_SECRET, **common},
        "azure": {"kind": "azure", "endpoint": base, "api_key": AZURE_KEY, **common},
        "xai": {"kind": "xai", "api_key": XAI_KEY, "base_url": f"{base}/v1", **common},
        "openrouter": {"kind": "openrouter", "api_key": OPENROUTER_KEY, "base_url": f"{base}/api/v1", **common},
        "openai_compatible": {"kind": "openai_compatible", "api_key": COMPAT_KEY, "base_url": f"{base}/compat/v1",
                              **common},
        "groq": {"kind": "groq", "api_key": GROQ_KEY, "base_url": f"{base}/openai/v1", **common},
        "perplexity": {"kind": "perplexity", "api_key": PERPLEXITY_KEY, "base_url": base, **common},
    }


@pytest.fixture
def cloud_config(fake: FakeUpstream) -> Callable[..., Config]:
    """Build a config with the named providers (default: all), each against the fake upstream.

    Name only the providers a test uses: each one gets its own HTTP client, whose TLS
    context alone costs tens of milliseconds to build. Keyword overrides apply to each provider.
    """

    def make(*names: str, **overrides: Any) -> Config:
        providers = cloud_table(fake, **overrides)
        if names:
            providers = {name: providers[name] for name in names}
        return Config.from_dict({"providers": providers})

    return make


@pytest.fixture
def logs() -> LogCapture:
    return LogCapture(SECRETS)


def _compact(i: int) -> str:
    return f'{{"city":"Paris {i}","units":"celsius","days":{i + 1}}}'


def _as_streamed(i: int) -> str:
    return f'{{"city": "Paris {i}", "units": "celsius", "days": {i + 1}}}'


@attrs.frozen
class Case:
    """One provider under test and what its fake format says."""

    id: str
    provider: str
    model: str = "m"
    tool_ids: tuple[str, str] = ("call_0000", "call_0001")
    #: Gemini sends `args` as an object: the reply carries its compact JSON text.
    arguments: Callable[[int], str] = _as_streamed
    #: The status the provider puts in its mid-stream error (None: it states none).
    midstream_status: int | None = None
    #: False where the stream does not name the model (Bedrock): the reply keeps the requested id.
    echoes_model: bool = True
    #: HTTP status -> the error type the provider names in its error body, where it names one.
    error_types: dict[int, str] | None = None
    #: Claude's formats sign each thinking block (the fake signs with "c2lnbmF0dXJl").
    signs_reasoning: bool = False


GEMINI_IDS = ("call_fakeResp0001_0", "call_fakeResp0001_1")
CASES = [
    Case("gemini", "gemini", tool_ids=GEMINI_IDS, arguments=_compact, midstream_status=503,
         error_types=STATUS_NAME),
    Case("vertex-gemini", "vertex", tool_ids=GEMINI_IDS, arguments=_compact, midstream_status=503,
         error_types=STATUS_NAME),
    Case("vertex-claude", "vertex", model="claude-fake", tool_ids=("toolu_call_0000", "toolu_call_0001"),
         midstream_status=529, signs_reasoning=True,
         error_types={400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                      404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 503: "api_error"}),
    Case("bedrock", "bedrock", tool_ids=("tooluse_call_0000", "tooluse_call_0001"), midstream_status=424,
         echoes_model=False, signs_reasoning=True),
    Case("azure", "azure"),
    Case("xai", "xai"),
    Case("openrouter", "openrouter", midstream_status=502),
    Case("openai_compatible", "openai_compatible"),
    Case("groq", "groq"),
    Case("perplexity", "perplexity"),
]
by_case = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])


def expected_text(n: int, unicode: bool = False) -> str:
    return "".join(token_text(i, unicode) for i in range(n))


def model_of(case: Case, options: str) -> str:
    return f"{case.provider}/{case.model}{options}"


def reported_model(case: Case, options: str) -> str:
    return case.model if case.echoes_model else case.model + options


async def collect(cfg: Config, logs: LogCapture, model: str) -> tuple[list[StreamEvent], Reply]:
    """Stream one request to its end: every event, and the aggregated reply."""
    async with open_service(cfg, logger=logs.logger) as service, service.stream(
        {"model": model, "messages": user()}
    ) as events:
        return [ev async for ev in events], events.reply()


# --- the reply ---------------------------------------------------------------------------


@by_case
async def test_plain_and_unicode_text_exact(case: Case, cloud_config: Any, logs: LogCapture) -> None:
    """Text arrives exactly, one event per token, then usage, then the finish last; multi-byte
    characters (accents, CJK, emoji) survive the format intact."""
    cfg = cloud_config(case.provider)
    seen, reply = await collect(cfg, logs, model_of(case, "~tokens=25"))
    assert [ev.text for ev in seen if isinstance(ev, TextEvent)] == [token_text(i) for i in range(25)]
    assert [ev.type for ev in seen][-2:] == ["usage", "finish"]
    assert isinstance(seen[-2], UsageEvent) and isinstance(seen[-1], FinishEvent)
    assert reply.text == expected_text(25)
    assert reply.reasoning == ""
    assert reply.tool_calls == ()
    assert reply.finish_reason == "stop"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (10, 25)
    assert reply.provider == case.provider
    assert reply.model == reported_model(case, "~tokens=25")

    _, reply = await collect(cfg, logs, model_of(case, "~tokens=30~unicode=1"))
    assert reply.text == expected_text(30, unicode=True)
    assert "日本語" in reply.text and "🎉" in reply.text


@by_case
async def test_parallel_tool_calls(case: Case, cloud_config: Any, logs: LogCapture) -> None:
    """Two tool calls, in order, with the provider's ids, names and exact argument text."""
    async with open_service(cloud_config(case.provider), logger=logs.logger) as service:
        reply = await service.complete({"model": model_of(case, "~tokens=2~tool_calls=2"), "messages": user()})
    assert reply.text == expected_text(2)
    assert [(tc.id, tc.name, tc.arguments) for tc in reply.tool_calls] == [
        (case.tool_ids[0], "get_weather", case.arguments(0)),
        (case.tool_ids[1], "get_weather", case.arguments(1)),
    ]
    assert reply.finish_reason == "tool_calls"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (10, 2)
    assert "unknown_events" not in logs.text  # the decoder understood every event of the format


@by_case
async def test_reasoning_and_usage(case: Case, cloud_config: Any, logs: LogCapture) -> None:
    """Reasoning text becomes reasoning events, before the text; output tokens include reasoning tokens."""
    seen, reply = await collect(cloud_config(case.provider), logs, model_of(case, "~tokens=3~reasoning=4~unicode=1"))
    assert reply.reasoning == expected_text(4, unicode=True)
    assert reply.text == expected_text(3, unicode=True)
    signature = ["reasoning"] if case.signs_reasoning else []  # the event that ends the signed block
    assert [ev.type for ev in seen] == ["reasoning"] * 4 + signature + ["text"] * 3 + ["usage", "finish"]
    if case.signs_reasoning:
        assert reply.reasoning_blocks == (ReasoningBlock(expected_text(4, unicode=True), "c2lnbmF0dXJl"),)
    else:
        assert reply.reasoning_blocks == ()
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (10, 7)
    assert reply.finish_reason == "stop"
    assert "unknown_events" not in logs.text and "invalid_utf8" not in logs.text


CLAUDE = [("anthropic", "m"), ("vertex", "claude-fake"), ("bedrock", "m")]


@pytest.mark.parametrize(("provider", "model"), CLAUDE, ids=[p for p, _ in CLAUDE])
@pytest.mark.parametrize("shape", ["typed", "dict"])
async def test_signed_thinking_goes_back_with_the_tool_use_turn(
    provider: str, model: str, shape: str, fake: FakeUpstream, logs: LogCapture
) -> None:
    """With thinking on, Claude refuses a tool-use turn sent back without its signed thinking:
    the reply keeps the signed block, and the next request carries it, unchanged and first,
    in the assistant turn (typed: `Reply.as_message()`; dict: `thinking_blocks`, LiteLLM's shape)."""
    table = {**provider_table(fake), **cloud_table(fake)}
    cfg = Config.from_dict({"providers": {provider: table[provider]}})
    name = f"{provider}/{model}~tokens=0~reasoning=2~tool_calls=1"
    async with open_service(cfg, logger=logs.logger) as service:
        reply = await service.complete({"model": name, "messages": user(), "reasoning": {"budget_tokens": 2048}})
        assert reply.reasoning_blocks == (ReasoningBlock(expected_text(2), "c2lnbmF0dXJl"),)
        call = reply.tool_calls[0]
        if shape == "typed":
            turn = reply.as_message()
            assert turn == Message("assistant", None, (call,), reasoning_blocks=reply.reasoning_blocks)
            messages = (Message("user", "hello"), turn, Message("tool", "sunny", tool_call_id=call.id))
            await service.complete(ChatRequest(name, messages, reasoning=Reasoning(budget_tokens=2048)))
        else:
            turn_dict = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": call.id, "type": "function",
                                "function": {"name": call.name, "arguments": call.arguments}}],
                "thinking_blocks": [{"type": "thinking", "thinking": expected_text(2), "signature": "c2lnbmF0dXJl"}],
            }
            messages_d = [*user(), turn_dict, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
            await service.complete({"model": name, "messages": messages_d, "reasoning": {"budget_tokens": 2048}})
    assistant = orjson.loads(fake.requests[-1].body)["messages"][1]
    assert assistant["role"] == "assistant"
    first, second = assistant["content"]
    if provider == "bedrock":
        assert first == {"reasoningContent": {"reasoningText": {"text": expected_text(2), "signature": "c2lnbmF0dXJl"}}}
        assert second["toolUse"]["toolUseId"] == call.id
    else:
        assert first == {"type": "thinking", "thinking": expected_text(2), "signature": "c2lnbmF0dXJl"}
        assert (second["type"], second["id"]) == ("tool_use", call.id)


@by_case
async def test_length_and_content_filter_finish(case: Case, cloud_config: Any, logs: LogCapture) -> None:
    """Each format's own reasons (MAX_TOKENS/SAFETY, max_tokens/content_filtered, ...) map to ours."""
    async with open_service(cloud_config(case.provider), logger=logs.logger) as service:
        length = await service.complete({"model": model_of(case, "~tokens=4~finish=length"), "messages": user()})
        filtered = await service.complete(
            {"model": model_of(case, "~tokens=3~finish=content_filter"), "messages": user()}
        )
    assert (length.text, length.finish_reason) == (expected_text(4), "length")
    assert (filtered.text, filtered.finish_reason) == (expected_text(3), "content_filter")


# --- failures ------------------------------------------------------------------------------


@by_case
async def test_midstream_error_keeps_partial(case: Case, cloud_config: Any, logs: LogCapture) -> None:
    """An in-band error after 12 tokens: ProviderError(kind="upstream") carrying exactly those 12."""
    seen: list[Any] = []
    async with open_service(cloud_config(case.provider), logger=logs.logger) as service:
        with pytest.raises(ProviderError) as info:
            async with service.stream(
                {"model": model_of(case, "~tokens=30~fail=midstream@12"), "messages": user()}
            ) as events:
                async for ev in events:
                    seen.append(ev)
    err = info.value
    assert err.kind == "upstream"
    assert err.provider == case.provider
    assert err.message == "Overloaded (injected mid-stream fault)"
    assert err.status == case.midstream_status
    assert err.retryable
    assert err.partial is not None
    assert err.partial.text == expected_text(12)
    assert err.partial.finish_reason is None
    assert [ev.text for ev in seen if isinstance(ev, TextEvent)] == [token_text(i) for i in range(12)]


#: status -> retryable
HTTP_ERRORS = {400: False, 401: False, 403: False, 404: False, 429: True, 500: True, 503: True}


@by_case
async def test_http_errors(case: Case, cloud_config: Any, logs: LogCapture) -> None:
    """Upstream HTTP errors: kind, status, retryability, Retry-After and the provider's own message."""
    got: dict[int, tuple[Any, ...]] = {}
    # One service serves all seven errors: keep its pacing and circuit breaker out of the way.
    cfg = cloud_config(case.provider, rate_limit={"adaptive": False}, circuit_breaker={"failure_threshold": 100})
    async with open_service(cfg, logger=logs.logger) as service:
        for status in HTTP_ERRORS:
            options = f"~fail=status:{status}" + ("~retry_after=2" if status == 429 else "")
            with pytest.raises(ProviderError) as info:
                await service.complete({"model": model_of(case, options), "messages": user()})
            err = info.value
            assert err.partial is not None and err.partial.text == "" and err.partial.finish_reason is None
            got[status] = (err.provider, err.kind, err.status, err.retryable, err.message, err.retry_after)
            if case.error_types is not None:
                assert err.error_type == case.error_types[status]
    assert got == {
        status: (case.provider, "http_status", status, retryable, f"injected HTTP {status}",
                 2.0 if status == 429 else None)
        for status, retryable in HTTP_ERRORS.items()
    }


@by_case
async def test_broken_streams_keep_partial(case: Case, cloud_config: Any, logs: LogCapture) -> None:
    """A dropped connection is kind "connection"; a body that ends cleanly but without its
    finish or terminator is "protocol", never a silent success. Both keep the partial text."""
    async with open_service(cloud_config(case.provider), logger=logs.logger) as service:
        with pytest.raises(ProviderError) as dropped:
            await service.complete({"model": model_of(case, "~tokens=20~fail=drop@7"), "messages": user()})
        with pytest.raises(ProviderError) as truncated:
            await service.complete({"model": model_of(case, "~tokens=20~fail=truncate@5"), "messages": user()})
    err = dropped.value
    assert (err.kind, err.retryable) == ("connection", True)
    assert err.partial is not None and err.partial.text == expected_text(7)
    assert err.partial.finish_reason is None
    err = truncated.value
    assert err.kind == "protocol"
    assert err.partial is not None and err.partial.text == expected_text(5)


async def test_all_providers_at_once(cloud_config: Any, logs: LogCapture) -> None:
    """Every provider kind in one service, 8 concurrent streams each, each reply exact."""
    results: dict[tuple[str, int], str] = {}
    async with open_service(cloud_config(), logger=logs.logger) as service:

        async def one(case: Case, i: int) -> None:
            reply = await service.complete({"model": model_of(case, f"~tokens={i + 5}"), "messages": user()})
            results[case.id, i] = reply.text

        async with trio.open_nursery() as nursery:
            for case in CASES:
                for i in range(8):
                    nursery.start_soon(one, case, i)
    assert results == {(case.id, i): expected_text(i + 5) for case in CASES for i in range(8)}


async def test_credentials_never_reach_the_logs(cloud_config: Any, logs: LogCapture) -> None:
    """Requests, errors and all: no key, token or AWS secret appears in a log line."""
    async with open_service(cloud_config(), logger=logs.logger) as service:
        for case in CASES:
            with pytest.raises(ProviderError):
                await service.complete({"model": model_of(case, "~fail=status:401"), "messages": user()})
            await service.complete({"model": model_of(case, "~tokens=2"), "messages": user()})
    text = logs.text
    assert "request_end" in text
    for secret in SECRETS:
        assert secret not in text


# --- provider specifics ------------------------------------------------------------------------


def _rendered(path: str, model: str, body: dict[str, Any] | None = None) -> bytes:
    """The bytes the fake upstream sends for `model` at `path` (no Delay/Drop in these scenarios)."""
    route = route_request(path, body or {"model": model})
    assert route is not None
    _fmt, name, render = route
    scenario = parse_scenario(name, Scenario())
    items = render(build_steps(scenario), scenario.model, body or {})
    return b"".join(item for item in items if isinstance(item, bytes))


async def test_azure_prompt_filter_chunk_and_content_filter(cloud_config: Any, logs: LogCapture) -> None:
    """Azure's first chunk has empty `choices` and `prompt_filter_results` (and an empty model);
    choices carry `content_filter_results`; `finish_reason: "content_filter"` is the finish."""
    model = "gpt-4o~tokens=5~finish=content_filter"
    raw = _rendered(f"/openai/deployments/{model}/chat/completions", model)
    first = raw.split(b"\n\n", 1)[0]
    assert first.startswith(b'data: {"choices":[],') and b'"prompt_filter_results"' in first
    assert b'"content_filter_results"' in raw and b'"finish_reason":"content_filter"' in raw
    seen, reply = await collect(cloud_config("azure"), logs, f"azure/{model}")
    assert isinstance(seen[0], TextEvent) and seen[0].text == token_text(0)  # nothing from the filter chunk
    assert reply.text == expected_text(5)
    assert reply.finish_reason == "content_filter"
    assert reply.model == "gpt-4o"  # the filter chunk's empty model is not taken
    assert "unknown_events" not in logs.text
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (10, 5)


async def test_openrouter_keepalive_comments_and_reasoning(cloud_config: Any, logs: LogCapture) -> None:
    """`: OPENROUTER PROCESSING` comments are skipped; `reasoning` deltas are reasoning."""
    model = "deepseek/deepseek-r1~tokens=4~reasoning=3"
    raw = _rendered("/api/v1/chat/completions", model)
    assert raw.startswith(b": OPENROUTER PROCESSING\n\n")
    assert raw.count(b": OPENROUTER PROCESSING") == 2
    assert b'"reasoning":"t0 "' in raw and b"reasoning_content" not in raw
    seen, reply = await collect(cloud_config("openrouter"), logs, f"openrouter/{model}")
    assert [ev.type for ev in seen] == ["reasoning"] * 3 + ["text"] * 4 + ["usage", "finish"]
    assert reply.reasoning == expected_text(3)
    assert reply.text == expected_text(4)
    assert reply.model == "deepseek/deepseek-r1"
    assert reply.finish_reason == "stop"


async def test_openrouter_error_inside_a_chunk(cloud_config: Any, logs: LogCapture) -> None:
    """OpenRouter reports a mid-stream failure as a chunk with an `error` object and a choice
    finishing with "error": that is ProviderError(kind="upstream"), not a finished reply."""
    model = "meta-llama/llama-3.3-70b~tokens=10~fail=midstream@4"
    raw = _rendered("/api/v1/chat/completions", model)
    error_chunk = next(line for line in raw.split(b"\n\n") if b'"error"' in line)
    assert b'"choices":[{' in error_chunk and b'"finish_reason":"error"' in error_chunk
    async with open_service(cloud_config("openrouter"), logger=logs.logger) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": f"openrouter/{model}", "messages": user()})
    err = info.value
    assert (err.kind, err.status, err.retryable) == ("upstream", 502, True)
    assert err.message == "Overloaded (injected mid-stream fault)"
    assert err.partial is not None and err.partial.text == expected_text(4)
    assert err.partial.finish_reason is None


async def test_gemini_tool_call_ids_are_stable(cloud_config: Any, logs: LogCapture) -> None:
    """Gemini sends no call ids: the generated ones are distinct and the same for the same stream."""
    replies = []
    async with open_service(cloud_config("gemini"), logger=logs.logger) as service:
        for _ in range(2):
            replies.append(await service.complete({"model": "gemini/m~tokens=0~tool_calls=2", "messages": user()}))
    ids = [[tc.id for tc in r.tool_calls] for r in replies]
    assert ids[0] == ids[1] == list(GEMINI_IDS)
    assert replies[0].text == ""
    assert replies[0].finish_reason == "tool_calls"


async def test_bedrock_stream_exception_event(cloud_config: Any, logs: LogCapture) -> None:
    """A `modelStreamErrorException` frame in the event stream: its type, its status (424) and message."""
    async with open_service(cloud_config("bedrock"), logger=logs.logger) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": "bedrock/m~tokens=6~fail=midstream@2", "messages": user()})
    err = info.value
    assert (err.kind, err.status, err.error_type) == ("upstream", 424, "modelStreamErrorException")
    assert err.message == "Overloaded (injected mid-stream fault)"
    assert err.partial is not None and err.partial.text == expected_text(2)


async def test_provider_error_leaves_the_service_block_as_itself(cloud_config: Any, logs: LogCapture) -> None:
    with pytest.raises(ProviderError) as info:
        async with open_service(cloud_config("gemini"), logger=logs.logger) as service:
            await service.complete({"model": "gemini/m~fail=status:400", "messages": user()})
    assert info.value.status == 400
