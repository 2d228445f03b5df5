"""The transforms stay sans-IO: no module of `streamactors.transforms` imports an I/O or
event-loop library, or the clock, directly or through the package modules it imports (checked
with the wire codecs' checker, tests/wire/test_wire_purity.py)."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

import pytest

import streamactors.transforms

TRANSFORM_MODULES = sorted(pathlib.Path(streamactors.transforms.__file__).parent.glob("*.py"))


def _wire_checker() -> ModuleType:
    path = pathlib.Path(__file__).parents[1] / "wire" / "test_wire_purity.py"
    spec = importlib.util.spec_from_file_location("wire_purity_checker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECKER = _wire_checker()
#: Beyond the codecs' list: the clock (a transform that needs time says so with a deadline and
#: lives with the stream, as `Coalesce` does).
FORBIDDEN = frozenset({"time"})


@pytest.mark.parametrize("path", TRANSFORM_MODULES, ids=lambda p: p.name)
def test_transform_modules_import_no_io(path: pathlib.Path) -> None:
    assert CHECKER.impure_imports(path) == []
    names = CHECKER.imports(path)
    assert [n for n in names if n.split(".")[0] in FORBIDDEN] == []


def test_every_transform_module_is_checked() -> None:
    assert {p.name for p in TRANSFORM_MODULES} >= {"__init__.py", "base.py", "stop.py", "redact.py", "blocklist.py"}
