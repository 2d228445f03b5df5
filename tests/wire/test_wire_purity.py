"""The codecs stay sans-IO: no module of `streamactors.wire`, nor the HTTP/1.1 codec modules
`http/fast/h1.py` and `http/fast/body.py`, imports an I/O or event-loop library.

Checked on the source with `ast` (every import, at any depth: in functions and
`TYPE_CHECKING` blocks too, and `importlib.import_module("...")`), and through the
package's own modules each one imports (`..errors`, `..models`, `.h1`, ...), so that an
impure helper cannot slip in one step away.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import streamactors

FORBIDDEN = frozenset({"trio", "httpx", "socket", "anyio", "ssl", "asyncio", "selectors"})
PACKAGE_DIR = pathlib.Path(streamactors.__file__).parent
WIRE_MODULES = sorted((PACKAGE_DIR / "wire").glob("*.py"))
HTTP_CODEC_MODULES = [PACKAGE_DIR / "http" / "fast" / "h1.py", PACKAGE_DIR / "http" / "fast" / "body.py"]


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> pathlib.Path | None:
    """The source file of a `streamactors` module (None for a name that is not one)."""
    base = PACKAGE_DIR.parent.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports(path: pathlib.Path) -> list[str]:
    """Every module the `streamactors` module at `path` imports."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(source: str, package: str) -> list[str]:
    """Every module `source` (a module of `package`) imports, as absolute names: relative
    imports resolved, and for `from x import y` both `x` and `x.y`, since `y` may be a module."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                assert node.module is not None
                module = node.module
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            names.append(node.args[0].value)  # type: ignore[attr-defined]
    return names


def _dynamic_import(node: ast.Call) -> bool:
    """`importlib.import_module("x")` or `__import__("x")` with a literal name."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return (
        name in ("import_module", "__import__")
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def impure_imports(path: pathlib.Path) -> list[str]:
    """Every forbidden import ("module imports name") of `path` and of the package modules
    it reaches through its imports."""
    return impure_through(module_name(path), imports(path))


def impure_through(label: str, names: list[str]) -> list[str]:
    """The forbidden imports among `names` (imported by `label`) and in the package modules
    they reach. (Package `__init__` files run on import are not followed unless imported by
    name: `streamactors/__init__.py` starts the service side.)"""
    found: list[str] = []
    seen: set[pathlib.Path] = set()
    todo = [(label, names)]
    while todo:
        importer, imported = todo.pop()
        for name in imported:
            if name.split(".")[0] in FORBIDDEN:
                found.append(f"{importer} imports {name}")
            elif name.split(".")[0] == "streamactors" and (target := module_path(name)) and target not in seen:
                seen.add(target)
                todo.append((module_name(target), imports(target)))
    return sorted(found)


@pytest.mark.parametrize("path", [*WIRE_MODULES, *HTTP_CODEC_MODULES], ids=module_name)
def test_codec_modules_import_no_io(path: pathlib.Path) -> None:
    assert impure_imports(path) == []


def test_every_wire_module_is_checked() -> None:
    """The glob found the package (an empty parametrization would pass vacuously)."""
    names = {p.name for p in WIRE_MODULES}
    assert {"base.py", "sse.py", "openai.py", "anthropic.py", "claude.py", "gemini.py", "bedrock.py"} <= names


def test_the_check_sees_imports_anywhere() -> None:
    """Nested, aliased, `from`, relative and dynamic imports are all seen."""
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import trio.lowlevel as tl\n"
        "def f():\n    from httpx import AsyncClient\n"
        "    import importlib\n    return importlib.import_module('asyncio')\n"
        "class C:\n    def g(self):\n        __import__('socket')\n"
        "import selectors, json\n"
        "from ssl import SSLContext\n"
        "from ..http.client import make_client\n"
        "from . import sse\n"
    )
    names = imports_in(source, "streamactors.wire")
    assert sorted(name for name in names if name.split(".")[0] in FORBIDDEN) == sorted(
        ["trio.lowlevel", "httpx", "httpx.AsyncClient", "asyncio", "socket", "selectors", "ssl", "ssl.SSLContext"]
    )
    assert {"streamactors.http.client", "streamactors.http.client.make_client", "streamactors.wire.sse"} <= set(names)


def test_the_check_follows_package_imports() -> None:
    """A module importing an impure one of ours is impure too: here one importing
    `http.client` (the transport side, which imports httpx and trio)."""
    names = imports_in("from ..http.client import make_client\n", "streamactors.wire")
    found = impure_through("streamactors.wire.probe", names)
    assert "streamactors.http.client imports httpx" in found and "streamactors.http.client imports trio" in found
    assert not any(f.startswith("streamactors.wire.probe ") for f in found)
