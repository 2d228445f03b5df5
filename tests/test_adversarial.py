"""Hostile upstreams over real sockets, and configuration mistakes.

Each upstream fault is produced by the fake upstream (`~fail=...` / `~inject=...` in the
model id) and must end in a typed `ProviderError` that carries the partial reply, within
the configured timeouts and with memory bounded; or, for the harmless oddities (gzip,
unknown event types, invalid UTF-8, a flood of tiny events), in the right reply.
Configuration mistakes must be a `ConfigError` naming the key and the fix, raised before
any request leaves. Cases that `tests/test_config.py` and `test_service_streaming.py`
already cover are not repeated here.

The slow drips check timeouts, which are the provider actor's trio deadlines, not the
socket's: they run in virtual time (`autojump_clock`) against the socketless `upstream`,
which sends the same bytes one read at a time. Every other upstream fault needs a real
hostile socket (a reset, a half-sent chunk, a gigabyte against kernel buffers, a
connection held open, gzip) and stays on the fake upstream and the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from conftest import ANTHROPIC_KEY, OPENAI_KEY, LogCapture, eventually, provider_table, user
from mock_upstream import MockUpstream
from streamactors import Config, ConfigError, ProviderError, open_service
from streamactors.testing import FakeUpstream, token_text
from streamactors.testing.script import BAD_UTF8_TEXT, ENDLESS_BLOCKS

PROVIDERS = ["openai", "anthropic", "gemini", "bedrock"]
SSE_PROVIDERS = ["openai", "anthropic", "gemini"]
GEMINI_KEY = "AIza-adversarial-GEMINI-0123456789"
AWS_KEY_ID = "AKIAADVERSARIAL0123"
AWS_SECRET = "adversarial/secret+0123456789abcdef"
SECRETS = [OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY, AWS_KEY_ID, AWS_SECRET]

MAX_EVENT_BYTES = 64 * 1024
TIMEOUTS = {"connect": 2.0, "first_token": 2.0, "idle": 1.0, "total": 10.0}
MB = 1024 * 1024


def table(fake: FakeUpstream | MockUpstream, names: tuple[str, ...], **overrides: Any) -> dict[str, Any]:
    """`[providers]` for the named providers, each against `fake`, with a small event limit."""
    common: dict[str, Any] = {"max_retries": 0, "max_event_bytes": MAX_EVENT_BYTES, "timeouts": TIMEOUTS}
    common.update(overrides)
    base = fake.base_url
    every = {
        **provider_table(fake, **common),
        "gemini": {"kind": "gemini", "api_key": GEMINI_KEY, "base_url": base, **common},
        "bedrock": {
            "kind": "bedrock",
            "region": "us-east-1",
            "endpoint_url": base,
            "aws_access_key_id": AWS_KEY_ID,
            "aws_secret_access_key": AWS_SECRET,
            **common,
        },
    }
    return {name: every[name] for name in names}


@pytest.fixture
def config(fake: FakeUpstream) -> Callable[..., Config]:
    def make(*names: str, **overrides: Any) -> Config:
        return Config.from_dict({"providers": table(fake, names or tuple(PROVIDERS), **overrides)})

    return make


@pytest.fixture
def mock_config(upstream: MockUpstream) -> Callable[..., Config]:
    """As `config`, against the socketless `upstream` (serve it with `upstream.transports()`)."""

    def make(*names: str, **overrides: Any) -> Config:
        return Config.from_dict({"providers": table(upstream, names or tuple(PROVIDERS), **overrides)})

    return make


@pytest.fixture
def logs() -> LogCapture:
    return LogCapture(SECRETS)


def expected_text(n: int) -> str:
    return "".join(token_text(i) for i in range(n))


async def failure(service: Any, model: str, within: float) -> tuple[ProviderError, float]:
    """The ProviderError `model` ends in (it must end within `within` seconds), and how long it took."""
    t0 = trio.current_time()
    with trio.fail_after(within), pytest.raises(ProviderError) as info:
        await service.complete({"model": model, "messages": user()})
    return info.value, trio.current_time() - t0


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


# --- oversized and malformed events ------------------------------------------------------------


@pytest.mark.parametrize("provider", SSE_PROVIDERS)
async def test_an_event_that_never_ends_stops_at_max_event_bytes(
    provider: str, fake: FakeUpstream, config: Any, logs: LogCapture
) -> None:
    """1 GiB without a line break: cut off at 64 KiB, the fake never gets far, RSS stays flat.
    Real sockets, wall clock: how far the fake gets is bounded by the kernel's socket buffers."""
    async with open_service(config(provider), logger=logs.logger) as service:
        await service.complete({"model": f"{provider}/warm-up~tokens=5", "messages": user()})
        rss0, chunks0, aborted0 = rss(), fake.chunks_sent, fake.responses_aborted
        err, _ = await failure(service, f"{provider}/m~tokens=5~fail=endless@3", within=5)
        await eventually(lambda: fake.responses_aborted > aborted0)
        growth, sent = rss() - rss0, fake.chunks_sent - chunks0
    assert err.kind == "protocol"
    assert f"max_event_bytes={MAX_EVENT_BYTES}" in err.message
    assert err.partial is not None and err.partial.text == expected_text(3)
    # At most what the kernel's socket buffers can hold (tens of MB here), not the gigabyte.
    assert sent < ENDLESS_BLOCKS // 25, f"the fake sent {sent} blocks of 64 KiB"
    assert growth < 8 * MB, f"RSS grew by {growth / MB:.1f} MB"


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [("badcrc", "Checksum mismatch"), ("hugeframe", "4294967280 bytes is larger than max_event_bytes")],
)
async def test_bedrock_frame_with_bad_crc_or_absurd_length(
    fault: str, fragment: str, fake: FakeUpstream, config: Any, logs: LogCapture
) -> None:
    """A corrupt event-stream frame fails the stream; an absurd length is refused from the prelude."""
    async with open_service(config("bedrock"), logger=logs.logger) as service:
        rss0 = rss()
        err, _ = await failure(service, f"bedrock/m~tokens=6~fail={fault}@3", within=5)
        growth = rss() - rss0
    assert err.kind == "protocol"
    assert fragment in err.message
    assert err.partial is not None and err.partial.text == expected_text(3)
    assert growth < 8 * MB


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_invalid_json_in_a_data_line(provider: str, config: Any, logs: LogCapture) -> None:
    async with open_service(config(provider), logger=logs.logger) as service:
        err, _ = await failure(service, f"{provider}/m~tokens=6~fail=garbage@3", within=5)
    assert err.kind == "protocol"
    assert err.partial is not None and err.partial.text == expected_text(3)


