"""`streamactors stress --workers N --redis URL`: the main job as N processes sharing one
budget; the report adds up the workers and shows what the fake upstream saw against the
budget. Without `--redis` the same run goes over budget, and says so (exit status 1)."""

from __future__ import annotations

import subprocess
import sys

import orjson

from redis_server import RedisServer
from streamactors.stress.fleet import busiest

# Two workers of 31 requests each: through Redis, against 60 requests a minute (a burst of
# 60, then one a second), the fleet's 62nd request goes about 2 s after the first; without
# it, against 30 a minute, each worker sends 30 at once and its 31st 2 s later.
ARGS = ["--workers", "2", "--providers", "openai", "--requests", "31", "--tokens", "310", "--concurrency", "31"]
ARGS += ["--json"]


def stress(*extra: str) -> tuple[int, dict[str, object], str]:
    done = subprocess.run(
        [sys.executable, "-m", "streamactors", "stress", *ARGS, *extra], capture_output=True, text=True, timeout=120
    )
    lines = done.stdout.strip().splitlines()
    return done.returncode, orjson.loads(lines[-1]), done.stdout


def test_the_fleet_stays_within_one_budget(redis_server: RedisServer) -> None:
    status, report, text = stress("--redis", redis_server.url, "--requests-per-minute", "60")
    assert status == 0, text
    assert (report["workers"], report["shared"], report["submitted"], report["completed"]) == (2, True, 62, 62)
    assert (report["lost"], report["duplicated"], report["reordered"], report["failed"]) == (0, 0, 0, 0)
    assert report["tokens_received"] == report["tokens_expected"] == 620
    assert report["upstream_requests"] == 62 and report["within_budget"] is True
    busy = report["busiest"]
    assert isinstance(busy, dict)
    assert busy["1s"]["upstream_requests"] <= 61 + 2 and (busy["1s"]["budget"], busy["1s"]["allowed"]) == (61.0, 63.0)
    assert busy["run"]["upstream_requests"] == 62 and 1.5 <= busy["run"]["window_s"] <= 4.0
    assert "within budget" in text and "OVER" not in text


def test_without_redis_each_worker_spends_its_own_budget() -> None:
    status, report, text = stress("--requests-per-minute", "30")
    assert status == 1
    assert report["shared"] is False and report["upstream_requests"] == 62 and report["completed"] == 62
    assert report["within_budget"] is False
    one_second = report["busiest"]["1s"]  # type: ignore[index]
    assert one_second["upstream_requests"] >= 60 and one_second["allowed"] == 32.5
    assert "OVER BUDGET" in text


def test_busiest_window() -> None:
    assert busiest([], 1.0) == 0
    assert busiest([0.0, 0.5, 1.0, 1.01, 3.0], 1.0) == 3  # both ends count
    assert busiest([0.0, 0.5, 1.0, 1.01, 3.0], 0.1) == 2
