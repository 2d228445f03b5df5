"""The provider actor's HTTP side: proxies (configured and from the environment), the
requests it builds, and the body pieces it reads, over real sockets to the fake upstream."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import OPENAI_KEY
from streamactors import Config, ProviderError, open_service
from streamactors.http.client import UpstreamClient, environment_proxy
from streamactors.http.fast import FastTransport
from streamactors.wire.base import HttpRequestSpec

REQUEST = {"model": "openai/fake-model~tokens=3", "messages": [{"role": "user", "content": "hi"}]}

# A port on loopback that nothing listens on (connecting to it is refused at once).
CLOSED_PORT_PROXY = "http://127.0.0.1:9"


def openai_config(base_url: str, **extra: Any) -> Config:
    return Config.from_dict(
        {
            "providers": {
                "openai": {"kind": "openai", "api_key": OPENAI_KEY, "base_url": base_url, "max_retries": 0, **extra}
            }
        }
    )


class TestEnvironmentProxy:
    def test_by_scheme_then_all(self) -> None:
        proxies = {"https": "http://p1:3128", "all": "http://p2:3128"}
        assert environment_proxy(httpx.URL("https://api.openai.com/v1"), proxies) == "http://p1:3128"
        assert environment_proxy(httpx.URL("http://localhost:8000/v1"), proxies) == "http://p2:3128"

    def test_no_proxy_bypasses(self) -> None:
        proxies = {"https": "http://p1:3128", "no": "localhost,.internal.example"}
        assert environment_proxy(httpx.URL("https://llm.internal.example/v1"), proxies) is None
        assert environment_proxy(httpx.URL("https://localhost/v1"), proxies) is None
        assert environment_proxy(httpx.URL("https://api.openai.com/v1"), proxies) == "http://p1:3128"

    def test_none_set(self) -> None:
        assert environment_proxy(httpx.URL("https://api.openai.com/v1"), {}) is None


class TestProxies:
    async def test_configured_proxy_gets_the_request_in_absolute_form(self, fake: Any, logs: Any) -> None:
        # The fake upstream plays the forward proxy: an http:// target arrives as an absolute URL.
        cfg = openai_config("http://api.example.invalid/v1", proxy=fake.base_url)
        async with open_service(cfg, logger=logs.logger) as service:
            reply = await service.complete(REQUEST)
        assert reply.text and reply.finish_reason == "stop"
        assert fake.requests[-1].target == "http://api.example.invalid/v1/chat/completions"
        assert fake.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"

    async def test_environment_proxy_is_used(self, fake: Any, logs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HTTP_PROXY", fake.base_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with open_service(openai_config("http://api.example.invalid/v1"), logger=logs.logger) as service:
            await service.complete(REQUEST)
        assert fake.requests[-1].target == "http://api.example.invalid/v1/chat/completions"

    async def test_no_proxy_goes_direct(self, fake: Any, logs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HTTP_PROXY", CLOSED_PORT_PROXY)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with open_service(openai_config(f"{fake.base_url}/v1"), logger=logs.logger) as service:
            await service.complete(REQUEST)
        assert fake.requests[-1].target == "/v1/chat/completions"

    async def test_an_unreachable_proxy_is_a_connection_error(
        self, fake: Any, logs: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HTTP_PROXY", CLOSED_PORT_PROXY)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with open_service(openai_config(f"{fake.base_url}/v1"), logger=logs.logger) as service:
            with pytest.raises(ProviderError) as info:
                await service.complete(REQUEST)
        assert info.value.kind == "connection"
        assert not fake.requests

    async def test_proxy_credentials_stay_out_of_reprs(self) -> None:
        cfg = openai_config("http://api.example.invalid/v1", proxy="http://user:hunter22@proxy.example:3128")
        assert "hunter22" not in repr(cfg)
        assert "http://user:hunter22@proxy.example:3128" in cfg.providers["openai"].secrets()


class TestRequests:
    @pytest.mark.parametrize(
        ("method", "body"), [("POST", b'{"a": 1}'), ("POST", b""), ("GET", b""), ("PUT", "é".encode())]
    )
    async def test_same_request_as_httpx_client_builds(self, method: str, body: bytes) -> None:
        client = UpstreamClient(openai_config("http://127.0.0.1:1/v1").providers["openai"])
        spec = HttpRequestSpec(method, "http://127.0.0.1:1/v1/x", (("accept", "text/event-stream"), ("x-a", "1")), body)
        first, second = client.build_request(spec), client.build_request(spec)
        expected = httpx.AsyncClient(trust_env=False).build_request(
            method, "http://127.0.0.1:1/v1/x", headers=dict(spec.headers), content=body
        )
        assert first.headers.multi_items() == expected.headers.multi_items()
        assert (first.method, first.url, first.content) == (expected.method, expected.url, expected.content)
        assert first.headers is not second.headers  # a cached header set is copied, never shared
        first.headers["x-a"] = "changed"
        assert client.build_request(spec).headers["x-a"] == "1"
        await client.aclose()

    async def test_default_transport_is_fast_and_a_given_one_is_used_as_is(self) -> None:
        pc = openai_config("http://127.0.0.1:1/v1").providers["openai"]
        client = UpstreamClient(pc)
        assert isinstance(client.transport, FastTransport) and client.transport.fallback is None
        given = httpx.AsyncHTTPTransport()
        assert UpstreamClient(pc, given).transport is given
        await client.aclose()
        await given.aclose()