@pytest.mark.parametrize(
    ("provider", "fault"),
    [(p, "garbage") for p in PROVIDERS]
    + [(p, "badshape") for p in PROVIDERS]
    + [("bedrock", "hugeframe"), ("bedrock", "badcrc")],
)
async def test_an_error_after_events_in_the_same_read_surfaces_at_once(
    provider: str, fault: str, nursery: trio.Nursery, logs: LogCapture
) -> None:
    """Events, then a malformed event, all in one HTTP chunk (one read), and then the upstream
    holds the connection open without a byte more: the error reaches the consumer right after
    the events before it, within 100 ms, with no wait for more bytes (the idle timeout is 5 s).
    Wall clock on purpose: what is measured is a real socket that stays open."""
    one_chunk: FakeUpstream = await nursery.start(FakeUpstream(events_per_chunk=10_000).serve)
    cfg = Config.from_dict({"providers": table(one_chunk, (provider,), timeouts={**TIMEOUTS, "idle": 5.0})})
    async with open_service(cfg, logger=logs.logger) as service:
        await service.complete({"model": f"{provider}/warm-up~tokens=2", "messages": user()})  # the connection
        err, took = await failure(service, f"{provider}/m~tokens=6~fail={fault}@3~hold=1", within=5)
    assert err.kind == "protocol"
    assert err.partial is not None and err.partial.text == expected_text(3)
    assert took < 0.1, f"{took * 1000:.0f} ms"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_payload_of_the_wrong_shape_fails_only_its_own_stream(
    provider: str, config: Any, logs: LogCapture
) -> None:
    """A text delta whose text is a number: a protocol error for that stream (not a TypeError
    in the consumer's hands, nor a crash of the provider actor under its other streams)."""
    async with open_service(config(provider), logger=logs.logger) as service:
        async with service.stream({"model": f"{provider}/m~tokens=300~delay_ms=2", "messages": user()}) as other:
            await other.__anext__()
            err, _ = await failure(service, f"{provider}/m~tokens=6~fail=badshape@3", within=5)
            with trio.fail_after(10):
                rest = [ev async for ev in other]
        assert (await service.complete({"model": f"{provider}/m~tokens=2", "messages": user()})).text == "t0 t1 "
    assert err.kind == "protocol"
    assert err.partial is not None and err.partial.text == expected_text(3)
    assert rest[-1].type == "finish" and other.reply().text == expected_text(300)
    assert "child_crashed" not in [r["event"] for r in logs.records()]


