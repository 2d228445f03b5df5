"""`streamactors stress`: stream N tokens over C concurrent requests through the service,
against the built-in fake upstream (in its own process), and prove none was lost.

Every stream's tokens are checked as they arrive (token i must be "t{i}"), so memory
does not grow with the number of tokens: the checker keeps one partial token per stream.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs
import orjson
import psutil
import trio

from .config import Config
from .errors import ProviderError
from .service import open_service

__all__ = ["FAKE_PROVIDER_KINDS", "StressOptions", "TokenChecker", "fake_config", "run_stress"]

#: Provider kinds the fake upstream speaks, each configured against it by `fake_config`.
FAKE_PROVIDER_KINDS: dict[str, dict[str, Any]] = {
    "openai": {"kind": "openai", "api_key": "sk-fake-stress-key", "base_url": "/v1"},
    "anthropic": {"kind": "anthropic", "api_key": "sk-ant-fake-stress-key", "base_url": ""},
    "gemini": {"kind": "gemini", "api_key": "fake-gemini-stress-key", "base_url": ""},
    "vertex": {
        "kind": "vertex",
        "access_token": "ya29.fake-stress-token",
        "project": "fake-project",
        "location": "us-central1",
        "base_url": "",
    },
    "bedrock": {
        "kind": "bedrock",
        "aws_access_key_id": "AKIAFAKESTRESS",
        "aws_secret_access_key": "fake/secret/stress",
        "region": "us-east-1",
        "endpoint_url": "",
    },
    "azure": {"kind": "azure", "api_key": "fake-azure-stress-key", "endpoint": ""},
    "xai": {"kind": "xai", "api_key": "xai-fake-stress-key", "base_url": "/xai/v1"},
    "openrouter": {"kind": "openrouter", "api_key": "sk-or-fake-stress-key", "base_url": "/api/v1"},
    "openai_compatible": {"kind": "openai_compatible", "base_url": "/compat/v1"},
}
_URL_KEYS = ("base_url", "endpoint_url", "endpoint")


@attrs.frozen
class StressOptions:
    """Knobs of one stress run (see `streamactors stress --help`)."""

    tokens: int = 1_000_000
    concurrency: int = 1000
    requests: int | None = None
    providers: tuple[str, ...] = ("all",)
    upstream: str | None = None
    ttft_ms: float = 0.0
    delay_ms: float = 0.0
    tokens_per_chunk: int = 1
    events_per_chunk: int = 1
    fail_rate: float = 0.0
    midstream_rate: float = 0.0
    log_file: str | None = None
    json: bool = False
    progress: bool = True


class TokenChecker:
    """Checks one stream's text, fragment by fragment, against t0 t1 t2 ... in O(1) memory."""

    __slots__ = ("_partial", "duplicated", "expected", "lost", "received")

    def __init__(self) -> None:
        self.expected = 0
        self.received = 0
        self.lost = 0
        self.duplicated = 0
        self._partial = ""

    def feed(self, text: str) -> None:
        """Take the next text fragment."""
        buf = self._partial + text if self._partial else text
        parts = buf.split(" ")
        self._partial = parts.pop()
        for word in parts:
            self._token(word)

    def _token(self, word: str) -> None:
        if not word.startswith("t") or not word[1:].isdigit():
            self.lost += 1  # a mangled token is as good as lost
            return
        n = int(word[1:])
        if n == self.expected:
            self.received += 1
            self.expected += 1
        elif n < self.expected:
            self.duplicated += 1
        else:
            self.lost += n - self.expected
            self.received += 1
            self.expected = n + 1

    def finish(self, total: int) -> None:
        """End of stream: anything still missing is lost."""
        if self._partial:
            self._token(self._partial)
            self._partial = ""
        if self.expected < total:
            self.lost += total - self.expected


