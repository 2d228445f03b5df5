"""The report pages in a real browser: headless Chromium loads each page from a file, with no
network and a fresh profile, and must draw every chart with no console error; it renders a
PNG of the page too. The page's own check (see `reports.page`) writes what went wrong into the
DOM, read back through `--dump-dom`; Chromium's console lines on stderr are checked as well.

Nothing is installed here: `scripts/test` installs Debian's `chromium` when it is missing and
it runs as root. Without a Chromium these tests are skipped, saying why.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from test_logs_html import HOSTILE_ID, _hand_written
from test_stress_html import known_report

from streamactors.reports.charts import Markup
from streamactors.reports.logreport import summarize
from streamactors.reports.logs_page import render_logs_html
from streamactors.reports.page import page
from streamactors.reports.stress_page import render_stress_html
from streamactors.stress import StressOptions, run_stress

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
WIDTH, HEIGHT = 1280, 1600


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    pytest.skip("no Chromium on PATH: scripts/test installs Debian's chromium package when it runs as root")


def _run(html: str, tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name}.html"
    path.write_text(html)
    profile = tmp_path / f"profile-{name}-{len(extra)}"  # a fresh one for every run
    cmd = [_chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, path.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _console(stderr: str) -> list[str]:
    """Chromium's log lines for the page's console messages."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _checked(html: str, tmp_path: Path, name: str) -> dict[str, str]:
    """Load the page; return the attributes its check left on <html>."""
    done = _run(html, tmp_path, name, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    start = re.search(r"<html([^>]*)>", done.stdout)
    assert start is not None, done.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', start.group(1)))
    attrs["console"] = "\n".join(_console(done.stderr))
    attrs["dom"] = done.stdout
    return attrs


def _screenshot(html: str, tmp_path: Path, name: str) -> bytes:
    png = tmp_path / f"{name}.png"
    done = _run(html, tmp_path, name, f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console(done.stderr) == []
    return png.read_bytes()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _assert_clean(found: dict[str, str]) -> None:
    assert found["data-errors"] == ""
    assert found["console"] == ""
    assert int(found["data-charts"]) > 0
    assert found["data-charts-drawn"] == found["data-charts"]


async def test_a_real_stress_runs_page_draws_every_chart(tmp_path: Path) -> None:
    """A short run with faults and the baseline: every chart drawn, no error, a PNG of the page."""
    opts = StressOptions(
        tokens=3000,
        requests=30,
        concurrency=6,
        providers=("openai", "anthropic", "bedrock"),
        fail_rate=0.1,
        midstream_rate=0.1,
        idle_streams=0,
        baseline=True,
        sample_interval=0.1,
        json=True,
        progress=False,
    )
    html = render_stress_html(await run_stress(opts, io.StringIO()))
    found = _checked(html, tmp_path, "stress")
    _assert_clean(found)
    assert int(found["data-charts"]) >= 6
    shot = _screenshot(html, tmp_path, "stress")
    assert _png_size(shot) == (WIDTH, HEIGHT)
    assert len(shot) > 50_000  # a blank page of this size is under 20 KB


def test_the_known_stress_page_and_the_logs_page_draw_every_chart(tmp_path: Path) -> None:
    stress = _checked(render_stress_html(known_report(baseline=True)), tmp_path, "known")
    _assert_clean(stress)
    assert stress["data-charts"] == "7"

    logs_html = render_logs_html(summarize(_hand_written(), slowest=5, detail=True), source="demo.log")
    logs = _checked(logs_html, tmp_path, "logs")
    _assert_clean(logs)
    assert logs["data-charts"] == "3"
    # The hostile request id is text in the rendered DOM, not a script that ran.
    assert '&lt;script&gt;alert("id")&lt;/script&gt;&amp;\ufffd' in logs["dom"]
    assert HOSTILE_ID.split("&")[0] not in logs["dom"]
    assert _png_size(_screenshot(logs_html, tmp_path, "logs")) == (WIDTH, HEIGHT)


def test_the_pages_check_reports_what_went_wrong(tmp_path: Path) -> None:
    """The check is not blind: an outside image (blocked, never fetched) and a script error
    both end up in data-errors and on Chromium's console."""
    body = [Markup('<img src="http://127.0.0.1:9/x.png" alt=""/><script>noSuchFunction();</script>')]
    found = _checked(page("broken", "a page that must fail its check", body), tmp_path, "broken")
    assert "blocked http://127.0.0.1:9/x.png by img-src" in found["data-errors"]
    assert "noSuchFunction is not defined" in found["data-errors"]
    assert "noSuchFunction is not defined" in found["console"]
    assert found["data-charts"] == found["data-charts-drawn"] == "0"
