"""The resilience probes of issue 11, over real sockets against the built-in fake upstream.

Each probe runs the service as users run it (default settings but for what it names) and
prints wall times, so the figures can be checked on any machine:

- `429`: the fake answers every request with a 429, `retry-after: 1` and OpenAI's quota
  headers (130 tokens left, full again in 54 ms); `--requests` sequential `complete()` calls,
  each with the SDKs' 2 retries. Each should cost about 2 s, the last as the first, and the
  circuit should stay closed.
- `held-error`: for each decoder, three good events then a malformed one in the same read,
  and the upstream holds the connection open; the time until the consumer has its
  `ProviderError` (the idle timeout is the default 30 s).
- `bug`: 50 streams of one provider while its decoder raises `RuntimeError` on one more
  request; how many of the 50 complete exactly, and what the broken one gets.

    .venv/bin/python stress/probe_resilience.py [--requests 10]
"""

from __future__ import annotations

import argparse
import io
from typing import Any

import trio

from _common import emit_json, print_table
from streamactors import Config, ProviderError, open_service
from streamactors.config.schema import LoggingConfig
from streamactors.logs import make_logger
from streamactors.testing import FakeUpstream
from streamactors.wire.openai import OpenAICodec, OpenAIStreamDecoder

USER = [{"role": "user", "content": "hello"}]
KEY = "sk-probe-0123456789abcdef"


def providers(base: str) -> dict[str, Any]:
    return {
        "openai": {"kind": "openai", "api_key": KEY, "base_url": f"{base}/v1"},
        "anthropic": {"kind": "anthropic", "api_key": KEY, "base_url": base},
        "gemini": {"kind": "gemini", "api_key": KEY, "base_url": base},
        "bedrock": {
            "kind": "bedrock",
            "region": "us-east-1",
            "endpoint_url": base,
            "aws_access_key_id": "AKIAPROBE0123456789",
            "aws_secret_access_key": "probe/secret+0123456789abcdef",
        },
    }


def quiet_logger() -> Any:
    return make_logger(LoggingConfig(format="json", level="info"), [KEY], stream=io.StringIO())


async def probe_429(base: str, requests: int) -> list[list[Any]]:
    cfg = Config.from_dict({"providers": {"openai": providers(base)["openai"]}})
    model = "openai/m~fail=status:429~retry_after=1~quota_tokens=130~quota_reset_ms=54"
    rows: list[list[Any]] = []
    async with open_service(cfg, logger=quiet_logger()) as service:
        for i in range(requests):
            t0 = trio.current_time()
            try:
                await service.complete({"model": model, "messages": USER})
                outcome = "ok"
            except ProviderError as exc:
                outcome = f"{exc.kind} {exc.status}"
            rows.append([f"request {i + 1}", round(trio.current_time() - t0, 3), outcome])
        rows.append(["circuit afterwards", service.health()["openai"]["circuit"]["state"], ""])
    return rows


async def probe_held_error(nursery: trio.Nursery) -> list[list[Any]]:
    one_chunk: FakeUpstream = await nursery.start(FakeUpstream(events_per_chunk=10_000).serve)
    every = providers(one_chunk.base_url)
    rows: list[list[Any]] = []
    for name, fault in [
        ("openai", "garbage"),
        ("anthropic", "garbage"),
        ("gemini", "garbage"),
        ("bedrock", "hugeframe"),
    ]:
        cfg = Config.from_dict({"providers": {name: {**every[name], "max_retries": 0}}})
        async with open_service(cfg, logger=quiet_logger()) as service:
            await service.complete({"model": f"{name}/warm~tokens=2", "messages": USER})
            t0 = trio.current_time()
            try:
                await service.complete({"model": f"{name}/m~tokens=6~fail={fault}@3~hold=1", "messages": USER})
                outcome = "no error"
            except ProviderError as exc:
                partial = exc.partial.text if exc.partial is not None else ""
                outcome = f"{exc.kind}, partial {partial!r}"
            rows.append([f"{name} ({fault})", round((trio.current_time() - t0) * 1000, 1), outcome])
    return rows


class _BuggyDecoder(OpenAIStreamDecoder):
    def _on_event(self, event: str | None, data: str, out: list[Any]) -> None:
        self._n = getattr(self, "_n", 0) + 1
        if self._n == 3:
            raise RuntimeError("decoder bug")
        super()._on_event(event, data, out)


class _BuggyCodec(OpenAICodec):
    def new_decoder(self, model_id: str = "") -> OpenAIStreamDecoder:
        return _BuggyDecoder() if model_id.startswith("boom") else super().new_decoder(model_id)


async def probe_bug(base: str) -> list[list[Any]]:
    cfg = Config.from_dict({"providers": {"openai": providers(base)["openai"]}})
    codec = _BuggyCodec(f"{base}/v1/chat/completions", {"authorization": f"Bearer {KEY}"})
    expected = "".join(f"t{i} " for i in range(200))
    exact = 0
    async with open_service(cfg, logger=quiet_logger(), codecs={"openai": codec}) as service:

        async def other(task_status: trio.TaskStatus[None]) -> None:
            nonlocal exact
            async with service.stream({"model": "openai/m~tokens=200~delay_ms=2", "messages": USER}) as events:
                await events.__anext__()
                task_status.started()
                async for _ in events:
                    pass
            exact += events.reply().text == expected

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                await nursery.start(other)
            try:
                await service.complete({"model": "openai/boom~tokens=10", "messages": USER})
                broken = "no error"
            except ProviderError as exc:
                broken = f"{exc.kind}: {exc.message}"
    return [["streams complete and exact", f"{exact} of 50", ""], ["the broken request", broken, ""]]


async def main(requests: int) -> None:
    async with trio.open_nursery() as nursery:
        fake: FakeUpstream = await nursery.start(FakeUpstream().serve)
        rows_429 = await probe_429(fake.base_url, requests)
        print_table("persistent 429 + retry-after: 1 (+ 54 ms token reset), max_retries 2", ["", "s", ""], rows_429)
        rows_held = await probe_held_error(nursery)
        print_table("an error after events in one read, connection then held", ["decoder", "ms", ""], rows_held)
        rows_bug = await probe_bug(fake.base_url)
        print_table("RuntimeError in one request among 50 streams", ["", "", ""], rows_bug)
        emit_json("probe_resilience", persistent_429=rows_429, held_error=rows_held, bug=rows_bug)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10)
    trio.run(main, parser.parse_args().requests)
