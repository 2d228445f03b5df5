"""Shared helpers of the benchmarks in stress/: the fake upstream process, timing,
recorded fixtures, and the output every benchmark ends with (a table, then one JSON line)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from streamactors.stress import StressOptions, UpstreamProcess

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@contextmanager
def fake_upstream(events_per_chunk: int = 1) -> Iterator[str]:
    """The fake upstream in its own process, for the duration of the block; yields its URL."""
    proc = UpstreamProcess(StressOptions(events_per_chunk=events_per_chunk))
    url = proc.start()
    try:
        yield url
    finally:
        proc.stop()


def fixture_bytes(prefix: str, suffix: str = ".sse") -> list[bytes]:
    """Each recorded stream whose file name starts with `prefix`, in name order."""
    return [p.read_bytes() for p in sorted(FIXTURES.glob(f"{prefix}*{suffix}"))]


def two_cores() -> tuple[set[int] | None, set[int] | None]:
    """The first two cores this process may run on, each as a set for `os.sched_setaffinity`
    (as `taskset` pins), or Nones on a one-core machine."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return {cores[0]}, {cores[1]}


def cpu_seconds() -> float:
    """This process's CPU time (user + system) so far, to the nanosecond (os.times() counts
    in 10 ms ticks, too coarse for a short request)."""
    return time.process_time()


def best_of(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """(fastest wall time in seconds, fn's result) over `repeat` runs: the least disturbed run."""
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table on stdout (the first column left-aligned, numbers right-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(title)
    for r in [list(headers), *cells]:
        padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        print("  " + "  ".join(padded))


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def emit_json(bench: str, **data: Any) -> None:
    """The last line of every benchmark: one JSON object, with the machine it ran on."""
    info = {"bench": bench, "python": sys.version.split()[0], "cpus": os.cpu_count(), **data}
    print(orjson.dumps(info).decode(), flush=True)
