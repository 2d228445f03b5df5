"""The strict converter behind `Config.from_dict`, and the translation of its errors into
`ConfigError`s that name the key (as a dotted path) and say how to fix it. It knows no part
of the schema: `schema.py` hands it each table and the class to build."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, get_origin

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from ..errors import ConfigError, FieldValueError
from .secret import Secret

__all__ = ["resolve_env", "structure", "suggest"]

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _strict(kind: type) -> Any:
    def hook(value: Any, _: Any) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {_TYPE_NAMES[kind]}, got {type(value).__name__} {value!r:.60}")
        return value

    return hook


def _secret(value: Any, _: Any) -> Secret:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return Secret(value)


def _is_list(cl: Any) -> bool:
    return get_origin(cl) is list


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    for kind in (str, int, float, bool):
        conv.register_structure_hook(kind, _strict(kind))
    conv.register_structure_hook(Secret, _secret)

    def strict_list(cl: Any) -> Any:
        # cattrs would make a list of a string's characters: targets = "a/b" -> ["a", "/", "b"].
        items = list_structure_factory(cl, conv)

        def hook(value: Any, _: Any) -> Any:
            if not isinstance(value, list):
                raise TypeError(f"expected a list (an array, [...]), got {type(value).__name__}")
            return items(value, cl)

        return hook

    conv.register_structure_hook_factory(_is_list, strict_list)
    return conv


_CONVERTER = _make_converter()


def suggest(word: str, choices: Any) -> str:
    near = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _is_table(cl: Any) -> bool:
    return attrs.has(cl) or get_origin(cl) is dict or cl is dict


def _errors(exc: BaseException, path: str, cl: Any) -> list[tuple[str, str]]:
    """(key path, message) pairs for every leaf error in a cattrs exception tree."""
    if isinstance(exc, ForbiddenExtraKeysError):
        names = [a.name for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        return [
            (f"{path}.{key}", f"unknown key{suggest(key, names)}; valid keys: {', '.join(names)}")
            for key in sorted(exc.extra_fields)
        ]
    if isinstance(exc, ClassValidationError | IterableValidationError):
        out: list[tuple[str, str]] = []
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            name = getattr(note, "name", None)
            index = getattr(note, "index", None)
            sub_path = f"{path}.{name}" if name is not None else f"{path}[{index!r}]"
            out += _errors(sub, sub_path, getattr(note, "type", None))
        for sub in without:
            out += _errors(sub, path, exc.cl if isinstance(exc, ClassValidationError) else None)
        return out
    if isinstance(exc, KeyError):
        return [(path, "required key is missing")]
    if isinstance(exc, FieldValueError):
        return [(f"{path}.{exc.field}", str(exc))]
    if isinstance(exc, TypeError | AttributeError) and _is_table(cl):
        # A scalar or a list where a table belongs fails inside cattrs with a Python message.
        return [(path, f"expected a table ([{path}] or {{...}}), got a value of another type")]
    return [(path, str(exc))]


def _raise(exc: BaseException, path: str) -> None:
    errors = _errors(exc, path, None)
    lines = [f"{key}: {msg}" for key, msg in errors]
    key = errors[0][0] if errors else path
    raise ConfigError("invalid config:\n  " + "\n  ".join(lines), key=key) from None


def resolve_env(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in env:
            raise ConfigError(
                f"invalid config: {path}: environment variable {name!r} is not set "
                f'(set it, or write the value itself instead of "env:{name}")',
                key=path,
            )
        return env[name]
    if isinstance(value, Mapping):
        return {k: resolve_env(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def structure(data: Any, cl: type, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid config: {path}: expected a table, got {type(data).__name__}", key=path)
    try:
        return _CONVERTER.structure(data, cl)
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError) as exc:
        _raise(exc, path)
    except FieldValueError as exc:  # our attrs validators run in __init__
        key = f"{path}.{exc.field}"
        raise ConfigError(f"invalid config: {key}: {exc}", key=key) from None
