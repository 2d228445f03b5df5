"""`streamactors logs FILE --html`: the detailed summary (requests over time by outcome, latency
distributions, the slowest requests' stories, in bounded memory) and its page read back as a
parsed document, from the real service's logs and from hand-written, hostile lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from htmlcheck import charts, outside_references, parse, text

from conftest import write_service_log
from streamactors.cli import main
from streamactors.reports import logreport
from streamactors.reports.logreport import story, summarize
from streamactors.reports.logs_page import render_logs_html
from streamactors.testing import FakeUpstream

HOSTILE_ID = '<script>alert("id")</script>&\x00'
HOSTILE_ERROR = "<img src=x onerror=alert(1)> & bye"


def _line(t: str, **fields: Any) -> bytes:
    return orjson.dumps({"level": "info", "timestamp": f"2026-03-01T12:00:{t}Z", **fields}) + b"\n"


def _request(
    rid: str, start: str, end: str, *, status: str = "ok", kind: str | None = None, **extra: Any
) -> list[bytes]:
    base = {"request_id": rid, "provider": "openai", "model": "gpt-4o"}
    end_fields = {"status": status, "error_kind": kind, "ttft_ms": 10.0, "duration_ms": 100.0, **extra}
    return [_line(start, event="request_start", **base), _line(end, event="request_end", **base, **end_fields)]


def _hand_written() -> list[bytes]:
    lines: list[bytes] = []
    lines += _request("a", "00.000000", "00.200000", duration_ms=200.0)
    lines += _request("b", "00.100000", "00.900000", duration_ms=800.0, ttft_ms=50.0)
    lines.insert(3, _line("00.500000", event="retry", request_id="b", attempt=1, provider="openai"))
    lines += _request("c", "01.000000", "02.500000", status="error", kind="timeout", duration_ms=1500.0)
    lines += _request(HOSTILE_ID, "02.000000", "03.100000", status="error", kind="upstream", error=HOSTILE_ERROR)
    lines += _request("d", "03.000000", "03.500000", status="cancelled", duration_ms=500.0)
    return lines


class TestDetail:
    def test_timeline_cdfs_and_stories_of_known_lines(self) -> None:
        r = summarize(_hand_written(), slowest=3, detail=True)
        # Ends at 0.2, 0.9, 2.5, 3.1 and 3.5 s: bins of 1/8 s from the one holding 0.2 s (bin 1) to 3.5 s (bin 28).
        assert r["timeline"] == {
            "start": "2026-03-01T12:00:00.125000Z",
            "start_s": 1772366400.125,
            "width_s": 0.125,
            "bins": 28,
        }
        (g,) = r["groups"]

        def at(*bins: int) -> list[int]:
            return [1 if i + 1 in bins else 0 for i in range(28)]

        assert g["timeline"] == {
            "ok": at(1, 7),
            "error:timeout": at(20),
            "error:upstream": at(24),
            "cancelled": at(28),
        }
        assert g["duration_ms_cdf"] == [[100.0, 0.2], [200.0, 0.4], [500.0, 0.6], [800.0, 0.8], [1500.0, 1.0]]
        assert g["ttft_ms_cdf"][-1] == [50.0, 1.0] and len(g["ttft_ms_cdf"]) == 5
        assert [s["request_id"] for s in r["slowest"]] == ["c", "b", "d"]
        for s in r["slowest"]:
            assert s["story"] == story(_hand_written(), s["request_id"])[0]
        assert [obj["event"] for obj in r["slowest"][1]["story"]] == ["request_start", "retry", "request_end"]

    def test_without_detail_the_summary_is_as_before(self) -> None:
        r = summarize(_hand_written())
        assert "timeline" not in r and "ttft_ms_cdf" not in r["groups"][0] and "story" not in r["slowest"][0]

    def test_a_long_log_stays_within_the_bins(self) -> None:
        """A day of requests, one a minute: 1/8 s bins doubled until the day fits in 240 bins."""
        lines = []
        for minute in range(24 * 60):
            ts = f"2026-03-01T{minute // 60:02d}:{minute % 60:02d}:00Z"
            lines.append(
                orjson.dumps(
                    {
                        "event": "request_end",
                        "request_id": f"r{minute}",
                        "provider": "p",
                        "model": "m",
                        "status": "ok",
                        "timestamp": ts,
                    }
                )
            )
        r = summarize(lines, detail=True)
        assert r["timeline"]["width_s"] == 512.0 and r["timeline"]["bins"] <= logreport.TIMELINE_BINS
        assert sum(r["groups"][0]["timeline"]["ok"]) == 24 * 60

    def test_held_lines_are_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A chatty request keeps its first STORY_LINES lines; past OPEN_STORIES requests
        not yet ended, the oldest one's lines are dropped."""
        monkeypatch.setattr(logreport, "STORY_LINES", 3)
        monkeypatch.setattr(logreport, "OPEN_STORIES", 2)
        ids = {"provider": "openai", "model": "m"}
        lines = [_line("00.000000", event="request_start", request_id="chatty", **ids)]
        lines += [_line("00.100000", event="tick", request_id="chatty", n=i) for i in range(5)]
        lines += [_line("00.200000", event="request_end", request_id="chatty", status="ok", duration_ms=5.0, **ids)]
        lines += [_line("00.300000", event="request_start", request_id="early", **ids)]
        # Two requests that never end: the second one pushes "early" out.
        lines += [_line("00.400000", event="request_start", request_id=f"never-{i}") for i in range(2)]
        lines += [_line("00.500000", event="request_end", request_id="early", status="ok", duration_ms=1.0, **ids)]
        chatty, early = summarize(lines, detail=True)["slowest"]
        assert [o["event"] for o in chatty["story"]] == [
            "request_start",
            "tick",
            "tick",
            "(more lines not kept)",
            "request_end",
        ]
        assert [o["event"] for o in early["story"]] == ["request_end"]


