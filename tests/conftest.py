"""Shared fixtures: the fake upstream on loopback, its socketless twin for virtual time, and
configs pointing at either.

Two ways to run a test against an upstream:

- `upstream` (a `mock_upstream.MockUpstream`) with `autojump_clock`: in virtual time, for
  what the library decides (timeouts, retries, hedging, fallback, limits). Pass
  `transports=upstream.transports()` to `open_service`; every wait is exact and instant.
- `fake` (a `FakeUpstream` on 127.0.0.1) on the wall clock: for what only real sockets
  show (connections closing, kernel buffers, file descriptors, hostile bytes, exact
  requests as sent). Real sockets and a MockClock do not mix: autojump would fire
  while a task waits on a socket.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from mock_upstream import MockUpstream
from redis_server import RedisServer
from streamactors import Config, ProviderError, open_service
from streamactors.config.schema import LoggingConfig
from streamactors.logs import make_logger
from streamactors.testing import FakeUpstream

OPENAI_KEY = "sk-test-OPENAI-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-ANTHROPIC-0123456789abcdef"


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """Virtual time that jumps to the next deadline whenever every task is blocked."""
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port (skips if there is no binary)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def upstream() -> MockUpstream:
    """The fake upstream's scenarios over an httpx.MockTransport: no socket, for virtual time."""
    return MockUpstream()


@pytest.fixture
async def fake(nursery: Any) -> FakeUpstream:
    """A fake upstream serving every provider format on 127.0.0.1."""
    server: FakeUpstream = await nursery.start(FakeUpstream().serve)
    return server


def provider_table(fake: FakeUpstream | MockUpstream, **overrides: Any) -> dict[str, Any]:
    """Config tables for openai and anthropic against the fake upstream (or a mock one)."""
    common = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
    common.update(overrides)
    return {
        "openai": {"kind": "openai", "api_key": OPENAI_KEY, "base_url": f"{fake.base_url}/v1", **common},
        "anthropic": {"kind": "anthropic", "api_key": ANTHROPIC_KEY, "base_url": fake.base_url, **common},
    }


def config_for(
    fake: FakeUpstream | MockUpstream,
    service: dict[str, Any] | None = None,
    routes: dict[str, Any] | None = None,
    **overrides: Any,
) -> Config:
    """A config for openai and anthropic against `fake`; keyword overrides apply to every provider."""
    data: dict[str, Any] = {"providers": provider_table(fake, **overrides)}
    if service:
        data["service"] = service
    if routes:
        data["routes"] = routes
    return Config.from_dict(data)


@pytest.fixture
def make_config(fake: FakeUpstream) -> Callable[..., Config]:
    """Build a config for the fake upstream; keyword overrides apply to every provider."""

    def make(service: dict[str, Any] | None = None, **overrides: Any) -> Config:
        return config_for(fake, service, **overrides)

    return make


class LogCapture:
    """A real service logger writing JSON lines into memory."""

    def __init__(self, secrets: list[str]) -> None:
        self.buffer = io.StringIO()
        self.logger = make_logger(LoggingConfig(format="json", level="debug"), secrets, stream=self.buffer)

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def logs() -> LogCapture:
    return LogCapture([OPENAI_KEY, ANTHROPIC_KEY])


async def eventually(predicate: Callable[[], bool], within: float = 2.0, poll: float = 0.005) -> None:
    """Wait until `predicate()` holds: for state in another object that offers no event to wait on.

    For wall-clock tests over real sockets (the far end of a connection, file descriptors).
    In virtual time nothing is pending once every task is blocked: await
    `trio.testing.wait_all_tasks_blocked()` and assert instead."""
    with trio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 - polling is the point: nothing signals this state
            await trio.sleep(poll)


def user(text: str = "hello") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def write_service_log(
    fake: FakeUpstream, path: Path, requests: list[tuple[str, str]], *, max_retries: int
) -> Path:
    """Run each (request id, model) through a real service whose JSON log goes to `path`
    (`[logging] file`); failed requests are part of the log, not errors here."""
    cfg = Config.from_dict(
        {
            "providers": provider_table(fake, max_retries=max_retries),
            "logging": {"format": "json", "level": "info", "file": str(path)},
        }
    )
    async with open_service(cfg) as service:
        for rid, model in requests:
            try:
                await service.complete({"model": model, "messages": user(), "request_id": rid})
            except ProviderError:
                pass
    return path
