"""`streamactors stress`: stream N tokens over C concurrent requests through the service,
against the built-in fake upstream (in its own process), and prove none was lost.

A run has up to three phases, each on the same fake upstream:

1. idle streams: open `idle_streams` requests whose upstream waits before its first
   token, and take the RSS delta per open stream (what a waiting stream costs);
2. the workload: `tokens` split over `requests`, `concurrency` at a time (or, with
   `duration`, new requests until the time is up, then a drain), every token checked
   as it arrives (token i must be "t{i}"), with time to first token and the gaps
   between text events in fixed-size histograms, so memory does not grow with tokens;
   RSS is sampled after warm-up (every stream of the first wave has started and a tenth
   of the tokens arrived) and at the end: the difference is growth with tokens; every
   `sample_interval` the same counters are read into bounded time series for the charts;
3. with `baseline`, the same requests through a bare httpx client (`stress_bare`).

The report is printed for people, and with `json` as one JSON object on the last line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
import orjson
import psutil
import trio

from ..config.schema import Config, RouteConfig, SharedSettings
from ..config.secret import Secret
from ..errors import ProviderError
from ..service import Service, open_service
from .bare import BareClient, BareFailure
from .options import StressOptions
from .report import ProgressDisplay, build_report, print_report
from .stats import Phase, StreamRecord, Tally, TokenChecker
from .timeseries import PhaseSampler

__all__ = ["FAKE_PROVIDER_KINDS", "StressOptions", "TokenChecker", "UpstreamProcess", "fake_config", "run_stress"]

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

#: How long the fake upstream holds an idle stream before its first token. The
#: measurement is taken long before; the server then finds the socket closed.
IDLE_TTFT_MS = 20_000
WARMUP_FRACTION = 0.10


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


def with_budgets(cfg: Config, opts: StressOptions) -> Config:
    """`cfg` with the run's budgets on every provider and, with `opts.redis`, `[shared]`."""
    if opts.requests_per_minute is not None or opts.tokens_per_minute is not None:
        rpm, tpm = opts.requests_per_minute, opts.tokens_per_minute
        cfg = attrs.evolve(
            cfg,
            providers={
                name: attrs.evolve(
                    pc, rate_limit=attrs.evolve(pc.rate_limit, requests_per_minute=rpm, tokens_per_minute=tpm)
                )
                for name, pc in cfg.providers.items()
            },
        )
    if opts.redis:
        cfg = attrs.evolve(cfg, shared=SharedSettings(Secret(opts.redis), namespace=opts.namespace))
    return cfg


class UpstreamProcess:
    """The fake upstream in a child process (so it does not compete for our core).

    `start()` returns its base URL (or `opts.upstream`, starting nothing); `stop()` ends it.
    """

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
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# --- the workload --------------------------------------------------------------------


class _Plan:
    """Hands out requests: `total` of them, or (with a deadline) until time is up."""

    def __init__(self, opts: StressOptions, providers: list[str], total: int | None, deadline: float | None) -> None:
        n = opts.requests or max(1, min(opts.concurrency, opts.tokens))
        self.per_request, self.extra = divmod(opts.tokens, n)
        if total is None and deadline is None:
            total = n
        self.total = total
        self.deadline = deadline
        self.providers = providers
        self.handed = 0
        self.tokens_due = 0
        #: With `--fallback`, each request goes to a route whose second target is the next provider.
        self.fallback = opts.fallback and len(providers) > 1
        # Only the options that differ from the fake upstream's defaults, so logs stay readable.
        self._suffix = "".join(
            f"~{key}={value:g}"
            for key, value, default in (
                ("ttft_ms", opts.ttft_ms, 0),
                ("delay_ms", opts.delay_ms, 0),
                ("tokens_per_chunk", opts.tokens_per_chunk, 1),
            )
            if value != default
        )

    def model(self, provider: str, count: int) -> str:
        """The model id asking the fake upstream for `count` tokens from `provider`."""
        return f"{provider}/fake-model~tokens={count}{self._suffix}"

    @staticmethod
    def route_alias(provider: str, count: int) -> str:
        return f"via-{provider}-{count}"

    def routes(self) -> dict[str, RouteConfig]:
        """`--fallback`: for each provider and request size, a route to it, then to the next provider."""
        out: dict[str, RouteConfig] = {}
        for i, provider in enumerate(self.providers):
            nxt = self.providers[(i + 1) % len(self.providers)]
            for count in {max(1, self.per_request), max(1, self.per_request + 1)}:
                out[self.route_alias(provider, count)] = RouteConfig(
                    targets=[self.model(provider, count), self.model(nxt, count)]
                )
        return out

    def planned_tokens(self) -> int:
        """Tokens in all the planned requests; 0 in a soak (its progress is measured in time)."""
        n = self.total or 0
        return n * self.per_request + min(self.extra, n)

    def next(self) -> tuple[str, int, dict[str, Any]] | None:
        i = self.handed
        if self.total is not None and i >= self.total:
            return None
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return None
        self.handed += 1
        count = max(1, self.per_request + (1 if i < self.extra else 0))
        self.tokens_due += count
        provider = self.providers[i % len(self.providers)]
        request = {
            "model": self.route_alias(provider, count) if self.fallback else self.model(provider, count),
            "messages": [{"role": "user", "content": "stress"}],
            "max_tokens": count,
        }
        return provider, count, request


