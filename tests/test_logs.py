"""The log pipeline's own processors."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import orjson
import pytest

from streamactors.logs import BatchedSink, UtcTimeStamper


@pytest.mark.parametrize(
    "now", [1_764_000_000.0, 1_764_000_000.999999, 1_764_000_000.9999996, 1_764_000_001.000001, 951_782_400.5]
)
def test_utc_timestamps_match_datetime_isoformat(monkeypatch: pytest.MonkeyPatch, now: float) -> None:
    stamper = UtcTimeStamper()
    for t in (now - 1.25, now):  # a cached second from an earlier call must not leak into this one
        monkeypatch.setattr(time, "time", lambda t=t: t)
        stamp = stamper(None, "info", {})["timestamp"]
        expected = datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
        if "." not in expected:
            expected = expected[:-1] + ".000000Z"
        assert stamp == expected
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)


class _Writes(io.StringIO):
    """A text stream that records each write (each would be a system call on a pipe)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def test_batched_sink_writes_lines_together_and_errors_at_once() -> None:
    out = _Writes()
    sink = BatchedSink(out, max_delay=3600.0)
    sink.info("a")
    sink.debug("b")
    assert out.writes == []  # waiting for a batch
    sink.warning("c")  # a warning goes at once, after what waited, in order
    assert out.writes == ["a\nb\nc\n"]
    sink.info("d")
    sink.flush()
    sink.flush()
    assert out.writes == ["a\nb\nc\n", "d\n"]


def test_batched_sink_bounds_the_wait_and_the_size() -> None:
    out = _Writes()
    sink = BatchedSink(out, max_delay=0.05, max_bytes=10)
    sink.info("12345")
    sink.info("67890")  # 10 bytes waiting: written
    assert out.writes == ["12345\n67890\n"]
    sink.info("x")
    sink.flush_due()
    assert out.writes[1:] == []
    time.sleep(0.06)
    sink.flush_due()  # the oldest line has waited max_delay
    assert out.writes[1:] == ["x\n"]
    sink.info("y")
    time.sleep(0.06)
    sink.info("z")  # the next line writes the batch whose first line waited too long
    assert out.writes[2:] == ["y\nz\n"]


def test_batched_lines_reach_stderr_at_exit_and_bytes_streams_work() -> None:
    """A process that logs and exits loses nothing: the sink is flushed at interpreter exit."""
    code = (
        "from streamactors.config.schema import LoggingConfig\n"
        "from streamactors.logs import make_logger\n"
        "log = make_logger(LoggingConfig())\n"
        "for i in range(3): log.info('line', i=i)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert [orjson.loads(line)["i"] for line in done.stderr.splitlines()] == [0, 1, 2]
    raw = io.BytesIO()
    sink = BatchedSink(raw, max_delay=3600.0)
    sink.info(b'{"a":1}')
    sink.error(b'{"b":2}')
    assert raw.getvalue() == b'{"a":1}\n{"b":2}\n'
