"""`[shared]`: absent by default; every key checked, the URL a secret, `env:NAME` allowed."""

from __future__ import annotations

from typing import Any

import pytest

from streamactors import Config, ConfigError
from streamactors.shared.address import RedisAddress


def test_absent_by_default() -> None:
    assert Config.from_dict({}).shared is None


def test_defaults_and_env() -> None:
    cfg = Config.from_dict(
        {"shared": {"redis_url": "env:SA_REDIS"}}, env={"SA_REDIS": "rediss://app:s3cret-pw@cache.internal:6380/3"}
    )
    assert cfg.shared is not None
    assert (cfg.shared.namespace, cfg.shared.timeout) == ("streamactors", 0.25)
    assert cfg.shared.address == RedisAddress("cache.internal", 6380, 3, True, "app", "s3cret-pw")
    assert cfg.shared.address.shown() == "rediss://cache.internal:6380/3"
    assert "s3cret-pw" not in repr(cfg) and "s3cret-pw" not in repr(cfg.shared.address)
    assert "s3cret-pw" in cfg.secrets()


def test_plain_url() -> None:
    cfg = Config.from_dict({"shared": {"redis_url": "redis://127.0.0.1", "namespace": "team-a:prod", "timeout": 1}})
    assert cfg.shared is not None
    assert cfg.shared.address == RedisAddress("127.0.0.1", 6379, 0, False, None, None)
    assert (cfg.shared.namespace, cfg.shared.timeout) == ("team-a:prod", 1.0)


@pytest.mark.parametrize(
    ("table", "key", "fragment"),
    [
        ({}, "shared.redis_url", "required key is missing"),
        ({"redis_url": "http://127.0.0.1"}, "shared.redis_url", '"redis://" or "rediss://"'),
        ({"redis_url": "redis://:hunter22@h:99999"}, "shared.redis_url", "redis://:****@h:99999"),
        ({"redis_url": "redis://h/zero"}, "shared.redis_url", "database must be a number"),
        ({"redis_url": "redis:///0"}, "shared.redis_url", "names no host"),
        ({"redis_url": "redis://h", "namespace": "a b"}, "shared.namespace", "letters, digits"),
        ({"redis_url": "redis://h", "namespace": "{x}"}, "shared.namespace", "letters, digits"),
        ({"redis_url": "redis://h", "timeout": 0}, "shared.timeout", "greater than 0"),
        ({"redis_url": "redis://h", "timout": 1}, "shared.timout", "did you mean 'timeout'"),
        ({"redis_url": 6379}, "shared.redis_url", "expected a string"),
    ],
)
def test_errors_name_the_key(table: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"shared": table})
    assert info.value.key == key
    assert fragment in str(info.value)
    assert "hunter22" not in str(info.value)


def test_shared_is_a_known_top_level_table() -> None:
    with pytest.raises(ConfigError, match="did you mean 'shared'"):
        Config.from_dict({"shard": {}})