def _page_of(lines: list[bytes], **kw: Any) -> str:
    return render_logs_html(summarize(lines, slowest=3, detail=True), **kw)


class TestPage:
    def test_charts_tables_and_linked_stories(self) -> None:
        root = parse(_page_of(_hand_written(), source="demo.log"))
        assert charts(root) == {
            "all-timeline": [("ok", 2), ("cancelled", 1), ("timeout", 1), ("upstream", 1)],
            "group-1-timeline": [("ok", 2), ("cancelled", 1), ("timeout", 1), ("upstream", 1)],
            "group-1-latency": [("time to first token", 5), ("duration", 5)],
        }
        links = [a.get("href") for a in root.iter("a")]
        assert links == ["#chart-group-1-timeline", "#story-1", "#story-2", "#story-3"]
        targets = {el.get("id") for el in root.iter() if el.get("id")}
        assert {"chart-group-1-timeline", "story-1", "story-2", "story-3"} <= targets
        (second,) = [el for el in root.iter("section") if el.get("id") == "story-2"]
        assert text(second.find("h3")) == "request b: openai/gpt-4o, 3 lines"  # type: ignore[arg-type]
        rows = [[text(td) for td in tr] for tr in second.iter("tr")][1:]
        assert [row[2] for row in rows] == ["request_start", "retry", "request_end"]
        assert rows[1][3] == "attempt=1 provider=openai"
        assert root.get("data-charts") == "3"

    def test_everything_from_the_log_is_escaped(self) -> None:
        lines = _hand_written()
        page = render_logs_html(summarize(lines, slowest=5, detail=True))
        assert "<script>alert" not in page and "<img" not in page and "\x00" not in page
        root = parse(page)
        shown = HOSTILE_ID.replace("\x00", "\ufffd")
        assert shown in [text(a) for a in root.iter("a")]
        assert any(HOSTILE_ERROR in text(td) for td in root.iter("td"))
        assert outside_references(page) == []
        assert [s.get("src") for s in root.iter("script")] == [None]

    def test_an_empty_log(self) -> None:
        root = parse(render_logs_html(summarize([], detail=True)))
        assert charts(root) == {"all-timeline": []}
        assert [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "empty"] == [
            "no requests"
        ]


@pytest.fixture
async def service_log(fake: FakeUpstream, tmp_path: Path) -> Path:
    requests = [
        ("ok-1", "openai/gpt-4o~tokens=5"),
        ("ok-2", "openai/gpt-4o~tokens=5~ttft_ms=20"),
        ("limited", "openai/gpt-4o~fail=status:429~retry_after=0.01"),
        ("claude-1", "anthropic/claude-x~tokens=8"),
        ("overloaded", "anthropic/claude-x~tokens=8~fail=midstream@3"),
    ]
    return await write_service_log(fake, tmp_path / "service.log", requests, max_retries=1)


class TestRealLogs:
    async def test_cli_writes_the_page(
        self, service_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "logs.html"
        assert main(["logs", str(service_log), "--html", str(out), "--json"]) == 0
        captured = capsys.readouterr()
        r = orjson.loads(captured.out)
        page = out.read_text()
        assert f"streamactors logs: wrote {out} ({len(page.encode()):,} bytes)" in captured.err
        assert r["timeline"]["bins"] >= 1 and len(r["groups"]) == 5
        found = charts(parse(page))
        assert len(found) == 1 + 2 * 5
        for i, g in enumerate(r["groups"], 1):
            bars = found[f"group-{i}-timeline"]
            assert [label for label, _ in bars] == [
                o.removeprefix("error:") for o in sorted(g["timeline"], key=lambda o: (o != "ok", o != "cancelled", o))
            ]
            assert sum(points for _, points in bars) >= 1
        limited = next(s for s in r["slowest"] if s["request_id"] == "limited")
        assert [o["event"] for o in limited["story"]] == ["request_start", "retry", "request_end"]
        assert "request limited: openai/gpt-4o~fail=status:429~retry_after=0.01, 3 lines" in page

    async def test_html_with_request_is_refused(
        self, service_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["logs", str(service_log), "--request", "ok-1", "--html", str(tmp_path / "x.html")]) == 2
        assert "--html writes the summary, not --request's story" in capsys.readouterr().err
        assert not (tmp_path / "x.html").exists()
