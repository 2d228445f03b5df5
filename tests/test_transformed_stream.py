"""Stream transforms through the service: where the stage sits and what it does to the stream.

In virtual time over the socketless upstream (exact times: when the upstream is cancelled, when
Coalesce sends), and over real sockets through the fake upstream and the HTTP gateway with
transforms set in the config."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import httpx
import openai
import pytest
import trio
import trio.testing

from conftest import LogCapture, provider_table, user
from mock_upstream import MockUpstream
from streamactors import (
    Config,
    EventStream,
    FinishEvent,
    ProviderError,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    UsageError,
    UsageEvent,
    open_service,
)
from streamactors.actors.coalesce import Coalesce
from streamactors.actors.metrics import MAX_TRANSFORM_LABELS, MetricsActor, TransformActions
from streamactors.gateway.openai_api import error_response as openai_error
from streamactors.gateway.run import run_gateway
from streamactors.testing import FakeUpstream, token_text
from streamactors.transformed import TransformedEventStream
from streamactors.transforms import BlockList, Redact, StopSequences, Transform


def tokens(start: int, stop: int, unicode: bool = False) -> str:
    return "".join(token_text(i, unicode) for i in range(start, stop))


def config(
    upstream: MockUpstream | FakeUpstream,
    transforms: dict[str, list[dict[str, Any]]] | None = None,
    routes: dict[str, Any] | None = None,
) -> Config:
    providers = provider_table(upstream)
    for name, specs in (transforms or {}).items():
        providers[name]["transforms"] = specs
    return Config.from_dict({"providers": providers, "routes": routes or {}})


def serve(upstream: MockUpstream, logs: LogCapture, cfg: Config) -> Any:
    return open_service(cfg, logger=logs.logger, transports=upstream.transports())


def texts(events: Sequence[StreamEvent]) -> str:
    return "".join(ev.text for ev in events if type(ev) is TextEvent)


async def test_without_transforms_the_stream_is_the_plain_one(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    """Decided once per stream: a provider's transforms make its own streams transformed,
    nobody else's."""
    cfg = config(upstream, {"openai": [{"kind": "stop", "strings": ["t3"]}]})
    async with serve(upstream, logs, cfg) as service:
        async with service.stream({"model": "anthropic/m~tokens=5", "messages": user()}) as events:
            assert type(events) is EventStream
            assert texts([ev async for ev in events]) == tokens(0, 5)
        async with service.stream({"model": "openai/m~tokens=5", "messages": user()}) as events:
            assert type(events) is TransformedEventStream
            assert texts([ev async for ev in events]) == tokens(0, 3)
        async with service.stream(
            {"model": "anthropic/m~tokens=5", "messages": user()}, transforms=[StopSequences(["t1"])]
        ) as events:
            assert type(events) is TransformedEventStream
            assert texts([ev async for ev in events]) == tokens(0, 1)


