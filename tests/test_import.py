"""Importing the package does nothing: no client, no thread, no file or socket, no logging set-up.

Every module of the package is imported in a fresh interpreter, with httpx's client
constructors and the logging configuration watched; then the process's threads and open
file descriptors are compared with what it had before the imports.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = r"""
import importlib, logging, os, pkgutil, threading
import httpx, structlog

made = []
for cls in (httpx.AsyncClient, httpx.Client):
    original = cls.__init__
    def watched(self, *a, _original=original, _name=cls.__name__, **k):
        made.append(_name)
        _original(self, *a, **k)
    cls.__init__ = watched
configured = []
structlog.configure = lambda *a, **k: configured.append("structlog.configure")
logging.basicConfig = lambda *a, **k: configured.append("logging.basicConfig")
fds = set(os.listdir("/proc/self/fd"))
threads = threading.active_count()

import streamactors
names = sorted(m.name for m in pkgutil.walk_packages(streamactors.__path__, "streamactors."))
names.remove("streamactors.__main__")  # `python -m streamactors`: running the CLI is its job
for name in names:
    importlib.import_module(name)

assert len(names) > 50, names
assert not made, f"importing built {made}"
assert not configured, f"importing configured logging: {configured}"
assert threading.active_count() == threads, "importing started a thread"
opened = set(os.listdir("/proc/self/fd")) - fds
assert not opened, f"importing opened file descriptors {opened}"
assert not logging.getLogger().handlers, "importing added a root log handler"
print("imported", len(names))
"""


def test_importing_every_module_has_no_side_effects() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported ")