StreamOne = Callable[[dict[str, Any], StreamRecord], Awaitable[None]]


async def _worker(phase: Phase, plan: _Plan, stream_one: StreamOne) -> None:
    while (job := plan.next()) is not None:
        provider, count, request = job
        tally = phase.tallies[provider]
        tally.submitted += 1
        rec = StreamRecord(tally)
        phase.active.add(rec.checker)
        kind: str | None = None
        try:
            await stream_one(request, rec)
        except ProviderError as exc:
            kind = exc.kind
        except BareFailure as exc:
            kind = exc.kind
        except httpx.HTTPError:
            kind = "connection"
        phase.active.discard(rec.checker)
        tally.close(rec.checker, count, kind)


def _cpu(proc: psutil.Process | None) -> float | None:
    if proc is None:
        return None
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return None
    return float(t.user + t.system)


async def _drive(
    label: str,
    opts: StressOptions,
    plan: _Plan,
    stream_one: StreamOne,
    proc: psutil.Process,
    out: Any,
    upstream: psutil.Process | None = None,
) -> Phase:
    """Run `plan` through `stream_one` with `opts.concurrency` workers; measure it."""
    phase = Phase(label, {p: Tally() for p in plan.providers})
    display = ProgressDisplay(label, opts, out)
    target = plan.planned_tokens()
    cpu0 = proc.cpu_times()
    up0 = _cpu(upstream)
    t0 = time.perf_counter()

    # Warm once every stream of the first wave has started (each open stream holds memory
    # of its own, which is not growth with tokens) and a tenth of the work is done.
    first_wave = min(max(1, opts.concurrency), plan.total or opts.concurrency)

    def warmed_up() -> bool:
        started = sum(t.ttft.n + t.failed for t in phase.tallies.values())
        if started < first_wave:
            return False
        if opts.duration:
            return time.perf_counter() - t0 >= WARMUP_FRACTION * opts.duration
        return phase.live_tokens() >= WARMUP_FRACTION * target

    sampler = PhaseSampler(opts.sample_interval)

    async def sample() -> None:
        while True:
            rss = proc.memory_info().rss
            elapsed = time.perf_counter() - t0
            phase.rss_peak = max(phase.rss_peak, rss)
            if phase.rss_warm is None and warmed_up():
                phase.rss_warm = rss
                phase.warm_at = elapsed
            sampler.see(rss, len(phase.active))
            if elapsed >= sampler.next_at:
                sampler.tick(phase, elapsed)
            display.update(phase, elapsed, rss, target)
            await trio.sleep(0.02)

    display.start()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            async with trio.open_nursery() as workers:
                for _ in range(max(1, opts.concurrency)):
                    workers.start_soon(_worker, phase, plan, stream_one)
            nursery.cancel_scope.cancel()
    finally:
        display.stop()
    phase.elapsed = time.perf_counter() - t0
    cpu1 = proc.cpu_times()
    phase.cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    up1 = _cpu(upstream)
    phase.upstream_cpu_s = None if up0 is None or up1 is None else up1 - up0
    phase.rss_end = proc.memory_info().rss
    phase.rss_peak = max(phase.rss_peak, phase.rss_end)
    if phase.rss_warm is None:  # too short to sample past warm-up
        phase.rss_warm = phase.rss_end
        phase.warm_at = phase.elapsed
    phase.timeseries = sampler.close(phase, phase.elapsed, phase.rss_end)
    phase.tokens_due = plan.tokens_due
    return phase