def fake_config(base_url: str, providers: Sequence[str], concurrency: int) -> Config:
    """A config that points every chosen provider kind at the fake upstream."""
    names = list(FAKE_PROVIDER_KINDS) if "all" in providers else list(providers)
    table: dict[str, Any] = {}
    for name in names:
        spec = FAKE_PROVIDER_KINDS.get(name)
        if spec is None:
            raise SystemExit(f"unknown provider {name!r}; choose from: all, {', '.join(FAKE_PROVIDER_KINDS)}")
        entry = {k: (base_url + v if k in _URL_KEYS else v) for k, v in spec.items()}
        entry["max_concurrency"] = max(1, concurrency)
        entry["max_retries"] = 0
        table[name] = entry
    return Config.from_dict(
        {
            "providers": table,
            "logging": {"format": "json", "level": "warning"},
            "service": {"submission_buffer": 256},
        }
    )


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


class _Upstream:
    """The fake upstream in a child process (so it does not compete for our core)."""

    def __init__(self, opts: StressOptions) -> None:
        self.opts = opts
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        if self.opts.upstream:
            return self.opts.upstream.rstrip("/")
        cmd = [
            sys.executable,
            "-m",
            "streamactors",
            "mock-upstream",
            "--port",
            "0",
            "--events-per-chunk",
            str(self.opts.events_per_chunk),
            "--fail-rate",
            str(self.opts.fail_rate),
            "--midstream-rate",
            str(self.opts.midstream_rate),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise SystemExit(f"the fake upstream did not start (it said {line!r})")
        return line.removeprefix("listening on ")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def run_stress(opts: StressOptions, out: Any = None) -> dict[str, Any]:
    """Run the harness; print a report (and a JSON line with `opts.json`); return the report."""
    out = out or sys.stdout
    upstream = _Upstream(opts)
    base_url = await trio.to_thread.run_sync(upstream.start)
    try:
        return await _run(opts, base_url, out)
    finally:
        upstream.stop()


async def _run(opts: StressOptions, base_url: str, out: Any) -> dict[str, Any]:
    cfg = fake_config(base_url, opts.providers, opts.concurrency)
    if opts.log_file:
        cfg = attrs.evolve(cfg, logging=attrs.evolve(cfg.logging, level="info", file=opts.log_file))
    providers = list(cfg.providers)
    n_requests = opts.requests or max(1, min(opts.concurrency, opts.tokens))
    base, extra = divmod(opts.tokens, n_requests)
    proc = psutil.Process(os.getpid())
    rss = {"start": proc.memory_info().rss, "peak": 0}
    stats: dict[str, Any] = {
        "received": 0,
        "lost": 0,
        "duplicated": 0,
        "errors": 0,
        "completed": 0,
        "errors_by_kind": {},
        "ttft": [],
        "per_provider": {p: {"requests": 0, "tokens": 0, "errors": 0} for p in providers},
    }
    next_request = iter(range(n_requests))
    options = f"~ttft_ms={opts.ttft_ms}~delay_ms={opts.delay_ms}~tokens_per_chunk={opts.tokens_per_chunk}"

    async def worker(service: Any) -> None:
        for i in next_request:
            count = base + (1 if i < extra else 0)
            provider = providers[i % len(providers)]
            model = f"{provider}/fake-model~tokens={count}{options}"
            checker = TokenChecker()
            started = trio.current_time()
            first: float | None = None
            per = stats["per_provider"][provider]
            per["requests"] += 1
            try:
                async with service.stream(
                    {"model": model, "messages": [{"role": "user", "content": "stress"}], "max_tokens": max(1, count)}
                ) as events:
                    async for ev in events:
                        if ev.type == "text":
                            if first is None:
                                first = trio.current_time()
                            checker.feed(ev.text)
                stats["completed"] += 1
                checker.finish(count)
            except ProviderError as exc:
                stats["errors"] += 1
                per["errors"] += 1
                stats["errors_by_kind"][exc.kind] = stats["errors_by_kind"].get(exc.kind, 0) + 1
                checker.finish(checker.expected)  # a failed stream's tail is reported as failed, not lost
                stats["lost_in_failed"] = stats.get("lost_in_failed", 0) + (count - checker.expected)
            if first is not None:
                stats["ttft"].append(first - started)
            stats["received"] += checker.received
            per["tokens"] += checker.received
            stats["lost"] += checker.lost
            stats["duplicated"] += checker.duplicated

    async def sample_rss(cancel: trio.CancelScope) -> None:
        with cancel:
            while True:
                rss["peak"] = max(rss["peak"], proc.memory_info().rss)
                await trio.sleep(0.05)

    async def progress(cancel: trio.CancelScope, t0: float) -> None:
        with cancel:
            while True:
                await trio.sleep(2.0)
                elapsed = time.perf_counter() - t0
                print(
                    f"  {stats['received']:>10,} tokens  {stats['completed'] + stats['errors']:>6} requests  "
                    f"{elapsed:6.1f} s",
                    file=sys.stderr,
                )

    cpu0 = proc.cpu_times()
    t0 = time.perf_counter()
    async with open_service(cfg) as service, trio.open_nursery() as nursery:
        side = trio.CancelScope()
        nursery.start_soon(sample_rss, side)
        if opts.progress:
            nursery.start_soon(progress, side, t0)
        async with trio.open_nursery() as workers:
            for _ in range(min(opts.concurrency, n_requests)):
                workers.start_soon(worker, service)
        side.cancel()
    elapsed = time.perf_counter() - t0
    cpu1 = proc.cpu_times()
    rss_end = proc.memory_info().rss
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    mb = 1024 * 1024
    report = {
        "tokens_expected": opts.tokens,
        "tokens_received": stats["received"],
        "lost": stats["lost"],
        "duplicated": stats["duplicated"],
        "errors": stats["errors"],
        "errors_by_kind": stats["errors_by_kind"],
        "tokens_lost_to_failed_requests": stats.get("lost_in_failed", 0),
        "requests": n_requests,
        "completed": stats["completed"],
        "concurrency": opts.concurrency,
        "providers": providers,
        "elapsed_s": round(elapsed, 3),
        "tokens_per_s": round(stats["received"] / elapsed, 1) if elapsed else None,
        "cpu_s": round(cpu_s, 3),
        "cpu_us_per_token": round(cpu_s * 1e6 / stats["received"], 3) if stats["received"] else None,
        "ttft_p50_ms": _ms(_percentile(stats["ttft"], 50)),
        "ttft_p99_ms": _ms(_percentile(stats["ttft"], 99)),
        "rss_start_mb": round(rss["start"] / mb, 1),
        "rss_peak_mb": round(max(rss["peak"], rss_end) / mb, 1),
        "rss_end_mb": round(rss_end / mb, 1),
        "per_provider": stats["per_provider"],
    }
    _print_report(report, out)
    if opts.json:
        print(orjson.dumps(report).decode(), file=out)
    return report


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _print_report(r: dict[str, Any], out: Any) -> None:
    ok = r["lost"] == 0 and r["duplicated"] == 0
    print(
        f"streamactors stress: {r['tokens_received']:,}/{r['tokens_expected']:,} tokens over "
        f"{r['requests']} requests ({r['concurrency']} concurrent) via {', '.join(r['providers'])}",
        file=out,
    )
    print(
        f"  {'OK' if ok else 'FAILED'}: lost {r['lost']}, duplicated {r['duplicated']}, errors {r['errors']} "
        f"{r['errors_by_kind'] or ''}",
        file=out,
    )
    print(f"  {r['tokens_per_s']:,} tokens/s in {r['elapsed_s']} s; {r['cpu_us_per_token']} us CPU per token", file=out)
    print(f"  time to first token p50 {r['ttft_p50_ms']} ms, p99 {r['ttft_p99_ms']} ms", file=out)
    print(f"  RSS start {r['rss_start_mb']} MB, peak {r['rss_peak_mb']} MB, end {r['rss_end_mb']} MB", file=out)