# --- wrong responses -----------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_html_error_page_with_status_200(provider: str, config: Any, logs: LogCapture) -> None:
    async with open_service(config(provider), logger=logs.logger) as service:
        err, _ = await failure(service, f"{provider}/m~fail=html200", within=5)
    assert (err.kind, err.status) == ("protocol", 200)
    assert "text/html" in err.message and "<!DOCTYPE html>" in err.message
    assert err.partial is not None and err.partial.text == ""


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_json_error_body_with_status_200(provider: str, config: Any, logs: LogCapture) -> None:
    async with open_service(config(provider), logger=logs.logger) as service:
        err, _ = await failure(service, f"{provider}/m~fail=json200", within=5)
    assert (err.kind, err.status) == ("upstream", 200)
    assert err.message == "injected error in a 200"
    assert err.partial is not None and err.partial.text == ""


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_wrong_content_type(provider: str, config: Any, logs: LogCapture) -> None:
    """A stream sent as text/plain is refused before a byte of it is decoded."""
    async with open_service(config(provider), logger=logs.logger) as service:
        err, _ = await failure(service, f"{provider}/m~tokens=5~fail=ctype", within=5)
    assert (err.kind, err.status) == ("protocol", 200)
    assert "unexpected content-type 'text/plain; charset=utf-8'" in err.message
    assert err.partial is not None and err.partial.text == ""


# --- broken connections --------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_truncated_chunked_body(provider: str, config: Any, logs: LogCapture) -> None:
    """A chunk header promises 4 KiB, 7 bytes follow, then the connection closes."""
    async with open_service(config(provider), logger=logs.logger) as service:
        err, _ = await failure(service, f"{provider}/m~tokens=6~fail=badchunk@3", within=5)
    assert err.kind == "connection" and err.retryable
    assert "incomplete chunked read" in err.message
    assert err.partial is not None and err.partial.text == expected_text(3)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_connection_reset_mid_stream(provider: str, config: Any, logs: LogCapture) -> None:
    """A TCP RST (SO_LINGER 0) after three tokens."""
    async with open_service(config(provider), logger=logs.logger) as service:
        err, _ = await failure(service, f"{provider}/m~tokens=6~fail=reset@3", within=5)
    assert err.kind == "connection" and err.retryable
    assert "reset" in err.message.lower()
    assert err.partial is not None and err.partial.text == expected_text(3)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_that_ends_without_its_terminator(provider: str, config: Any, logs: LogCapture) -> None:
    async with open_service(config(provider), logger=logs.logger) as service:
        err, _ = await failure(service, f"{provider}/m~tokens=6~fail=truncate@3", within=5)
    assert err.kind == "protocol"
    assert "terminator" in err.message
    assert err.partial is not None and err.partial.text == expected_text(3)
    assert err.partial.finish_reason is None


# --- slow drips (virtual time) ---------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_slow_drip_mid_stream_hits_the_idle_timeout(
    provider: str, upstream: MockUpstream, mock_config: Any, logs: LogCapture, autojump_clock: Any
) -> None:
    """One byte every 3 s, idle timeout 0.3 s: a timeout soon after the third token."""
    cfg = mock_config(provider, timeouts={**TIMEOUTS, "idle": 0.3})
    async with open_service(cfg, logger=logs.logger, transports=upstream.transports()) as service:
        err, took = await failure(service, f"{provider}/m~tokens=6~fail=drip@3~drip_ms=3000", within=5)
    assert err.kind == "timeout" and err.retryable
    assert "idle timeout" in err.message
    assert err.partial is not None and err.partial.text == expected_text(3)
    assert 0.3 <= took < 2.0  # long before the next byte


