"""No credential ever shows: not in logs, exception messages, reprs, health output or stress reports.

The service runs with a distinctive fake secret for every credential of every provider
kind (API keys, the AWS key id, secret key and session token, a Vertex access token, an
Azure key and an Azure AD token) against the fake upstream, through successes and
failures: a 401 whose body repeats the request's credentials (`echo_auth=1`), an
in-stream error that repeats them, retried 503s, refused connections, and a provider
actor that crashes with a credential in its exception. Then every output is searched.
Real sockets on the wall clock: what the real transport and connection errors say is among
what is searched, and nothing here is timed.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from conftest import user
from streamactors import Config, ProviderError, open_service
from streamactors.models import StreamEvent
from streamactors.testing import FakeUpstream
from streamactors.wire.openai import OpenAICodec, OpenAIStreamDecoder

SECRETS = {
    "openai": "sk-SECRET-openai-7f3a9c1e",
    "anthropic": "sk-ant-SECRET-anthropic-1b2c3d",
    "gemini": "AIzaSECRET-gemini-4d5e6f",
    "vertex": "ya29.SECRET-vertex-token-6f7a8b",
    "aws_key_id": "AKIASECRETKEYID8B9C",
    "aws_secret": "SECRET/aws+secret/key0d1e2f3a4b",
    "aws_session": "FwoGZXIvSECRET-session-token-3a4b5c",
    "azure": "SECRET-azure-key-5c6d7e",
    "azure_ad": "eyJSECRET-azure-ad-token-7e8f9a",
    "xai": "xai-SECRET-grok-9a0b1c",
    "openrouter": "sk-or-v1-SECRET-1c2d3e",
    "compat": "SECRET-compat-key-3e4f5a",
    "groq": "gsk_SECRET-groq-5a6b7c",
    "perplexity": "pplx-SECRET-7c8d9e",
}

# provider name -> a model id the fake upstream serves for it
MODELS = {
    "openai": "gpt-x",
    "anthropic": "claude-x",
    "gemini": "gemini-x",
    "vertex": "gemini-x",
    "vertex_claude": "claude-x",
    "bedrock": "anthropic.claude-x",
    "azure": "deploy-x",
    "azure_ad": "deploy-x",
    "xai": "grok-x",
    "openrouter": "vendor/model-x",
    "openai_compatible": "local-x",
    "groq": "llama-x",
    "perplexity": "sonar-x",
}


def every_kind(base: str, log_file: Path, **common: Any) -> Config:
    """A provider of every kind (two for Azure's two credentials) against `base`."""
    common = {"max_retries": 0, "timeouts": {"connect": 2.0, "first_token": 5.0, "idle": 5.0, "total": 20.0}, **common}
    s = SECRETS
    providers = {
        "openai": {"kind": "openai", "api_key": s["openai"], "base_url": f"{base}/v1"},
        "anthropic": {"kind": "anthropic", "api_key": s["anthropic"], "base_url": base},
        "gemini": {"kind": "gemini", "api_key": s["gemini"], "base_url": base},
        "vertex": {"kind": "vertex", "access_token": s["vertex"], "project": "p", "base_url": base},
        "bedrock": {
            "kind": "bedrock",
            "endpoint_url": base,
            "aws_access_key_id": s["aws_key_id"],
            "aws_secret_access_key": s["aws_secret"],
            "aws_session_token": s["aws_session"],
        },
        "azure": {"kind": "azure", "api_key": s["azure"], "endpoint": base},
        "azure_ad": {"kind": "azure", "azure_ad_token": s["azure_ad"], "endpoint": base},
        "xai": {"kind": "xai", "api_key": s["xai"], "base_url": f"{base}/v1"},
        "openrouter": {"kind": "openrouter", "api_key": s["openrouter"], "base_url": f"{base}/api/v1"},
        "openai_compatible": {"kind": "openai_compatible", "api_key": s["compat"], "base_url": f"{base}/compat/v1"},
        "groq": {"kind": "groq", "api_key": s["groq"], "base_url": f"{base}/openai/v1"},
        "perplexity": {"kind": "perplexity", "api_key": s["perplexity"], "base_url": base},
    }
    return Config.from_dict(
        {
            "providers": {name: {**table, **common} for name, table in providers.items()},
            "logging": {"format": "json", "level": "debug", "file": str(log_file)},
        }
    )


def targets() -> Iterator[tuple[str, str]]:
    """(provider, model id) for every provider, Vertex twice (Gemini and Claude models)."""
    for name, model in MODELS.items():
        yield ("vertex" if name == "vertex_claude" else name), model


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exception_texts(exc: BaseException) -> Iterator[str]:
    """str and repr of an exception, everything it chains to, and its partial reply."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield str(e)
        yield repr(e)
        yield str(getattr(e, "message", ""))
        partial = getattr(e, "partial", None)
        if partial is not None:
            yield str(partial)
            yield repr(partial)
        todo += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]


def assert_no_secret(texts: Iterator[str] | list[str], where: str) -> None:
    blob = "\n".join(texts)
    leaked = [name for name, value in SECRETS.items() if value in blob]
    assert not leaked, f"{leaked} leaked into {where}"


class CrashingDecoder(OpenAIStreamDecoder):
    """A decoder bug whose exception message carries a credential (as a careless f-string might)."""

    def _on_event(self, event: str | None, data: str, out: list[StreamEvent]) -> None:
        raise RuntimeError(f"bug while holding {SECRETS['openai']}")


class EchoingDecoder(OpenAIStreamDecoder):
    """An upstream that names an unknown event type after our credential: it is logged in a list."""

    def _on_event(self, event: str | None, data: str, out: list[StreamEvent]) -> None:
        self.unknown_events.add(f"x-echo-{SECRETS['openai']}")
        super()._on_event(event, data, out)


class CrashingCodec(OpenAICodec):
    def new_decoder(self, model_id: str = "") -> OpenAIStreamDecoder:
        if model_id.startswith("crash"):
            return CrashingDecoder()
        if model_id.startswith("echo"):
            return EchoingDecoder()
        return super().new_decoder(model_id)


async def test_no_secret_in_any_output_through_successes_and_failures(fake: FakeUpstream, tmp_path: Path) -> None:
    log_file = tmp_path / "service.log"
    cfg = every_kind(fake.base_url, log_file, max_retries=1)
    crash = CrashingCodec(f"{fake.base_url}/v1/chat/completions", {"authorization": f"Bearer {SECRETS['openai']}"})
    texts: list[str] = [repr(cfg), str(cfg), *(repr(p) for p in cfg.providers.values())]
    errors: list[ProviderError] = []
    with trio.fail_after(60):
        async with open_service(cfg, codecs={"openai": crash}) as service:
            for provider, model in targets():
                ok = await service.complete({"model": f"{provider}/{model}~tokens=3", "messages": user()})
                assert ok.text == "t0 t1 t2 ", provider
                texts += [str(ok), repr(ok)]
                for scenario in (
                    "fail=status:401~echo_auth=1",  # the error body repeats our credentials
                    "fail=status:503~retry_after=0.01~echo_auth=1",  # retried once, then given up
                    "tokens=4~fail=midstream@2~echo_auth=1",  # an in-stream error repeats them
                ):
                    with pytest.raises(ProviderError) as info:
                        await service.complete({"model": f"{provider}/{model}~{scenario}", "messages": user()})
                    errors.append(info.value)
            # The submission channel reports a failure as an event.
            send, recv = trio.open_memory_channel[StreamEvent](8)
            request = {"model": "anthropic/claude-x~tokens=2~fail=midstream@1~echo_auth=1", "messages": user()}
            await service.submissions.send((request, send))
            texts += [repr(ev) for ev in [ev async for ev in recv]]
            await service.complete({"model": "openai/echo~tokens=2", "messages": user()})
            # A bug while serving one request (it fails alone, its traceback is logged).
            with pytest.raises(ProviderError) as info:
                await service.complete({"model": "openai/crash~tokens=3", "messages": user()})
            errors.append(info.value)
            texts += [repr(service), str(service), orjson.dumps(service.health()).decode(), service.metrics_text()]
            for actor in service._actors.values():
                texts += [
                    repr(actor),
                    repr(actor.codec),
                    repr(actor._provider.authorizer),
                    repr(actor._provider),
                    repr(actor.config),
                ]
    assert all(SECRETS["openai"] not in str(e) for e in errors)  # the crash message was scrubbed
    assert any("[REDACTED]" in e.message for e in errors), "the fake did not echo any credential"
    echoed = [e for e in errors if e.status == 401]
    assert len(echoed) == len(MODELS)
    assert all("[REDACTED]" in e.message for e in echoed), [e.message for e in echoed]
    for err in errors:
        assert_no_secret(exception_texts(err), f"the {err.provider} error {err.kind}")
    assert_no_secret(texts, "reprs, replies, health or metrics")
    log = log_file.read_text()
    assert "internal_error" in log and "Traceback" in log
    assert "request_end" in log and "retry" in log and "x-echo-" in log
    assert_no_secret([log], "the service log")


async def test_no_secret_when_connections_are_refused(tmp_path: Path) -> None:
    """Every provider kind against a closed port: connection errors name the host, not the key."""
    log_file = tmp_path / "service.log"
    cfg = every_kind(f"http://127.0.0.1:{closed_port()}", log_file, max_retries=1)
    errors: list[ProviderError] = []

    async def attempt(service: Any, provider: str, model: str) -> None:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": f"{provider}/{model}", "messages": user()})
        errors.append(info.value)

    with trio.fail_after(30):
        async with open_service(cfg) as service, trio.open_nursery() as nursery:
            for provider, model in targets():
                nursery.start_soon(attempt, service, provider, model)
    assert {e.kind for e in errors} == {"connection"}
    for err in errors:
        assert_no_secret(exception_texts(err), f"the {err.provider} connection error")
    assert_no_secret([log_file.read_text()], "the service log")


def test_no_secret_in_config_errors_or_reprs() -> None:
    """A config mistake elsewhere in a table holding credentials does not print them."""
    data = {
        "providers": {
            "b": {
                "kind": "bedrock",
                "aws_access_key_id": SECRETS["aws_key_id"],
                "aws_secret_access_key": SECRETS["aws_secret"],
                "aws_session_token": SECRETS["aws_session"],
                "regoin": "us-east-1",
            },
            "v": {"kind": "vertex", "access_token": SECRETS["vertex"], "projct": "p"},
        }
    }
    from streamactors import ConfigError

    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, env={})
    assert "did you mean 'region'" in str(info.value)
    assert_no_secret(exception_texts(info.value), "a ConfigError")
    ok = Config.from_dict({"providers": {"b": {k: v for k, v in data["providers"]["b"].items() if k != "regoin"}}})
    assert_no_secret([repr(ok), str(ok), repr(ok.providers["b"])], "config reprs")


async def test_no_secret_in_the_stress_report_or_its_log(tmp_path: Path) -> None:
    """The stress harness, with injected faults and a log file, over every fake provider kind."""
    stress = pytest.importorskip("streamactors.stress.run")
    log_file = tmp_path / "stress.log"
    out = io.StringIO()
    opts = stress.StressOptions(
        tokens=3000,
        concurrency=20,
        requests=120,
        fail_rate=0.05,
        midstream_rate=0.05,
        json=True,
        progress=False,
        idle_streams=0,
        log_file=str(log_file),
    )
    with trio.fail_after(60):
        report = await stress.run_stress(opts, out)
    assert report["failed"] > 0, "the run injected no failure"
    secrets = [v for spec in stress.FAKE_PROVIDER_KINDS.values() for k, v in spec.items() if "key" in k or "token" in k]
    assert len(secrets) >= 8
    printed = out.getvalue()
    for name, text in (("report", orjson.dumps(report).decode()), ("output", printed), ("log", log_file.read_text())):
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{leaked} leaked into the stress {name}"


def test_the_log_redactor_reaches_every_value() -> None:
    """Strings at any depth of dicts, lists and tuples, and the repr of other objects."""
    from streamactors.logs import Redactor

    key = SECRETS["anthropic"]

    class Holder:
        def __repr__(self) -> str:
            return f"Holder({key})"

    event = {
        "event": f"said {key}",
        "types": [f"x-{key}", ("a", {"deep": [key]})],
        "headers": {"x-api-key": {"value": key}},
        "error": ValueError(f"bad key {key}"),
        "obj": Holder(),
        "count": 3,
        "flag": True,
        "none": None,
    }
    out = Redactor([key])(None, "info", dict(event))
    assert_no_secret([orjson.dumps(out).decode(), repr(out)], "a redacted event")
    assert out["types"][1][1]["deep"] == ["[REDACTED]"]
    assert (out["count"], out["flag"], out["none"]) == (3, True, None)
