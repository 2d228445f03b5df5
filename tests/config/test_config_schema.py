"""Config loading: every mistake is a ConfigError naming the key and the fix, before any request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamactors import Config, ConfigError
from streamactors.config.schema import AnthropicConfig, BedrockConfig, OpenAIConfig, VertexConfig

GOOD_TOML = """
[providers.openai]
kind = "openai"
api_key = "env:SA_TEST_OPENAI_KEY"
max_retries = 3

[providers.openai.timeouts]
connect = 2.0
idle = 10

[providers.claude]
kind = "anthropic"
api_key = "sk-ant-inline"

[providers.vertex]
kind = "vertex"
project = "proj"
credentials_file = "sa.json"

[routes.smart]
targets = ["claude/claude-sonnet-4-5", "openai/gpt-4.1"]

[logging]
format = "console"
level = "debug"
file = "logs/service.log"
"""


def test_load_toml_with_env_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "streamactors.toml"
    path.write_text(GOOD_TOML)
    cfg = Config.load(path, env={"SA_TEST_OPENAI_KEY": "sk-from-env"})
    openai = cfg.providers["openai"]
    assert isinstance(openai, OpenAIConfig)
    assert openai.api_key is not None and openai.api_key.reveal() == "sk-from-env"
    assert openai.max_retries == 3
    assert openai.timeouts.connect == 2.0 and openai.timeouts.idle == 10.0 and openai.timeouts.total == 600.0
    assert isinstance(cfg.providers["claude"], AnthropicConfig)
    assert cfg.providers["claude"].max_retries == 2  # the official SDKs' default
    vertex = cfg.providers["vertex"]
    assert isinstance(vertex, VertexConfig) and vertex.credentials_file == str(tmp_path / "sa.json")
    assert cfg.logging.file == str(tmp_path / "logs" / "service.log")
    assert cfg.routes["smart"].targets == ["claude/claude-sonnet-4-5", "openai/gpt-4.1"]


def test_secrets_never_show_in_reprs() -> None:
    cfg = Config.from_dict(
        {
            "providers": {
                "o": {"kind": "openai", "api_key": "sk-SUPERSECRET-1"},
                "b": {
                    "kind": "bedrock",
                    "aws_access_key_id": "AKIASECRET",
                    "aws_secret_access_key": "wJalrSECRET",
                    "aws_session_token": "FwoGSECRETTOKEN",
                },
            }
        }
    )
    text = repr(cfg) + str(cfg) + repr(cfg.providers["b"])
    for secret in ("sk-SUPERSECRET-1", "AKIASECRET", "wJalrSECRET", "FwoGSECRETTOKEN"):
        assert secret not in text
    assert isinstance(cfg.providers["b"], BedrockConfig)
    assert sorted(cfg.secrets()) == sorted(["sk-SUPERSECRET-1", "AKIASECRET", "wJalrSECRET", "FwoGSECRETTOKEN"])


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"providers": {"o": {"kind": "openai", "api_kye": "x"}}}, "providers.o.api_kye", "did you mean 'api_key'"),
        (
            {"providers": {"o": {"kind": "openai", "timeouts": {"conect": 1}}}},
            "providers.o.timeouts.conect",
            "did you mean 'connect'",
        ),
        ({"providers": {"o": {"kind": "opnai"}}}, "providers.o.kind", "did you mean 'openai'"),
        ({"providers": {"o": {"api_key": "x"}}}, "providers.o.kind", "required key is missing"),
        (
            {"providers": {"o": {"kind": "openai", "max_retries": "2"}}},
            "providers.o.max_retries",
            "expected an integer",
        ),
        (
            {"providers": {"o": {"kind": "openai", "max_retries": True}}},
            "providers.o.max_retries",
            "expected an integer",
        ),
        (
            {"providers": {"o": {"kind": "openai", "max_concurrency": 0}}},
            "providers.o.max_concurrency",
            "greater than 0",
        ),
        (
            {"providers": {"o": {"kind": "openai", "timeouts": {"idle": -1}}}},
            "providers.o.timeouts.idle",
            "greater than 0",
        ),
        (
            {"providers": {"o": {"kind": "openai", "api_key": "env:SA_SURELY_UNSET_VAR"}}},
            "providers.o.api_key",
            "SA_SURELY_UNSET_VAR",
        ),
        (
            {"providers": {"o": {"kind": "openai", "headers": {"x": 1}}}},
            "providers.o.headers['x']",
            "expected a string",
        ),
        ({"provider": {}}, "provider", "did you mean 'providers'"),
        (
            {"providers": {"o": {"kind": "openai"}}, "routes": {"r": {"targets": ["x/m"]}}},
            "routes.r.targets",
            "provider configured",
        ),
        (
            {"providers": {"o": {"kind": "openai"}}, "routes": {"r": {"targets": ["o/m"], "strategy": "fastest"}}},
            "routes.r.strategy",
            "least_latency",
        ),
        ({"logging": {"format": "xml"}}, "logging.format", '"json" or "console"'),
        ({"server": {"prot": 8080}}, "server.prot", "did you mean 'port'"),
        ({"server": {"port": 70000}}, "server.port", "port number from 0 to 65535"),
        ({"server": {"api_keys": "sk-one"}}, "server.api_keys", "expected a list"),
        ({"server": {"api_keys": ["env:SA_SURELY_UNSET_VAR"]}}, "server.api_keys[0]", "SA_SURELY_UNSET_VAR"),
        ({"server": {"max_body_bytes": 0}}, "server.max_body_bytes", "greater than 0"),
        ({"service": {"media_timeout": 0}}, "service.media_timeout", "greater than 0"),
        ({"providers": {"o": {"kind": "openai", "models": "gpt-4o"}}}, "providers.o.models", "expected a list"),
    ],
)
def test_config_errors_name_the_key(data: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, env={})
    assert info.value.key == key
    assert fragment in str(info.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[providers.o\nkind = 1")
    with pytest.raises(ConfigError, match="invalid TOML"):
        Config.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        Config.load(tmp_path / "missing.toml")


async def test_missing_credentials_fail_at_startup_not_at_request() -> None:
    from streamactors import open_service

    cfg = Config.from_dict({"providers": {"o": {"kind": "openai"}}})
    with pytest.raises(ConfigError, match=r"providers\.o\.api_key"):
        async with open_service(cfg):
            pass


def test_server_settings_and_their_keys_are_secrets() -> None:
    """The gateway's API keys are credentials: scrubbed from logs like provider keys, never in a repr."""
    cfg = Config.from_dict(
        {
            "server": {"api_keys": ["env:GW_KEY", "sk-gw-literal-1"], "port": 0},
            "providers": {"o": {"kind": "openai", "api_key": "sk-p-12345", "models": ["gpt-4o"]}},
        },
        env={"GW_KEY": "sk-gw-from-env"},
    )
    assert [k.reveal() for k in cfg.server.api_keys] == ["sk-gw-from-env", "sk-gw-literal-1"]
    assert (cfg.server.host, cfg.server.port, cfg.server.max_body_bytes) == ("127.0.0.1", 0, 10 * 1024 * 1024)
    assert set(cfg.secrets()) == {"sk-p-12345", "sk-gw-from-env", "sk-gw-literal-1"}
    assert "sk-gw" not in repr(cfg) and cfg.providers["o"].models == ["gpt-4o"]