async def test_a_drip_faster_than_the_idle_timeout_is_bounded_by_the_total_timeout(
    upstream: MockUpstream, mock_config: Any, logs: LogCapture, autojump_clock: Any
) -> None:
    """A byte every 50 ms keeps the connection alive (any byte is upstream activity, as SSE
    keep-alive comments are), but never completes an event: the total timeout ends it."""
    cfg = mock_config("openai", timeouts={**TIMEOUTS, "idle": 0.3, "total": 1.0})
    async with open_service(cfg, logger=logs.logger, transports=upstream.transports()) as service:
        err, took = await failure(service, "openai/m~tokens=6~fail=drip@3~drip_ms=50", within=5)
    assert err.kind == "timeout" and "total timeout" in err.message
    assert err.partial is not None and err.partial.text == expected_text(3)
    assert 1.0 <= took < 3.0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_drip_before_the_first_event_hits_the_first_token_timeout(
    provider: str, upstream: MockUpstream, mock_config: Any, logs: LogCapture, autojump_clock: Any
) -> None:
    """Bytes that never make an event do not count as a first token."""
    cfg = mock_config(provider, timeouts={**TIMEOUTS, "first_token": 0.5, "idle": 0.2})
    async with open_service(cfg, logger=logs.logger, transports=upstream.transports()) as service:
        err, took = await failure(service, f"{provider}/m~tokens=6~fail=drip@0~drip_ms=50", within=5)
    assert err.kind == "timeout" and "first_token timeout" in err.message
    assert err.partial is not None and err.partial.text == ""
    assert 0.5 <= took < 2.5


# --- harmless oddities ---------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_gzip_encoded_stream_is_decoded(provider: str, fake: FakeUpstream, config: Any, logs: LogCapture) -> None:
    async with open_service(config(provider), logger=logs.logger) as service:
        with trio.fail_after(5):
            reply = await service.complete({"model": f"{provider}/m~tokens=40~gzip=1", "messages": user()})
    assert reply.text == expected_text(40)
    assert reply.finish_reason == "stop"
    assert "gzip" in fake.requests[-1].headers.get("accept-encoding", "")


@pytest.mark.parametrize(
    ("provider", "tokens"), [("openai", 200_000), ("anthropic", 25_000), ("gemini", 25_000), ("bedrock", 25_000)]
)
async def test_flood_of_tiny_events_all_arrive_in_order(
    provider: str, tokens: int, nursery: trio.Nursery, logs: LogCapture
) -> None:
    """A thousand events per HTTP chunk: each token checked as it arrives, none lost or reordered."""
    flood: FakeUpstream = await nursery.start(FakeUpstream(events_per_chunk=1000).serve)
    cfg = Config.from_dict({"providers": table(flood, (provider,), timeouts={**TIMEOUTS, "total": 60.0})})
    seen = 0
    async with open_service(cfg, logger=logs.logger) as service:
        with trio.fail_after(60):
            async with service.stream({"model": f"{provider}/m~tokens={tokens}", "messages": user()}) as events:
                async for ev in events:
                    if ev.type == "text":
                        assert ev.text == token_text(seen)  # type: ignore[union-attr]
                        seen += 1
                    elif ev.type == "finish":
                        assert ev.reason == "stop"  # type: ignore[union-attr]
    assert seen == tokens


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_unknown_event_types_are_ignored_and_logged_once(provider: str, config: Any, logs: LogCapture) -> None:
    """Four events of a type no decoder knows, one per token: the reply is whole, and the
    formats that have event types log them in one `unknown_events` line."""
    async with open_service(config(provider), logger=logs.logger) as service:
        reply = await service.complete({"model": f"{provider}/m~tokens=5~inject=unknown@1", "messages": user()})
    assert reply.text == expected_text(5) and reply.finish_reason == "stop"
    lines = [r for r in logs.records() if r["event"] == "unknown_events"]
    if provider in ("anthropic", "bedrock"):
        assert len(lines) == 1
        assert lines[0]["types"] == ["x_future_event"] and lines[0]["provider"] == provider
    else:  # OpenAI chunks and Gemini responses have no event type: an object without choices is skipped
        assert len(lines) <= 1


@pytest.mark.parametrize("provider", SSE_PROVIDERS)
async def test_invalid_utf8_in_a_text_delta_becomes_u_fffd_and_is_logged_once(
    provider: str, config: Any, logs: LogCapture
) -> None:
    async with open_service(config(provider), logger=logs.logger) as service:
        reply = await service.complete({"model": f"{provider}/m~tokens=4~inject=badutf8@1", "messages": user()})
    bad = BAD_UTF8_TEXT.replace("\uffff", "\ufffd")
    assert reply.text == token_text(0) + "".join(bad + token_text(i) for i in range(1, 4))
    assert reply.finish_reason == "stop"
    warnings = [r for r in logs.records() if r["event"] == "invalid_utf8"]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"


# --- configuration mistakes ----------------------------------------------------------------
# test_config.py covers misspelled provider keys, unknown kinds, missing kind, wrong scalar
# types, a missing env var for api_key, unknown top-level tables and route targets.


