"""The gateway end to end (issue 14): the official openai and anthropic SDKs as clients of
`run_gateway`, in front of the fake upstream, over real sockets, for every provider format.

The SDKs' blocking clients run in worker threads (`trio.to_thread`), so the gateway, the
service and the fake upstream keep the trio loop; each call is what an application would
write. Wall clock: these are real sockets between real processes' worth of code."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio

from conftest import LogCapture, eventually
from streamactors import Config
from streamactors.gateway.run import run_gateway
from streamactors.testing import FakeUpstream, token_text

GATEWAY_KEY = "sk-gw-test-0123456789"
COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}

#: (provider, model) per upstream format; the text is the fake's tokens either way.
FORMATS = [
    ("openai", "gpt-fake"),
    ("anthropic", "claude-fake"),
    ("gemini", "gemini-fake"),
    ("bedrock", "anthropic.claude-fake"),
    ("vertex", "claude-fake"),
    ("openrouter", "m"),
]
by_format = pytest.mark.parametrize(("provider", "model"), FORMATS, ids=[p for p, _ in FORMATS])


def gateway_config(fake: FakeUpstream, **server: Any) -> Config:
    base = fake.base_url
    providers = {
        "openai": {
            "kind": "openai",
            "api_key": "sk-openai-0123456789",
            "base_url": f"{base}/v1",
            "models": ["gpt-fake"],
        },
        "anthropic": {"kind": "anthropic", "api_key": "sk-ant-0123456789", "base_url": base},
        "gemini": {"kind": "gemini", "api_key": "AIza-0123456789", "base_url": base},
        "bedrock": {
            "kind": "bedrock",
            "region": "us-east-1",
            "endpoint_url": base,
            "aws_access_key_id": "AKIATEST0123456789",
            "aws_secret_access_key": "secret/0123456789",
        },
        "vertex": {
            "kind": "vertex",
            "access_token": "ya29.test-0123456789",
            "project": "p",
            "location": "us-central1",
            "base_url": base,
        },
        "openrouter": {"kind": "openrouter", "api_key": "sk-or-0123456789", "base_url": f"{base}/api/v1"},
    }
    return Config.from_dict(
        {
            "providers": {name: {**table, **COMMON} for name, table in providers.items()},
            "routes": {"fast": {"targets": ["openai/gpt-fake~tokens=3", "anthropic/claude-fake"]}},
            "server": {"api_keys": [GATEWAY_KEY], **server},
            "service": {"shutdown_grace": 2.0},
        }
    )


#: The SDK clients a test made: closed after it, so their pooled connections are not left to
#: the garbage collector (whose ResourceWarning would fail whichever test it lands in).
_clients: list[openai.OpenAI | anthropic.Anthropic] = []


def openai_client(**kwargs: Any) -> openai.OpenAI:
    client = openai.OpenAI(max_retries=0, **kwargs)
    _clients.append(client)
    return client


def anthropic_client(**kwargs: Any) -> anthropic.Anthropic:
    client = anthropic.Anthropic(max_retries=0, **kwargs)
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


class Gateway:
    def __init__(self, url: str, fake: FakeUpstream, logs: LogCapture, cancel: trio.CancelScope) -> None:
        self.url = url
        self.fake = fake
        self.logs = logs
        self.cancel = cancel

    def openai(self, **kwargs: Any) -> openai.OpenAI:
        return openai_client(api_key=GATEWAY_KEY, base_url=f"{self.url}/v1", **kwargs)

    def anthropic(self, **kwargs: Any) -> anthropic.Anthropic:
        return anthropic_client(api_key=GATEWAY_KEY, base_url=self.url, **kwargs)


@pytest.fixture
async def gateway(fake: FakeUpstream, nursery: trio.Nursery) -> AsyncIterator[Gateway]:
    logs = LogCapture([GATEWAY_KEY])
    cfg = gateway_config(fake)
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await run_gateway(cfg, "127.0.0.1", 0, err=io.StringIO(), logger=logs.logger, task_status=task_status)

    host, port = await nursery.start(run)
    yield Gateway(f"http://{host}:{port}", fake, logs, scope)
    scope.cancel()


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


def text_of(n: int) -> str:
    return "".join(token_text(i) for i in range(n))


# --- OpenAI Chat Completions -------------------------------------------------------------


@by_format
async def test_openai_sdk_streams_every_format(gateway: Gateway, provider: str, model: str) -> None:
    def call() -> tuple[list[Any], Any]:
        client = gateway.openai()
        stream = client.chat.completions.create(
            model=f"{provider}/{model}~tokens=12",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        return chunks, stream.response.headers

    chunks, headers = await in_thread(call)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == text_of(12)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    assert headers["x-request-id"] == headers["request-id"]
    assert chunks[0].id == f"chatcmpl-{headers['x-request-id']}"


@by_format
async def test_openai_sdk_tools_and_reasoning_every_format(gateway: Gateway, provider: str, model: str) -> None:
    def call() -> Any:
        client = gateway.openai()
        with client.chat.completions.stream(
            model=f"{provider}/{model}~tokens=4~reasoning=3~tool_calls=2",
            messages=[{"role": "user", "content": "weather?"}],
        ) as stream:
            for _ in stream:
                pass
            return stream.get_final_completion()

    completion = await in_thread(call)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert [orjson_loads(c.function.arguments)["city"] for c in calls] == ["Paris 0", "Paris 1"]
    assert choice.message.content == text_of(4)
    extra = choice.message.model_extra or {}
    assert extra.get("reasoning_content") == text_of(3)


def orjson_loads(text: str) -> Any:
    import orjson

    return orjson.loads(text)


@by_format
async def test_openai_sdk_non_streaming(gateway: Gateway, provider: str, model: str) -> None:
    completion = await in_thread(
        lambda: gateway.openai().chat.completions.create(
            model=f"{provider}/{model}~tokens=5", messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == text_of(5)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 5


async def test_openai_sdk_errors_before_the_first_byte(gateway: Gateway) -> None:
    client = gateway.openai()
    messages = [{"role": "user", "content": "hi"}]

    def expect(cls: type[Exception], **kwargs: Any) -> Exception:
        with pytest.raises(cls) as info:
            client.chat.completions.create(messages=messages, **kwargs)  # type: ignore[call-overload]
        return info.value

    def run() -> None:
        err = expect(openai.RateLimitError, model="openai/gpt-fake~fail=status:429~retry_after=7", stream=True)
        assert err.response.headers["retry-after"] == "7"  # type: ignore[attr-defined]
        expect(openai.InternalServerError, model="anthropic/claude-fake~fail=status:503", stream=True)
        expect(openai.NotFoundError, model="nobody/gpt-fake", stream=True)
        expect(openai.NotFoundError, model="openai/gpt-fake~fail=status:404")
        expect(openai.BadRequestError, model="openai/gpt-fake", seed="x")
        with pytest.raises(openai.AuthenticationError):
            openai_client(api_key="wrong", base_url=f"{gateway.url}/v1").chat.completions.create(
                model="openai/gpt-fake",
                messages=messages,  # type: ignore[arg-type]
            )

    await in_thread(run)


async def test_openai_sdk_error_after_the_stream_began(gateway: Gateway) -> None:
    def run() -> str:
        stream = gateway.openai().chat.completions.create(
            model="openai/gpt-fake~tokens=10~fail=midstream@4",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        text = ""
        with pytest.raises(openai.APIError):
            for chunk in stream:
                text += chunk.choices[0].delta.content or "" if chunk.choices else ""
        return text

    assert await in_thread(run) == text_of(4)


async def test_routes_and_listed_models(gateway: Gateway) -> None:
    def run() -> tuple[list[str], str]:
        client = gateway.openai()
        ids = [m.id for m in client.models.list()]
        reply = client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
        return ids, reply.choices[0].message.content or ""

    ids, text = await in_thread(run)
    assert ids == ["fast", "openai/gpt-fake"]
    assert text == text_of(3)


# --- Anthropic Messages, in front of every provider ----------------------------------------


@by_format
async def test_anthropic_sdk_streams_every_format(gateway: Gateway, provider: str, model: str) -> None:
    def call() -> Any:
        with gateway.anthropic().messages.stream(
            model=f"{provider}/{model}~tokens=6~reasoning=2~tool_calls=1",
            max_tokens=256,
            messages=[{"role": "user", "content": "weather?"}],
        ) as stream:
            for _ in stream:
                pass
            return stream.get_final_message()

    message = await in_thread(call)
    kinds = [block.type for block in message.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == text_of(2)
    assert message.content[1].text == text_of(6)
    assert message.content[2].name == "get_weather" and message.content[2].input["city"] == "Paris 0"
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens > 0


@by_format
async def test_anthropic_sdk_non_streaming(gateway: Gateway, provider: str, model: str) -> None:
    message = await in_thread(
        lambda: gateway.anthropic().messages.create(
            model=f"{provider}/{model}~tokens=5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == text_of(5)
    assert message.stop_reason == "end_turn"


async def test_anthropic_sdk_errors(gateway: Gateway) -> None:
    client = gateway.anthropic()
    messages = [{"role": "user", "content": "hi"}]

    def run() -> None:
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model="gemini/m~fail=status:429", max_tokens=8, messages=messages)  # type: ignore[arg-type]
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="nobody/m", max_tokens=8, messages=messages)  # type: ignore[arg-type]
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(model="openai/m", max_tokens=8, messages=messages, extra_body={"top_k": "x"})  # type: ignore[arg-type]
        with pytest.raises(anthropic.AuthenticationError):
            anthropic_client(api_key="wrong", base_url=gateway.url).messages.create(
                model="openai/m",
                max_tokens=8,
                messages=messages,  # type: ignore[arg-type]
            )
        with (
            pytest.raises(anthropic.APIStatusError),
            client.messages.stream(
                model="anthropic/claude-fake~tokens=10~fail=midstream@3",
                max_tokens=8,
                messages=messages,  # type: ignore[arg-type]
            ) as stream,
        ):
            for _ in stream:
                pass

    await in_thread(run)


async def test_a_body_over_the_bound_is_413_in_each_dialect(fake: FakeUpstream, nursery: trio.Nursery) -> None:
    cfg = gateway_config(fake, max_body_bytes=2048)
    host, port = await nursery.start(
        lambda task_status: run_gateway(cfg, "127.0.0.1", 0, err=io.StringIO(), task_status=task_status)
    )
    big = [{"role": "user", "content": "x" * 5000}]

    def run() -> None:
        with pytest.raises(anthropic.RequestTooLargeError):
            anthropic_client(api_key=GATEWAY_KEY, base_url=f"http://{host}:{port}").messages.create(
                model="openai/m",
                max_tokens=8,
                messages=big,  # type: ignore[arg-type]
            )
        with pytest.raises(openai.APIStatusError) as info:
            openai_client(api_key=GATEWAY_KEY, base_url=f"http://{host}:{port}/v1").chat.completions.create(
                model="openai/m",
                messages=big,  # type: ignore[arg-type]
            )
        assert info.value.status_code == 413

    await in_thread(run)
    nursery.cancel_scope.cancel()


# --- the other endpoints, and the guarantees over HTTP --------------------------------------


async def test_health_metrics_and_unknown_paths(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        health = await client.get("/health")
        metrics = await client.get("/metrics")
        missing = await client.get("/v1/nothing", headers={"authorization": f"Bearer {GATEWAY_KEY}"})
        no_key = await client.get("/v1/models")
    assert health.status_code == 200 and set(health.json()["providers"]) >= {"openai", "bedrock"}
    assert metrics.status_code == 200 and "streamactors_" in metrics.text
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "no route for GET /v1/nothing"
    assert no_key.status_code == 401
    assert GATEWAY_KEY not in gateway.logs.text


async def test_keep_alive_serves_many_requests_on_one_connection(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, headers={"x-api-key": GATEWAY_KEY}) as client:
        for _ in range(5):
            r = await client.post(
                "/v1/chat/completions",
                json={"model": "openai/gpt-fake~tokens=2", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1


async def test_a_client_that_leaves_cancels_the_upstream_within_100_ms(gateway: Gateway) -> None:
    """A raw socket client reads the first event of a slow stream, then closes: the fake
    upstream's response is aborted (its connection closed by the gateway's service) soon after."""
    fake = gateway.fake
    host, port = gateway.url.removeprefix("http://").split(":")
    body = (
        b'{"model":"openai/gpt-fake~tokens=1000~delay_ms=20","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    )
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %b\r\ncontent-length: %d\r\n\r\n" % (GATEWAY_KEY.encode(), len(body))
    )
    sock = trio.socket.socket()
    await sock.connect((host, int(port)))
    await sock.send(head + body)
    got = b""
    while b"data: " not in got:
        got += await sock.recv(65536)
    aborted = fake.responses_aborted
    closed_at = time.monotonic()
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    await eventually(lambda: fake.responses_aborted > aborted, poll=0.001)
    assert time.monotonic() - closed_at < 0.1
