"""`streamactors logs`: the report over real service logs, and over damaged or filtered input."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import write_service_log
from streamactors.cli import main
from streamactors.reports.logreport import LogFilter, parse_since, story, summarize
from streamactors.testing import FakeUpstream


@pytest.fixture
async def service_log(fake: FakeUpstream, tmp_path: Path) -> Path:
    """Log lines written by the real service to a file through `[logging] file`."""
    requests = [
        ("ok-1", "openai/gpt-4o~tokens=5"),
        ("ok-2", "openai/gpt-4o~tokens=7"),
        ("ok-3", "openai/gpt-4o~tokens=9~ttft_ms=30"),
        ("rate-limited", "openai/gpt-4o~fail=status:429~retry_after=0.01"),
        ("claude-1", "anthropic/claude-x~tokens=8"),
        ("claude-2", "anthropic/claude-x~tokens=8~ttft_ms=20"),
        ("overloaded", "anthropic/claude-x~tokens=8~fail=midstream@3"),
    ]
    return await write_service_log(fake, tmp_path / "service.log", requests, max_retries=2)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _group(report: dict[str, Any], provider: str) -> dict[str, Any]:
    (group,) = [g for g in report["groups"] if g["provider"] == provider]
    return group


class TestRealServiceLogs:
    async def test_summary_per_provider_and_model(self, service_log: Path) -> None:
        """Requests, errors by kind, retries, tokens and latencies, from the service's own lines."""
        r = summarize(_lines(service_log))
        assert r["skipped"] == {"malformed": 0, "partial": 0}
        assert r["requests"] == 7
        assert r["events"]["request_start"] == 7 and r["events"]["request_end"] == 7
        assert r["events"]["retry"] == 2 and r["events"]["service_started"] == 1
        # Each fake scenario is its own model id: group on the provider and check the sums.
        by_provider: dict[str, dict[str, int]] = {}
        for g in r["groups"]:
            acc = by_provider.setdefault(g["provider"], {"requests": 0, "ok": 0, "errors": 0, "retries": 0, "out": 0})
            acc["requests"] += g["requests"]
            acc["ok"] += g["ok"]
            acc["errors"] += g["errors"]
            acc["retries"] += g["retries"]
            acc["out"] += g["output_tokens"]
        assert by_provider["openai"] == {"requests": 4, "ok": 3, "errors": 1, "retries": 2, "out": 5 + 7 + 9}
        assert by_provider["anthropic"] == {"requests": 3, "ok": 2, "errors": 1, "retries": 0, "out": 16}
        limited = next(g for g in r["groups"] if "429" in g["model"])
        assert limited["errors_by_kind"] == {"http_status": 1}
        slow = next(g for g in r["groups"] if g["model"] == "gpt-4o~tokens=9~ttft_ms=30")
        assert slow["ttft_ms"]["p50"] >= 30 and slow["duration_ms"]["p99"] >= slow["ttft_ms"]["p99"]
        assert r["slowest"][0]["duration_ms"] == max(s["duration_ms"] for s in r["slowest"])
        assert len(r["slowest"]) == 5

    async def test_one_requests_story_in_order(self, service_log: Path) -> None:
        lines, skipped = story(_lines(service_log), "rate-limited")
        assert [obj["event"] for obj in lines] == ["request_start", "retry", "retry", "request_end"]
        assert [obj.get("attempt") for obj in lines[1:3]] == [1, 2]
        assert lines[-1]["status"] == "error" and lines[-1]["http_status"] == 429
        assert skipped == {"malformed": 0, "partial": 0}

    async def test_filters(self, service_log: Path) -> None:
        lines = _lines(service_log)
        errors = summarize(lines, LogFilter(errors_only=True))
        assert errors["requests"] == 2
        assert {g["provider"] for g in errors["groups"]} == {"openai", "anthropic"}
        anthropic = summarize(lines, LogFilter(provider="anthropic"))
        assert {g["provider"] for g in anthropic["groups"]} == {"anthropic"} and anthropic["requests"] == 3
        future = summarize(lines, LogFilter(since=datetime.now(UTC) + timedelta(hours=1)))
        assert future["requests"] == 0 and future["events"] == {}
        recent = summarize(lines, LogFilter(since=parse_since("10m")))
        assert recent["requests"] == 7

    async def test_cli_table_json_story_and_stdin(
        self, service_log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert main(["logs", str(service_log)]) == 0
        table = capsys.readouterr().out
        assert "openai/gpt-4o~tokens=5" in table and "slowest requests:" in table and "retry 2" in table

        assert main(["logs", str(service_log), "--json", "--provider", "openai"]) == 0
        report = orjson.loads(capsys.readouterr().out)
        assert report["requests"] == 4

        assert main(["logs", str(service_log), "--request", "overloaded"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("request overloaded: anthropic/claude-x~tokens=8~fail=midstream@3")
        assert "request_start" in out[1] and "request_end" in out[-1] and "error_kind=upstream" in out[-1]

        assert main(["logs", str(service_log), "--request", "no-such-id"]) == 1
        capsys.readouterr()

        monkeypatch.setattr("sys.stdin", io.StringIO(b"".join(_lines(service_log)).decode()))
        assert main(["logs", "--json", "--errors"]) == 0
        assert orjson.loads(capsys.readouterr().out)["requests"] == 2


def _line(**fields: Any) -> str:
    base = {"level": "info", "timestamp": "2026-03-01T12:00:00.000000Z"}
    return orjson.dumps({**base, **fields}).decode() + "\n"


def _end(rid: str, **fields: Any) -> str:
    defaults = {
        "provider": "openai",
        "model": "gpt-4o",
        "status": "ok",
        "ttft_ms": 10.0,
        "duration_ms": 100.0,
        "input_tokens": 3,
        "output_tokens": 7,
        "retries": 0,
    }
    return _line(event="request_end", request_id=rid, **{**defaults, **fields})


class TestDamagedAndHandWrittenInput:
    def test_malformed_and_partial_lines_are_counted_and_skipped(self) -> None:
        lines = [
            _line(event="request_start", request_id="a", provider="openai", model="gpt-4o"),
            "this is not json\n",
            "[1, 2, 3]\n",  # JSON, but not an event object
            "\n",
            _end("a"),
            '{"event": "request_end", "request_id": "b", "dur',  # the file was cut mid-line
        ]
        r = summarize(lines)
        assert r["skipped"] == {"malformed": 2, "partial": 1}
        assert r["requests"] == 1 and r["lines"] == 5

    def test_unfinished_requests_and_other_events(self) -> None:
        lines = [
            _line(event="request_start", request_id="a", provider="openai", model="gpt-4o"),
            _line(event="request_start", request_id="b", provider="openai", model="gpt-4o"),
            _end("a"),
            _line(event="circuit_transition", provider="openai"),
            _line(msg="no event key at all"),
        ]
        r = summarize(lines)
        (g,) = r["groups"]
        assert g["requests"] == 1 and g["unfinished"] == 1
        assert r["events"]["circuit_transition"] == 1 and r["events"]["(no event)"] == 1

    def test_percentiles_and_slowest(self) -> None:
        lines = [_end(f"r{i}", duration_ms=float(i), ttft_ms=float(i) / 10) for i in range(1, 101)]
        r = summarize(lines, slowest=3)
        (g,) = r["groups"]
        assert g["duration_ms"] == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
        assert g["ttft_ms"]["p50"] == 5.0
        assert [s["request_id"] for s in r["slowest"]] == ["r100", "r99", "r98"]
        assert g["input_tokens"] == 300 and g["output_tokens"] == 700

    def test_errors_by_kind(self) -> None:
        lines = [
            _end("a", status="error", error_kind="timeout"),
            _end("b", status="error", error_kind="timeout"),
            _end("c", status="error", error_kind="http_status", http_status=503),
            _end("d", status="cancelled"),
            _end("e"),
        ]
        (g,) = summarize(lines)["groups"]
        assert g["errors_by_kind"] == {"http_status": 1, "timeout": 2}
        assert (g["ok"], g["errors"], g["cancelled"]) == (1, 3, 1)

    def test_since_accepts_iso_and_relative(self) -> None:
        now = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
        assert parse_since("10m", now) == now - timedelta(minutes=10)
        assert parse_since("1h30m", now) == now - timedelta(minutes=90)
        assert parse_since("2026-03-01T12:00:00Z") == datetime(2026, 3, 1, 12, tzinfo=UTC)
        assert parse_since("2026-03-01T12:00:00") == datetime(2026, 3, 1, 12, tzinfo=UTC)
        with pytest.raises(ValueError, match="ISO 8601"):
            parse_since("yesterday")
        early = _end("early").replace("12:00:00.000000Z", "11:00:00.000000Z")
        r = summarize([early, _end("late")], LogFilter(since=parse_since("2026-03-01T11:30:00Z")))
        assert r["requests"] == 1 and r["slowest"][0]["request_id"] == "late"