def test_invalid_toml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "streamactors.toml"
    path.write_text('[providers.openai]\nkind = "openai"\napi_key = "sk-\n')
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    assert "invalid TOML" in str(info.value) and "line 3" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        # misspelled keys in every table, with the near match
        ({"service": {"shutdown_grase": 1}}, "service.shutdown_grase", "did you mean 'shutdown_grace'"),
        ({"logging": {"levle": "info"}}, "logging.levle", "did you mean 'level'"),
        (
            {"providers": {"b": {"kind": "bedrock", "aws_secret_acess_key": "x"}}},
            "providers.b.aws_secret_acess_key",
            "did you mean 'aws_secret_access_key'",
        ),
        (
            {"providers": {"o": {"kind": "openai", "rate_limit": {"requests_per_minut": 5}}}},
            "providers.o.rate_limit.requests_per_minut",
            "did you mean 'requests_per_minute'",
        ),
        (
            {"providers": {"o": {"kind": "openai", "circuit_breaker": {"failure_treshold": 5}}}},
            "providers.o.circuit_breaker.failure_treshold",
            "did you mean 'failure_threshold'",
        ),
        (
            {"providers": {"o": {"kind": "openai"}}, "routes": {"r": {"targets": ["o/m"], "hedge_after": 5}}},
            "routes.r.hedge_after",
            "did you mean 'hedge_after_ms'",
        ),
        # wrong types, including a table written as a scalar and a list as a string
        ({"providers": {"o": {"kind": "openai", "timeouts": 5}}}, "providers.o.timeouts", "expected a table"),
        ({"providers": {"o": {"kind": "openai", "headers": ["a"]}}}, "providers.o.headers", "expected a table"),
        (
            {"providers": {"o": {"kind": "openai"}}, "routes": {"r": {"targets": "o/m"}}},
            "routes.r.targets",
            "expected a list",
        ),
        (
            {"providers": {"o": {"kind": "openai", "timeouts": {"idle": "fast"}}}},
            "providers.o.timeouts.idle",
            "expected a number",
        ),
        (
            {"providers": {"o": {"kind": "openai", "max_event_bytes": 1.5}}},
            "providers.o.max_event_bytes",
            "expected an integer",
        ),
        ({"providers": {"o": {"kind": "openai", "api_key": 12345}}}, "providers.o.api_key", "expected a string"),
        ({"providers": {"o": {"kind": 5}}}, "providers.o.kind", "unknown provider kind"),
        # missing keys and environment variables outside the provider's top level
        (
            {"providers": {"o": {"kind": "openai"}}, "routes": {"r": {"strategy": "fallback"}}},
            "routes.r.targets",
            "required key is missing",
        ),
        (
            {"providers": {"o": {"kind": "openai", "headers": {"x-team": "env:SA_SURELY_UNSET_TEAM"}}}},
            "providers.o.headers.x-team",
            "SA_SURELY_UNSET_TEAM",
        ),
        (
            {"providers": {"b": {"kind": "bedrock", "aws_session_token": "env:SA_SURELY_UNSET_TOKEN"}}},
            "providers.b.aws_session_token",
            "environment variable 'SA_SURELY_UNSET_TOKEN' is not set",
        ),
    ],
)
def test_config_mistakes_name_the_key_and_the_fix(data: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, env={})
    assert info.value.key == key
    assert fragment in str(info.value)
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("table_", "key"),
    [
        ({"kind": "vertex", "access_token": "ya29.x"}, "providers.p.project"),
        ({"kind": "bedrock", "aws_access_key_id": "AKIAONLYTHEID"}, "providers.p.aws_secret_access_key"),
        ({"kind": "azure", "api_key": "k"}, "providers.p.endpoint"),
        ({"kind": "azure", "endpoint": "http://127.0.0.1:9"}, "providers.p.api_key"),
        ({"kind": "gemini"}, "providers.p.api_key"),
        ({"kind": "openai_compatible"}, "providers.p.base_url"),
        ({"kind": "anthropic"}, "providers.p.api_key"),
    ],
)
async def test_incomplete_provider_config_fails_at_startup_before_any_request(
    table_: dict[str, Any], key: str, fake: FakeUpstream, logs: LogCapture
) -> None:
    """What only the provider kind knows is required is checked by open_service, before any
    request goes out, even to the other, valid providers."""
    cfg = Config.from_dict({"providers": {"ok": provider_table(fake)["openai"], "p": table_}})
    with pytest.raises(ConfigError) as info:
        async with open_service(cfg, logger=logs.logger) as service:
            await service.complete({"model": "ok/m", "messages": user()})
    assert info.value.key == key
    assert key.rpartition(".")[2] in str(info.value)  # the message names the key to set
    assert len(fake.requests) == 0
