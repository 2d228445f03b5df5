"""`streamactors stress --html`: the page of a known run (phases built by hand, the report built
by the harness's own `build_report`) and of a real run through the CLI, read back as a parsed
document: the charts, their series and point counts, the tables, escaping, nothing outside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from htmlcheck import SVG, chart, charts, outside_references, parse, rules, text

from streamactors.cli import main
from streamactors.reports.stress_page import render_stress_html
from streamactors.stress.options import StressOptions
from streamactors.stress.report import build_report
from streamactors.stress.stats import Phase, Tally, TokenChecker
from streamactors.stress.timeseries import PhaseSampler

MB = 1024 * 1024
HOSTILE = '<img src=x onerror="alert(1)">&amp;'


def _phase(label: str, hostile_kind: bool) -> Phase:
    """Two providers, read four times: 2 x 500 tokens a span, one timeout in the 2nd span,
    two upstream errors (or the hostile kind) in the 4th; then the end at 2.2 s."""
    phase = Phase(label, {"openai": Tally(), "anthropic": Tally()})
    sampler = PhaseSampler(0.5)
    for i, t in enumerate((0.5, 1.0, 1.5, 2.0)):
        for provider in phase.tallies:
            tally = phase.tallies[provider]
            tally.submitted += 1
            checker = TokenChecker()
            checker.feed("".join(f"t{k} " for k in range(500)))
            tally.close(checker, 500, None)
            for ms in (10, 20, 40):
                tally.ttft.add(ms * (i + 1) / 1000)
            tally.itl.add(0.001)
        if i == 1:
            phase.tallies["openai"].errors_by_kind["timeout"] = 1
        if i == 3:
            phase.tallies["anthropic"].errors_by_kind[HOSTILE if hostile_kind else "upstream"] = 2
        sampler.see((60 + 10 * i) * MB, 4 - i)
        sampler.tick(phase, t)
    phase.elapsed = 2.2
    phase.cpu_s = 1.1
    phase.rss_warm, phase.warm_at = 70 * MB, 1.0
    phase.rss_end = phase.rss_peak = 95 * MB
    phase.tokens_due = 4000
    phase.timeseries = sampler.close(phase, 2.2, 95 * MB)
    return phase


def known_report(*, baseline: bool = False, hostile_kind: bool = False) -> dict[str, Any]:
    opts = StressOptions(tokens=4000, concurrency=4, baseline=baseline)
    main_phase = _phase("service", hostile_kind)
    base = _phase("baseline", False) if baseline else None
    idle = {"idle_streams": 4, "idle_stream_kb": 30.0}
    report = build_report(opts, ["openai", "anthropic"], main_phase, base, idle, 40 * MB)
    return orjson.loads(orjson.dumps(report))  # as --json prints it


class TestKnownRun:
    def test_the_charts_hold_the_expected_series_and_points(self) -> None:
        r = known_report()
        assert r["timeseries"]["t_s"] == [0.5, 1.0, 1.5, 2.2]
        root = parse(render_stress_html(r))
        assert charts(root) == {
            "tokens_per_s": [("service", 4)],
            "rss": [("service", 4)],
            "in_flight": [("service", 4)],
            # 10, 20 and 40 ms times 1, 2, 3 and 4: 8 distinct first-token times
            "ttft_cdf": [("openai", 8), ("anthropic", 8), ("all", 8)],
            "itl_percentiles": [("openai", 5), ("anthropic", 5), ("all", 5)],
            # bars: one span with a timeout, one with upstream errors
            "errors": [("timeout", 1), ("upstream", 1)],
        }
        assert rules(root, "rss") == ["warm-up", "after warm-up 70.0 MB"]
        assert root.get("data-charts") == "6"

    def test_throughput_is_tokens_over_each_span(self) -> None:
        """1,000 tokens in 0.5 s is 2,000 tokens/s; the last point joined the sliver at the end."""
        root = parse(render_stress_html(known_report()))
        svg = chart(root, "tokens_per_s")
        (series,) = [g for g in svg.iter(SVG + "g") if g.get("data-series") == "service"]
        path = series.find(SVG + "path")
        assert path is not None
        ys = [float(point.split(",")[1]) for point in (path.get("d") or "").replace("M", "").split(" L")]
        assert len(ys) == 4 and ys[0] == ys[1] == ys[2] and ys[3] > ys[0]  # 1,000/0.7 s < 2,000/s: lower
        ticks = [t.text for t in svg.iter(SVG + "text")]
        assert "2000" in ticks and "tokens/s" in ticks

    def test_the_baseline_sits_beside_the_service(self) -> None:
        found = charts(parse(render_stress_html(known_report(baseline=True))))
        for key in ("tokens_per_s", "rss", "in_flight"):
            assert found[key] == [("service", 4), ("baseline (bare httpx)", 4)], key
        assert found["ttft_cdf"][-1] == ("baseline (bare httpx)", 8)
        assert found["itl_percentiles"][-1] == ("baseline (bare httpx)", 5)
        assert found["baseline_errors"] == [("timeout", 1), ("upstream", 1)]

    def test_the_summary_tables(self) -> None:
        root = parse(render_stress_html(known_report()))
        tables = list(root.iter("table"))
        summary = {text(tr[0]): text(tr[1]) for tr in tables[0].iter("tr") if tr[0].tag == "td"}
        assert summary["tokens received / expected"] == "4,000 / 4,000"
        assert summary["errors by kind"] == "timeout 1, upstream 2"
        assert summary["RSS start / warm / peak / end"] == "40.0 / 70.0 / 95.0 / 95.0 MB"
        assert summary["RSS growth after warm-up"] == "25 MB"
        providers = [[text(td) for td in tr] for tr in tables[1].iter("tr")][1:]
        assert [row[:5] for row in providers] == [
            ["openai", "4", "0", "2,000", "0"],
            ["anthropic", "4", "0", "2,000", "0"],
        ]

    def test_text_from_outside_is_escaped(self) -> None:
        """An error kind is text wherever it shows: legend, series, tooltips, tables."""
        page = render_stress_html(known_report(hostile_kind=True))
        assert HOSTILE not in page and "<img" not in page
        root = parse(page)
        assert charts(root)["errors"] == [(HOSTILE, 1), ("timeout", 1)]
        legend = [text(li) for li in root.iter("li")]
        assert HOSTILE in legend
        assert any(HOSTILE in text(td) for td in root.iter("td"))

    def test_self_contained(self) -> None:
        page = render_stress_html(known_report(baseline=True))
        assert outside_references(page) == []
        root = parse(page)
        (csp,) = [m for m in root.iter("meta") if m.get("http-equiv") == "Content-Security-Policy"]
        assert (csp.get("content") or "").startswith("default-src 'none';")
        assert [s.get("src") for s in root.iter("script")] == [None]


class TestRealRun:
    def test_cli_writes_the_page_of_the_run_it_reports(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A 1.5 s soak read every 0.25 s: the page's series have as many points as the
        --json report's time series, one CDF line per provider plus "all"."""
        out = tmp_path / "report.html"
        argv = ["stress", "--tokens", "400", "--requests", "20", "--concurrency", "4", "--providers", "openai,gemini"]
        argv += ["--delay-ms", "2", "--duration", "1.5", "--idle-streams", "0", "--sample-interval", "0.25"]
        argv += ["--json", "--no-progress", "--html", str(out)]
        assert main(argv) == 0
        captured = capsys.readouterr()
        r = orjson.loads(captured.out.strip().splitlines()[-1])
        page = out.read_text()
        assert f"wrote {out} ({len(page.encode()):,} bytes)" in captured.err
        n = len(r["timeseries"]["t_s"])
        assert n >= 6 and r["timeseries"]["interval_s"] == 0.25
        found = charts(parse(page))
        assert found["tokens_per_s"] == found["rss"] == found["in_flight"] == [("service", n)]
        assert [label for label, _ in found["ttft_cdf"]] == ["openai", "gemini", "all"]
        assert [points for _, points in found["ttft_cdf"]] == [
            len(r["ttft_cdf_ms"][k]) for k in ("openai", "gemini", "all")
        ]
        assert found["itl_percentiles"] == [("openai", 5), ("gemini", 5), ("all", 5)]
        assert found["errors"] == []

    def test_a_path_that_cannot_be_written_fails_before_the_run(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        target = tmp_path / "no-such-dir" / "report.html"
        assert main(["stress", "--tokens", "10", "--concurrency", "1", "--html", str(target)]) == 2
        captured = capsys.readouterr()
        assert "streamactors stress: --html: [Errno 2] No such file or directory" in captured.err
        assert captured.out == ""  # no run, no report

    def test_html_with_workers_is_refused(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        target = tmp_path / "report.html"
        assert main(["stress", "--workers", "2", "--html", str(target)]) == 2
        assert "--html draws one process's run; it does not go with --workers" in capsys.readouterr().err
        assert not target.exists()

    def test_sample_interval_too_small_is_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exc:
            main(["stress", "--sample-interval", "0.01"])
        assert exc.value.code == 2
        assert "--sample-interval: '0.01': give at least 0.05 (seconds)" in capsys.readouterr().err


def test_rendering_is_a_pure_function_of_the_report() -> None:
    """The same report (or its JSON round trip) renders to the same page."""
    r = known_report(baseline=True)
    assert render_stress_html(r) == render_stress_html(orjson.loads(orjson.dumps(r)))
