"""`transforms = [...]` per provider and per route: each kind's keys, its defaults, and errors
that name the key (down to the list entry and the item in it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamactors import Config, ConfigError
from streamactors.config.transforms import BlockListSpec, CoalesceSpec, RedactSpec, StopSpec

TOML = r"""
[providers.openai]
kind = "openai"
api_key = "sk-inline"
transforms = [
  {kind = "redact", pattern = "sk-[A-Za-z0-9]{20,48}", replacement = "[key]"},
  {kind = "stop", strings = ["END", "###"]},
]

[providers.claude]
kind = "anthropic"
api_key = "sk-ant-inline"

[routes.chat]
targets = ["openai/gpt-4o", "claude/claude-sonnet-4-5"]
transforms = [
  {kind = "blocklist", words = ["darn"], action = "finish"},
  {kind = "redact", patterns = ["\\d{3}-\\d{4}", "env:SA_TEST_PATTERN"], max_match = 12},
  {kind = "coalesce", min_chars = 32, max_delay_ms = 20},
]
"""


def test_transforms_load_from_toml_per_provider_and_route(tmp_path: Path) -> None:
    path = tmp_path / "streamactors.toml"
    path.write_text(TOML, encoding="utf-8")
    cfg = Config.load(path, env={"SA_TEST_PATTERN": "secret-\\w+"})
    assert cfg.providers["openai"].transforms == [
        RedactSpec("redact", pattern="sk-[A-Za-z0-9]{20,48}", replacement="[key]"),
        StopSpec("stop", ["END", "###"]),
    ]
    assert cfg.providers["claude"].transforms == []
    assert cfg.routes["chat"].transforms == [
        BlockListSpec("blocklist", ["darn"], "finish"),
        RedactSpec("redact", patterns=["\\d{3}-\\d{4}", "secret-\\w+"], max_match=12),
        CoalesceSpec("coalesce", 32, 20.0),
    ]


def test_defaults() -> None:
    cfg = Config.from_dict(
        {
            "providers": {
                "openai": {
                    "kind": "openai",
                    "transforms": [
                        {"kind": "redact", "pattern": "x"},
                        {"kind": "blocklist", "words": ["y"]},
                        {"kind": "coalesce"},
                    ],
                }
            }
        }
    )
    redact, blocklist, coalesce = cfg.providers["openai"].transforms
    assert redact == RedactSpec("redact", pattern="x", patterns=[], replacement="[redacted]", max_match=64)
    assert isinstance(redact, RedactSpec) and redact.all_patterns() == ["x"]
    assert blocklist == BlockListSpec("blocklist", ["y"], "error")
    assert coalesce == CoalesceSpec("coalesce", 64, 50.0)


def _provider(*entries: Any) -> dict[str, Any]:
    return {"providers": {"openai": {"kind": "openai", "transforms": list(entries)}}}


P = "providers.openai.transforms"


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"providers": {"openai": {"kind": "openai", "transforms": {"kind": "stop"}}}}, P, "expected a list of tables"),
        (_provider("redact"), f"{P}[0]", "expected a table ({kind = ...}), got str"),
        (_provider({"pattern": "x"}), f"{P}[0].kind", "required key is missing; one of: stop, redact, blocklist"),
        (_provider({"kind": "redac", "pattern": "x"}), f"{P}[0].kind", "unknown transform kind 'redac' (did you mean"),
        (_provider({"kind": "stop", "strings": ["a"]}, {"kind": "stop"}), f"{P}[1].strings", "required key is missing"),
        (_provider({"kind": "stop", "strings": []}), f"{P}[0].strings", "give at least one stop string"),
        (_provider({"kind": "stop", "strings": ["a", ""]}), f"{P}[0].strings[1]", "a stop string cannot be empty"),
        (_provider({"kind": "stop", "strings": "END"}), f"{P}[0].strings", "expected a list"),
        (_provider({"kind": "stop", "strings": ["a"], "pattern": "x"}), f"{P}[0].pattern", "unknown key"),
        (_provider({"kind": "redact", "pattern": "("}), f"{P}[0].pattern", "invalid regular expression '('"),
        (_provider({"kind": "redact", "pattern": "a?"}), f"{P}[0].pattern", "matches the empty string"),
        (_provider({"kind": "redact", "patterns": ["a", "[z"]}), f"{P}[0].patterns[1]", "invalid regular expression"),
        (_provider({"kind": "redact"}), f"{P}[0].pattern", "give exactly one of pattern"),
        (_provider({"kind": "redact", "pattern": "a", "patterns": ["b"]}), f"{P}[0].pattern", "exactly one of"),
        (_provider({"kind": "redact", "pattern": "a", "max_match": 0}), f"{P}[0].max_match", "1 or more, got 0"),
        (_provider({"kind": "redact", "pattern": "a", "replacement": 5}), f"{P}[0].replacement", "expected a string"),
        (_provider({"kind": "blocklist", "words": ["x"], "action": "stop"}), f"{P}[0].action", 'must be "error" or'),
        (_provider({"kind": "blocklist", "words": ["x", " "]}), f"{P}[0].words[1]", "cannot be empty or blank"),
        (_provider({"kind": "coalesce", "min_chars": 0}), f"{P}[0].min_chars", "must be greater than 0"),
        (_provider({"kind": "coalesce", "max_delay_ms": -1}), f"{P}[0].max_delay_ms", "must be greater than 0"),
        (
            {
                "providers": {"openai": {"kind": "openai"}},
                "routes": {"r": {"targets": ["openai/m"], "transforms": [{"kind": "stop", "strings": [1]}]}},
            },
            "routes.r.transforms[0].strings[0]",
            "expected a string, got int",
        ),
    ],
)
def test_errors_name_the_key(data: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data)
    assert info.value.key == key
    assert f"{key}: " in str(info.value) and fragment in str(info.value)