async def test_a_stop_match_cancels_the_upstream_at_once(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    """The reply ends at the match with finish "stop"; the upstream request is cancelled at that
    moment (while the consumer is still in the block), not when the block exits."""
    request = {"model": "openai/m~tokens=30~delay_ms=100", "messages": user()}
    async with serve(upstream, logs, config(upstream)) as service:
        async with service.stream(request, transforms=[StopSequences(["t22 ", "never"])]) as events:
            start = trio.current_time()
            seen = [ev async for ev in events]
            stopped_at = trio.current_time()
            await trio.testing.wait_all_tasks_blocked()
            assert upstream.responses_aborted == 1 and upstream.aborted_at == [stopped_at]
            assert stopped_at - start == pytest.approx(2.2)  # token 22 arrives after 22 delays
            reply = events.reply()
        metrics = service.metrics_text()
    assert texts(seen) == tokens(0, 22) and seen[-1] == FinishEvent("stop")
    assert reply.text == tokens(0, 22) and reply.finish_reason == "stop"
    assert reply.usage.output_tokens is None  # the upstream's usage came after the match
    assert upstream.responses_completed == 0
    assert 'streamactors_transform_actions_total{transform="stop",action="stop"} 1\n' in metrics


async def test_next_batch_and_drain_see_the_same_transformed_events(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    """The gateway and the worker read batches; complete() drains: the same events and reply."""
    request = {"model": "openai/m~tokens=12~tokens_per_chunk=3", "messages": user()}

    def make() -> list[Transform]:
        return [Redact([r"t[2-5] "], "<r> ", max_match=4), StopSequences(["t9"])]

    async with serve(upstream, logs, config(upstream)) as service:
        async with service.stream(request, transforms=make()) as events:
            iterated = [ev async for ev in events]
            expected = events.reply()
        async with service.stream(request, transforms=make()) as events:
            batches = []
            while batch := await events.next_batch():
                batches.append(batch)
            assert await events.next_batch() == []
            batched = events.reply()
        completed = await service.complete(request, transforms=make())
    assert [ev for batch in batches for ev in batch] == iterated
    assert expected == batched == completed
    assert completed.text == "t0 t1 <r> <r> <r> <r> t6 t7 t8 " and completed.finish_reason == "stop"


async def test_a_blocked_word_raises_a_content_filter_error_with_the_text_before_it(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    request = {"model": "openai/m~tokens=20~delay_ms=10", "messages": user()}
    async with serve(upstream, logs, config(upstream)) as service:
        seen: list[StreamEvent] = []
        with pytest.raises(ProviderError) as info:
            async with service.stream(request, transforms=[BlockList(["t5"])]) as events:
                async for ev in events:
                    seen.append(ev)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(ProviderError) as completed:
            await service.complete(request, transforms=[BlockList(["T7"], action="error")])
        finished = await service.complete(request, transforms=[BlockList(["t7"], action="finish")])
    err = info.value
    assert (err.kind, err.provider, err.error_type, err.retryable, err.status) == (
        "content_filter",
        "openai",
        "blocklist",
        False,
        None,
    )
    assert err.partial is not None and err.partial.text == tokens(0, 5) == texts(seen)
    assert upstream.responses_aborted >= 1
    assert completed.value.partial is not None and completed.value.partial.text == tokens(0, 7)
    assert finished.text == tokens(0, 7) and finished.finish_reason == "content_filter"
    # The HTTP gateway answers it as a refusal, not as an upstream failure.
    status, headers, body = openai_error(err)
    assert status == 400 and b'"code":"content_filter"' in body and ("x-should-retry", "false") in headers


async def test_the_partial_reply_of_a_failure_holds_the_text_a_transform_held(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    """What Redact held when the upstream failed goes out (redacted) before the error, and
    the error's partial reply is exactly what the consumer received."""
    request = {"model": "openai/m~tokens=20~fail=midstream@8", "messages": user()}
    async with serve(upstream, logs, config(upstream)) as service:
        seen: list[StreamEvent] = []
        with pytest.raises(ProviderError) as info:
            async with service.stream(request, transforms=[Redact(["t6 "], "[six] ", max_match=20)]) as events:
                async for ev in events:
                    seen.append(ev)
    assert info.value.kind == "upstream"
    expected = "t0 t1 t2 t3 t4 t5 [six] t7 "
    assert texts(seen) == expected
    assert info.value.partial is not None and info.value.partial.text == expected


async def test_a_redaction_inside_reasoning(upstream: MockUpstream, logs: LogCapture, autojump_clock: Any) -> None:
    """Claude's thinking is redacted like the text, and its signature still follows it."""
    request = {"model": "anthropic/m~tokens=4~reasoning=5~unicode=1", "messages": user()}
    async with (
        serve(upstream, logs, config(upstream)) as service,
        service.stream(request, transforms=[Redact([r"日本語\d+"], "▇", max_match=8)]) as events,
    ):
        seen = [ev async for ev in events]
        reply = events.reply()
    think = tokens(0, 5, unicode=True).replace("日本語2", "▇")
    assert reply.reasoning == think and "日本語" not in reply.reasoning
    assert reply.text == tokens(0, 4, unicode=True).replace("日本語2", "▇")
    assert reply.reasoning_blocks[0].text == think and reply.reasoning_blocks[0].signature
    signature_at = next(i for i, ev in enumerate(seen) if type(ev) is ReasoningEvent and ev.signature)
    assert "".join(ev.text for ev in seen[:signature_at] if type(ev) is ReasoningEvent) == think


class OneBytePerRead(httpx.AsyncBaseTransport):
    """The upstream's bodies one byte per read: every multi-byte character split across reads."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.reads = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(response.status_code, headers=response.headers, stream=_Bytes(self, response.stream))


class _Bytes(httpx.AsyncByteStream):
    def __init__(self, transport: OneBytePerRead, inner: httpx.AsyncByteStream) -> None:
        self.transport = transport
        self.inner = inner.__aiter__()
        self.closer = inner
        self.pending = b""

    def __aiter__(self) -> _Bytes:
        return self

    async def __anext__(self) -> bytes:
        while not self.pending:
            self.pending = await self.inner.__anext__()
        byte, self.pending = self.pending[:1], self.pending[1:]
        self.transport.reads += 1
        return byte

    async def aclose(self) -> None:
        await self.closer.aclose()


@pytest.mark.parametrize(
    ("stop", "kept"),
    [
        ("語2", "héllo0 wörld1 日本"),  # from inside a 3-byte character's word to the ASCII after it
        ("本", "héllo0 wörld1 日"),  # one 3-byte character
        ("🎉", "héllo0 wörld1 日本語2 "),  # one 4-byte character
        ("ö", "héllo0 w"),  # one 2-byte character
    ],
)
async def test_a_stop_string_of_multi_byte_characters_read_one_byte_at_a_time(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any, stop: str, kept: str
) -> None:
    """Every network read one byte: each multi-byte character arrives in pieces, and the stop
    string is still found whole (the codec decodes UTF-8 across reads; the transform sees
    characters), on OpenAI's and Anthropic's formats."""
    transport = OneBytePerRead(upstream.transport)
    transports = {name: transport for name in ("openai", "anthropic")}
    async with open_service(config(upstream), logger=logs.logger, transports=transports) as service:
        for provider in ("openai", "anthropic"):
            request = {"model": f"{provider}/m~tokens=9~unicode=1", "messages": user()}
            reply = await service.complete(request, transforms=[StopSequences([stop])])
            assert (reply.text, reply.finish_reason) == (kept, "stop"), provider
    assert transport.reads > 2 * len("héllo0 wörld1 日本語2 ".encode())


async def test_the_route_runs_after_the_target_and_the_request_after_the_route(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    """openai turns "t3 " into "HALT ", the route stops at "HALT" (it sees openai's output);
    the route turns "t1 " into "R ", and the request's own stop at "R" sees that."""
    cfg = config(
        upstream,
        {"openai": [{"kind": "redact", "pattern": "t3 ", "replacement": "HALT "}]},
        {
            "chat": {
                "targets": ["openai/m~tokens=10"],
                "transforms": [
                    {"kind": "stop", "strings": ["HALT"]},
                    {"kind": "redact", "pattern": "t1 ", "replacement": "R "},
                ],
            }
        },
    )
    async with serve(upstream, logs, cfg) as service:
        routed = await service.complete({"model": "chat", "messages": user()})
        requested = await service.complete({"model": "chat", "messages": user()}, transforms=[StopSequences(["R"])])
        direct = await service.complete({"model": "openai/m~tokens=10", "messages": user()})
    assert (routed.text, routed.finish_reason) == ("t0 R t2 ", "stop")
    assert (requested.text, requested.finish_reason) == ("t0 ", "stop")
    assert (direct.text, direct.finish_reason) == ("t0 t1 t2 HALT t4 t5 t6 t7 t8 t9 ", "stop")


async def test_only_the_answering_target_runs_its_transforms(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    """A fallback target that failed before its first event never reaches its transforms."""
    cfg = config(
        upstream,
        {"openai": [{"kind": "stop", "strings": ["t0"]}], "anthropic": [{"kind": "redact", "pattern": "t2 "}]},
        {"chat": {"targets": ["openai/m~fail=status:503", "anthropic/m~tokens=4"]}},
    )
    async with serve(upstream, logs, cfg) as service:
        reply = await service.complete({"model": "chat", "messages": user()})
    assert reply.provider == "anthropic" and reply.text == "t0 t1 [redacted]t3 "


async def test_a_continued_reply_changes_transforms_with_its_target(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    """The failed target's held text goes out first; the next target continues from the
    transformed text, through its own transforms."""
    cfg = config(
        upstream,
        {
            "anthropic": [{"kind": "redact", "pattern": "t4 ", "replacement": "[four] ", "max_match": 10}],
            "openai": [{"kind": "redact", "pattern": "t1 ", "replacement": "[one] "}],
        },
        {
            "chat": {
                "targets": ["anthropic/m~tokens=20~fail=midstream@6", "openai/m~tokens=3"],
                "continue_on_failure": True,
            }
        },
    )
    async with serve(upstream, logs, cfg) as service:
        reply = await service.complete({"model": "chat", "messages": user("count")})
    prefix = "t0 t1 t2 t3 [four] t5 "
    assert reply.text == prefix + "t0 [one] t2 " and reply.provider == "openai"
    assert upstream.requests[-1].json()["messages"][-1] == {"role": "assistant", "content": prefix}


async def test_coalesce_sends_at_min_chars_or_after_max_delay(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    """One token every 10 ms: gathered to 10 characters, or sent 25 ms after the first."""
    request = {"model": "openai/m~tokens=12~delay_ms=10", "messages": user()}
    async with (
        serve(upstream, logs, config(upstream)) as service,
        service.stream(request, transforms=[Coalesce(10, 25)]) as events,
    ):
        start = trio.current_time()
        timed = [(round((trio.current_time() - start) * 1000), ev) async for ev in events]
    assert timed[:-2] == [
        (25, TextEvent("t0 t1 t2 ")),  # 9 characters by 20 ms: sent at the deadline
        (55, TextEvent("t3 t4 t5 ")),
        (85, TextEvent("t6 t7 t8 ")),
        (110, TextEvent("t9 t10 t11 ")),  # 11 characters: sent as the last token arrives
    ]
    assert [(t, type(ev)) for t, ev in timed[-2:]] == [(110, UsageEvent), (110, FinishEvent)]


async def test_counts_are_metrics_and_logs_never_hold_the_redacted_text(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    cfg = config(upstream, {"openai": [{"kind": "redact", "pattern": r"日本語\d+", "replacement": "<x>"}]})
    async with serve(upstream, logs, cfg) as service:
        reply = await service.complete({"model": "openai/m~tokens=21~unicode=1", "messages": user()})
        metrics = service.metrics_text()
    assert reply.text.count("<x>") == 3 and "日本語" not in reply.text
    assert 'streamactors_transform_actions_total{transform="redact",action="redact"} 3\n' in metrics
    record = next(r for r in logs.records() if r["event"] == "stream_transformed")
    assert record["actions"] == {"redact.redact": 3} and record["provider"] == "openai"
    assert "日本語" not in logs.text and "\\u65e5" not in logs.text.lower()


async def test_per_request_transforms_must_be_transforms(
    upstream: MockUpstream, logs: LogCapture, autojump_clock: Any
) -> None:
    async with serve(upstream, logs, config(upstream)) as service:
        with pytest.raises(UsageError) as info:
            await service.complete({"model": "openai/m", "messages": user()}, transforms=["stop"])  # type: ignore[list-item]
    assert str(info.value).startswith("transforms[0]: expected a Transform")
    assert upstream.requests == []


# --- over real sockets ------------------------------------------------------------------


async def test_config_set_transforms_end_to_end_through_the_fake_upstream(fake: FakeUpstream) -> None:
    """Config only: the openai provider redacts and stops; the stream over real sockets ends at
    the stop string and the upstream's connection is cut before its end."""
    cfg = config(
        fake,
        {
            "openai": [
                {"kind": "redact", "pattern": r"wörld\d+", "replacement": "[w]"},
                {"kind": "stop", "strings": ["Ωmega12"]},
            ]
        },
    )
    logs = LogCapture([])
    async with open_service(cfg, logger=logs.logger) as service:
        async with service.stream({"model": "openai/m~tokens=40~unicode=1~delay_ms=5", "messages": user()}) as events:
            seen = [ev async for ev in events]
        reply = await service.complete({"model": "openai/m~tokens=8~unicode=1", "messages": user()})
    expected = tokens(0, 12, unicode=True).replace("wörld1", "[w]").replace("wörld8", "[w]")
    assert texts(seen) == expected and seen[-1] == FinishEvent("stop")
    assert fake.responses_aborted == 1
    assert reply.text == tokens(0, 8, unicode=True).replace("wörld1", "[w]") and reply.finish_reason == "stop"


async def test_the_gateway_serves_config_set_transforms(fake: FakeUpstream, nursery: trio.Nursery) -> None:
    """The HTTP gateway reads the stream through the same stage: Coalesce gives fewer, larger
    chunks and Redact masks them, for a client of the OpenAI API."""
    providers = provider_table(fake)
    providers["openai"]["transforms"] = [
        {"kind": "redact", "pattern": r"t1\d ", "replacement": "## "},
        {"kind": "coalesce", "min_chars": 40, "max_delay_ms": 1000},
    ]
    cfg = Config.from_dict({"providers": providers})

    async def run(task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        await run_gateway(cfg, "127.0.0.1", 0, err=io.StringIO(), logger=LogCapture([]).logger, task_status=task_status)

    host, port = await nursery.start(run)
    client = openai.OpenAI(api_key="unused", base_url=f"http://{host}:{port}/v1", max_retries=0)

    def chat() -> list[str]:
        stream = client.chat.completions.create(
            model="openai/m~tokens=30", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]

    try:
        chunks = await trio.to_thread.run_sync(chat)
    finally:
        client.close()  # its pooled connections, else closed (and warned about) by the garbage collector
    nursery.cancel_scope.cancel()
    assert "".join(chunks) == tokens(0, 10) + "## " * 10 + tokens(20, 30)
    # 30 tokens (106 characters) in at most three chunks, each but the last of 40 or more.
    assert all(len(c) >= 40 for c in chunks[:-1]) and len(chunks) <= 3


def test_transform_metric_labels_are_bounded() -> None:
    """Custom transforms name their own labels: past 100 pairs, they count as "other"."""
    metrics = MetricsActor(["openai"])
    for i in range(MAX_TRANSFORM_LABELS + 5):
        metrics.report(TransformActions(f"custom{i}", "drop", 2))
    metrics.report(TransformActions("custom0", "drop", 1))
    text = metrics.prometheus({}, {})
    assert 'streamactors_transform_actions_total{transform="custom0",action="drop"} 3\n' in text
    assert 'streamactors_transform_actions_total{transform="other",action="other"} 10\n' in text
    assert text.count("streamactors_transform_actions_total{") == MAX_TRANSFORM_LABELS + 1
