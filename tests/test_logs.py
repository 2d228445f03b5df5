"""The log pipeline's own processors."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from streamactors.logs import UtcTimeStamper


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
