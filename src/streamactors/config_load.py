"""The strict converter behind `Config.from_dict`, and the translation of its errors into
`ConfigError`s that name the key (as a dotted path) and say how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_origin

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from .errors import ConfigError, FieldValueError
from .secret import Secret

if TYPE_CHECKING:
    from .config import Config

__all__ = ["build_config"]

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


def _suggest(word: str, choices: Any) -> str:
    near = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _is_table(cl: Any) -> bool:
    return attrs.has(cl) or get_origin(cl) is dict or cl is dict


def _errors(exc: BaseException, path: str, cl: Any) -> list[tuple[str, str]]:
    """(key path, message) pairs for every leaf error in a cattrs exception tree."""
    if isinstance(exc, ForbiddenExtraKeysError):
        names = [a.name for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        return [
            (f"{path}.{key}", f"unknown key{_suggest(key, names)}; valid keys: {', '.join(names)}")
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


def _resolve_env(value: Any, path: str, env: Mapping[str, str]) -> Any:
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
        return {k: _resolve_env(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def _structure(data: Any, cl: type, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid config: {path}: expected a table, got {type(data).__name__}", key=path)
    try:
        return _CONVERTER.structure(data, cl)
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError) as exc:
        _raise(exc, path)
    except FieldValueError as exc:  # our attrs validators run in __init__
        key = f"{path}.{exc.field}"
        raise ConfigError(f"invalid config: {key}: {exc}", key=key) from None


def build_config(
    cls: type[Config], data: Mapping[str, Any], *, env: Mapping[str, str], base_dir: Path | None
) -> Config:
    """Validate `data` and build the config; raises `ConfigError`."""
    from .config import PROVIDER_KINDS, LoggingConfig, RouteConfig, ServiceSettings

    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid config: expected a table, got {type(data).__name__}")
    data = _resolve_env(data, "", env)
    allowed = ("providers", "routes", "logging", "service")
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"invalid config: {key}: unknown top-level table{_suggest(key, allowed)}; valid: {', '.join(allowed)}",
                key=key,
            )
    providers: dict[str, Any] = {}
    raw_providers = data.get("providers", {})
    if not isinstance(raw_providers, Mapping):
        raise ConfigError("invalid config: providers: expected a table of [providers.<name>]", key="providers")
    for name, table in raw_providers.items():
        path = f"providers.{name}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"invalid config: {path}: expected a table", key=path)
        kind = table.get("kind")
        if kind is None:
            raise ConfigError(
                f"invalid config: {path}.kind: required key is missing; one of: {', '.join(PROVIDER_KINDS)}",
                key=f"{path}.kind",
            )
        if kind not in PROVIDER_KINDS:
            raise ConfigError(
                f"invalid config: {path}.kind: unknown provider kind {kind!r}{_suggest(str(kind), PROVIDER_KINDS)}; "
                f"one of: {', '.join(PROVIDER_KINDS)}",
                key=f"{path}.kind",
            )
        pc = _structure(table, PROVIDER_KINDS[kind], path)
        if base_dir is not None and getattr(pc, "credentials_file", None):
            pc = attrs.evolve(pc, credentials_file=str(base_dir / pc.credentials_file))
        providers[name] = pc
    routes = {}
    for name, table in (data.get("routes") or {}).items():
        route = _structure(table, RouteConfig, f"routes.{name}")
        _check_route(name, route, providers)
        routes[name] = route
    logging = _structure(data.get("logging", {}), LoggingConfig, "logging")
    if logging.format not in ("json", "console"):
        raise ConfigError(
            f'invalid config: logging.format: must be "json" or "console", got {logging.format!r}',
            key="logging.format",
        )
    if base_dir is not None and logging.file:
        logging = attrs.evolve(logging, file=str(base_dir / logging.file))
    service = _structure(data.get("service", {}), ServiceSettings, "service")
    return cls(providers=providers, routes=routes, logging=logging, service=service)


def _check_route(name: str, route: Any, providers: Mapping[str, Any]) -> None:
    path = f"routes.{name}"
    if not route.targets:
        raise ConfigError(f'invalid config: {path}.targets: give at least one "provider/model"', key=path)
    for i, target in enumerate(route.targets):
        provider, sep, _ = target.partition("/")
        if not sep or provider not in providers:
            raise ConfigError(
                f'invalid config: {path}.targets[{i}]: {target!r} must be "<provider>/<model>" with a provider '
                f"configured under [providers]{_suggest(provider, providers)}",
                key=f"{path}.targets",
            )
    if route.strategy not in ("fallback", "weighted", "least_latency"):
        raise ConfigError(
            f'invalid config: {path}.strategy: must be "fallback", "weighted" or "least_latency", '
            f"got {route.strategy!r}",
            key=f"{path}.strategy",
        )
    if route.strategy == "weighted" and (route.weights is None or len(route.weights) != len(route.targets)):
        raise ConfigError(
            f"invalid config: {path}.weights: the weighted strategy needs one weight per target",
            key=f"{path}.weights",
        )
