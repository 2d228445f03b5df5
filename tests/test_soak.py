"""Nothing lost under faults: a soak run with injected failures accounts for every request.

The fake upstream fails 1% of responses before the first token (HTTP 503) and 1% in the
middle of the stream (an in-band error). Half the requests go through routes that fall
back from OpenAI to Anthropic, the others straight to one provider (which retries 503s,
as the SDKs do); a third of them travel over the submission channel. Every token is
checked as it arrives (token i must be "t{i} "), so a duplicated, reordered or lost token
fails the run; every request must end exactly once, completed or with a `ProviderError`
whose partial reply is exactly what was read; and the whole run must finish in time.

The 2,500-request run is marked `slow`: out of the default run, run by `pytest -m slow`
(a step of its own in .ci/run).
"""

from __future__ import annotations

import collections
from typing import Any

import pytest
import trio

from conftest import LogCapture, provider_table, user
from streamactors import Config, ErrorEvent, ProviderError, open_service
from streamactors.models import StreamEvent
from streamactors.testing import FakeUpstream, token_text

REQUESTS = 2500
CONCURRENCY = 100
TOKENS = (5, 15, 40)
PROVIDERS = ("openai", "anthropic")
ROUTES = {f"smart{n}": {"targets": [f"openai/soak~tokens={n}", f"anthropic/soak~tokens={n}"]} for n in TOKENS}


class Checker:
    """Checks one stream's events as they arrive; stores nothing but counts."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.seen = 0
        self.finish: str | None = None

    def add(self, ev: StreamEvent) -> None:
        assert self.finish is None, f"{ev!r} after the finish"
        if ev.type == "text":
            assert ev.text == token_text(self.seen), (ev, self.seen)  # type: ignore[union-attr]
            self.seen += 1
        elif ev.type == "finish":
            self.finish = ev.reason  # type: ignore[union-attr]

    def completed(self) -> None:
        assert (self.seen, self.finish) == (self.tokens, "stop")

    def failed(self, error: ProviderError) -> None:
        assert error.partial is not None
        assert error.partial.text == "".join(token_text(i) for i in range(self.seen))
        assert self.finish is None


@pytest.mark.slow
async def test_soak_with_injected_faults_accounts_for_every_request(nursery: trio.Nursery) -> None:
    fake: FakeUpstream = await nursery.start(FakeUpstream(fail_rate=0.01, midstream_rate=0.01, seed=6).serve)
    cfg = Config.from_dict(
        {
            "providers": provider_table(fake, max_retries=2, max_concurrency=CONCURRENCY),
            "routes": ROUTES,
            "service": {"submission_buffer": CONCURRENCY},
        }
    )
    logs = LogCapture([])
    counts: collections.Counter[str] = collections.Counter()

    def request(i: int) -> tuple[dict[str, Any], int, bool]:
        n = TOKENS[i % len(TOKENS)]
        routed = i % 2 == 0
        model = f"smart{n}" if routed else f"{PROVIDERS[i // 2 % 2]}/soak~tokens={n}"
        return {"model": model, "messages": user(f"request {i}")}, n, routed

    async def via_stream(service: Any, i: int) -> None:
        body, n, routed = request(i)
        check = Checker(n)
        counts["submitted"] += 1
        try:
            async with service.stream(body) as events:
                async for ev in events:
                    check.add(ev)
            check.completed()
            counts["completed"] += 1
            if routed and events.provider == "anthropic":
                counts["fell_back"] += 1
        except ProviderError as exc:
            check.failed(exc)
            counts["failed"] += 1
            counts[f"failed_{exc.kind}"] += 1

    async def via_channel(service: Any, i: int) -> None:
        body, n, _ = request(i)
        check = Checker(n)
        counts["submitted"] += 1
        send, recv = trio.open_memory_channel[StreamEvent](4)
        await service.submissions.send((body, send))
        error: ProviderError | None = None
        async with recv:
            async for ev in recv:  # ends when the service closes the channel
                if isinstance(ev, ErrorEvent):
                    assert error is None, "two error events"
                    assert isinstance(ev.error, ProviderError)
                    error = ev.error
                else:
                    assert error is None, "an event after the error"
                    check.add(ev)
        if error is None:
            check.completed()
            counts["completed"] += 1
        else:
            check.failed(error)
            counts["failed"] += 1
            counts[f"failed_{error.kind}"] += 1

    with trio.fail_after(180):  # a hang fails the run
        async with open_service(cfg, logger=logs.logger) as service:
            limit = trio.CapacityLimiter(CONCURRENCY)

            async def one(i: int) -> None:
                async with limit:
                    with trio.fail_after(60):
                        await (via_channel if i % 3 == 2 else via_stream)(service, i)

            async with trio.open_nursery() as requests:
                for i in range(REQUESTS):
                    requests.start_soon(one, i)

    assert counts["submitted"] == REQUESTS
    assert counts["completed"] + counts["failed"] == counts["submitted"], counts
    # The faults did happen, and took the paths they should.
    assert len(fake.error_sent_at) > 0, "no request failed before its first token"
    assert counts["fell_back"] > 0, "no route fell back"
    assert counts["failed_upstream"] > 0, "no stream failed mid-way"
    # What may fail: a mid-stream error (no retry after the first token), or a 503 that
    # outlived every retry and fallback; nothing else.
    # (An open circuit is possible, if unlikely: five failures in a row on one provider.)
    allowed = {"failed_upstream", "failed_http_status", "failed_circuit_open"}
    assert set(counts) <= {"submitted", "completed", "failed", "fell_back", *allowed}, counts
    assert counts["failed"] < REQUESTS * 0.05, counts
    ends = [r for r in logs.records() if r["event"] == "request_end"]
    assert len(ends) >= REQUESTS  # every leg logged its end (fallbacks add legs)
    assert not [r for r in ends if r["status"] == "cancelled"], "a leg was abandoned without its consumer leaving"


@pytest.mark.parametrize("fault", ["fail_rate", "midstream_rate"])
async def test_every_request_fails_and_none_is_lost(fault: str, nursery: trio.Nursery) -> None:
    """At a 100% fault rate, every request ends with its error, none hangs or vanishes."""
    fake: FakeUpstream = await nursery.start(FakeUpstream(**{fault: 1.0}).serve)
    cfg = Config.from_dict({"providers": provider_table(fake, max_retries=0), "routes": ROUTES})
    results: list[str] = []
    # 20 at a time: with all 200 at once, each provider would admit a whole burst before the
    # first failure came back, and no request would be left to meet an open circuit.
    limit = trio.CapacityLimiter(20)

    async def one(i: int) -> None:
        try:
            async with limit:
                await service.complete({"model": f"smart{TOKENS[i % 3]}", "messages": user()})
            results.append("ok")
        except ProviderError as exc:
            results.append(exc.kind)

    with trio.fail_after(30):
        async with open_service(cfg, logger=LogCapture([]).logger) as service, trio.open_nursery() as requests:
            for i in range(200):
                requests.start_soon(one, i)
    assert len(results) == 200
    # Each provider's circuit opens after five failures in a row; later requests fail fast.
    expected = "http_status" if fault == "fail_rate" else "upstream"
    assert set(results) == {expected, "circuit_open"}
    assert results.count(expected) >= 5
