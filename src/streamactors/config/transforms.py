"""`transforms = [...]` in a provider's or a route's table: one table per transform, in order.

    [providers.openai]
    transforms = [
      {kind = "redact", pattern = "sk-[A-Za-z0-9]{20,48}", replacement = "[key]"},
      {kind = "stop", strings = ["END", "###"]},
    ]

Kinds: "stop" (`strings`), "redact" (`pattern` or `patterns`, `replacement`, `max_match`),
"blocklist" (`words`, `action` "error" or "finish"), "coalesce" (`min_chars`,
`max_delay_ms`). Each entry is checked here, with errors naming its key
(`providers.openai.transforms[0].pattern: invalid regular expression ...`); the stream builds
fresh transforms from these specs for every request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..errors import ConfigError, FieldValueError
from ..transforms.blocklist import check_action, check_words
from ..transforms.redact import DEFAULT_MAX_MATCH, check_max_match, check_patterns
from ..transforms.stop import check_strings
from .load import structure, suggest

__all__ = [
    "TRANSFORM_KINDS",
    "BlockListSpec",
    "CoalesceSpec",
    "RedactSpec",
    "StopSpec",
    "TransformSpec",
    "parse_transforms",
    "split_transforms",
]


def _checked(check: Callable[[Any], tuple[str, str] | None]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """An attrs validator from a transform's own check (which names the key it faults)."""

    def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        problem = check(value)
        if problem is not None:
            raise FieldValueError(problem[0], problem[1])

    return validate


def _field(name: str, check: Callable[[Any], str | None]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    return _checked(lambda value: None if (why := check(value)) is None else (name, why))


def _positive(inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise FieldValueError(attribute.name, f"must be greater than 0, got {value!r}")


@attrs.frozen
class TransformSpec:
    """One entry of a `transforms` list; `kind` selects the subclass."""

    kind: str


@attrs.frozen
class StopSpec(TransformSpec):
    """`{kind = "stop", strings = [...]}`: `StopSequences(strings)`."""

    strings: list[str] = attrs.field(validator=_checked(check_strings))


@attrs.frozen
class RedactSpec(TransformSpec):
    """`{kind = "redact", pattern = "..."}` (or `patterns = [...]`), with `replacement`
    ("[redacted]") and `max_match` (64): `Redact(patterns, replacement, max_match=...)`."""

    pattern: str | None = None
    patterns: list[str] = attrs.field(factory=list)
    replacement: str = "[redacted]"
    max_match: int = attrs.field(default=DEFAULT_MAX_MATCH, validator=_field("max_match", check_max_match))

    def __attrs_post_init__(self) -> None:
        if (self.pattern is None) == (not self.patterns):
            raise FieldValueError("pattern", "give exactly one of pattern (one expression) and patterns (a list)")
        if self.pattern is not None:
            problem = check_patterns([self.pattern])
            if problem is not None:
                raise FieldValueError("pattern", problem[1])
        else:
            problem = check_patterns(self.patterns)
            if problem is not None:
                raise FieldValueError(problem[0], problem[1])

    def all_patterns(self) -> list[str]:
        """The expressions, whichever key gave them."""
        return [self.pattern] if self.pattern is not None else list(self.patterns)


@attrs.frozen
class BlockListSpec(TransformSpec):
    """`{kind = "blocklist", words = [...], action = "error"}`: `BlockList(words, action)`."""

    words: list[str] = attrs.field(validator=_checked(check_words))
    action: str = attrs.field(default="error", validator=_field("action", check_action))


@attrs.frozen
class CoalesceSpec(TransformSpec):
    """`{kind = "coalesce", min_chars = 64, max_delay_ms = 50}`: `Coalesce(min_chars, max_delay_ms)`."""

    min_chars: int = attrs.field(default=64, validator=_positive)
    max_delay_ms: float = attrs.field(default=50.0, validator=_positive)


TRANSFORM_KINDS: dict[str, type[TransformSpec]] = {
    "stop": StopSpec,
    "redact": RedactSpec,
    "blocklist": BlockListSpec,
    "coalesce": CoalesceSpec,
}


def parse_transforms(value: Any, path: str) -> list[TransformSpec]:
    """The specs of a `transforms` list at `path`; raises `ConfigError` naming the key."""
    if not isinstance(value, list):
        raise ConfigError(
            f'invalid config: {path}: expected a list of tables, as transforms = [{{kind = "redact", pattern = "..."}}]'
            f", got {type(value).__name__}",
            key=path,
        )
    specs: list[TransformSpec] = []
    kinds = ", ".join(TRANSFORM_KINDS)
    for i, table in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"invalid config: {where}: expected a table ({{kind = ...}}), got {type(table).__name__}", key=where
            )
        kind = table.get("kind")
        if kind is None:
            raise ConfigError(
                f"invalid config: {where}.kind: required key is missing; one of: {kinds}", key=f"{where}.kind"
            )
        if kind not in TRANSFORM_KINDS:
            raise ConfigError(
                f"invalid config: {where}.kind: unknown transform kind {kind!r}{suggest(str(kind), TRANSFORM_KINDS)}; "
                f"one of: {kinds}",
                key=f"{where}.kind",
            )
        specs.append(structure(table, TRANSFORM_KINDS[kind], where))
    return specs


def split_transforms(table: Mapping[str, Any], path: str) -> tuple[Mapping[str, Any], list[TransformSpec]]:
    """`table` without its `transforms` key, and that key's specs (the converter never sees
    the list: each entry's class depends on its kind)."""
    if "transforms" not in table:
        return table, []
    rest = {k: v for k, v in table.items() if k != "transforms"}
    return rest, parse_transforms(table["transforms"], f"{path}.transforms")
