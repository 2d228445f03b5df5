"""The policy modules stay pure: standard library and attrs only, no trio, no httpx, no clock."""

from __future__ import annotations

import ast
import pathlib

import pytest

import streamactors.policy

ALLOWED = {"__future__", "attrs", "bisect", "calendar", "collections", "datetime", "email", "enum", "itertools"}
ALLOWED |= {"math", "random", "re", "typing"}
POLICY_DIR = pathlib.Path(streamactors.policy.__file__).parent


@pytest.mark.parametrize("path", sorted(POLICY_DIR.glob("*.py")), ids=lambda p: p.name)
def test_imports_are_pure(path: pathlib.Path) -> None:
    """Only relative imports, the allowed stdlib modules and attrs; `time` is not among them."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            names = [node.module]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in ALLOWED, f"{path.name} imports {name}"