# --- idle streams ----------------------------------------------------------------------


def _established(proc: psutil.Process, port: int) -> int:
    conns = proc.net_connections(kind="tcp") if hasattr(proc, "net_connections") else proc.connections(kind="tcp")
    return sum(1 for c in conns if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


async def _measure_idle(
    service: Service, providers: list[str], n: int, proc: psutil.Process, port: int
) -> dict[str, Any]:
    """Open `n` streams that wait on their first token; the RSS they add, per stream."""
    base = _established(proc, port)
    rss0 = proc.memory_info().rss
    opened = 0

    async def hold(i: int) -> None:
        provider = providers[i % len(providers)]
        request = {
            "model": f"{provider}/fake-model~tokens=1~ttft_ms={IDLE_TTFT_MS}",
            "messages": [{"role": "user", "content": "idle"}],
        }
        try:
            async with service.stream(request) as events:
                async for _ in events:  # blocks: the upstream holds the first token back
                    pass
        except ProviderError:
            pass  # an injected fault (--fail-rate): one stream fewer to measure, not a failed run

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(hold, i)
        with trio.move_on_after(IDLE_TTFT_MS / 2000):
            # Polling: the connections live in the kernel; nothing here signals them.
            while (opened := _established(proc, port) - base) < n:  # noqa: ASYNC110
                await trio.sleep(0.1)
        await trio.sleep(0.3)  # every request sent and its response head read
        rss1 = proc.memory_info().rss
        nursery.cancel_scope.cancel()
    opened = max(1, opened)
    return {"idle_streams": opened, "idle_stream_kb": round((rss1 - rss0) / opened / 1024, 2)}


# --- the run ---------------------------------------------------------------------------


async def run_stress(opts: StressOptions, out: Any = None) -> dict[str, Any]:
    """Run the harness; print a report (and a JSON line with `opts.json`); return the report."""
    out = out or sys.stdout
    upstream = UpstreamProcess(opts)
    base_url = await trio.to_thread.run_sync(upstream.start)
    try:
        child = psutil.Process(upstream.proc.pid) if upstream.proc is not None else None
        return await _run(opts, base_url, out, child)
    finally:
        await trio.to_thread.run_sync(upstream.stop)


async def _run(opts: StressOptions, base_url: str, out: Any, upstream: psutil.Process | None) -> dict[str, Any]:
    cfg = with_budgets(fake_config(base_url, opts.providers, opts.concurrency), opts)
    if opts.log_file:
        cfg = attrs.evolve(cfg, logging=attrs.evolve(cfg.logging, level="info", file=opts.log_file))
    providers = list(cfg.providers)
    if opts.fallback:
        if opts.baseline:
            raise SystemExit("--fallback and --baseline do not go together (the bare client has no routes)")
        cfg = attrs.evolve(cfg, routes=_Plan(opts, providers, None, None).routes())
    proc = psutil.Process(os.getpid())
    rss_start = proc.memory_info().rss
    port = urlsplit(base_url).port or 80
    n_idle = min(opts.concurrency, 1000) if opts.idle_streams is None else opts.idle_streams
    idle: dict[str, Any] = {"idle_streams": 0, "idle_stream_kb": None}

    async with open_service(cfg) as service:
        if n_idle > 0:
            idle = await _measure_idle(service, providers, n_idle, proc, port)

        async def via_service(request: dict[str, Any], rec: StreamRecord) -> None:
            # The checker sees every token as it arrives; the stream need not keep them too.
            async with service.stream(request, keep_text=False) as events:
                async for ev in events:
                    if ev.type == "text":
                        rec.text(ev.text)  # type: ignore[union-attr]

        deadline = time.perf_counter() + opts.duration if opts.duration else None
        main = await _drive("service", opts, _Plan(opts, providers, None, deadline), via_service, proc, out, upstream)

    base: Phase | None = None
    if opts.baseline:
        bare = BareClient(cfg, max(1, opts.concurrency))

        async def via_bare(request: dict[str, Any], rec: StreamRecord) -> None:
            await bare.stream(request, rec.text)

        try:
            plan = _Plan(opts, providers, main.total().submitted, None)
            base = await _drive("baseline", opts, plan, via_bare, proc, out, upstream)
        finally:
            await bare.aclose()

    report = build_report(opts, providers, main, base, idle, rss_start)
    print_report(report, out)
    if opts.json:
        print(orjson.dumps(report).decode(), file=out, flush=True)
    return report
