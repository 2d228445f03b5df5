"""`streamactors stress --workers N [--redis URL]`: the main job as N processes, one fleet.

This process serves the fake upstream (so it sees, and times, every request the fleet
sends) and starts N worker processes, each running the whole workload of the options
(`streamactors stress ... --upstream URL --json`) with the run's budgets
(`--requests-per-minute`, `--tokens-per-minute`) and, with `--redis`, `[shared]` in a
namespace of this run's own (a fresh budget each run). It then reports:

- the fleet's totals: the workers' reports added up (requests, tokens, losses, errors);
- what the fake upstream saw: requests in all, over how long, and the most in any window of
  1, 10 and 60 s and over the whole run, each against the fleet's budget for that window,
  `providers x (burst + rate x window)` (each provider has its own budget; the burst is a
  minute of the rate, as `AdaptivePacer`'s), plus one request per worker: the bound the
  fleet keeps. (The budget holds when requests are sent; the upstream times them when they
  arrive, a little later and not all equally late, which that one request covers.) Without
  `--redis` each worker spends a budget of its own, and the upstream sees up to N times as much.

The exit status is 0 when nothing was lost, duplicated or reordered, no request failed
(unless faults were injected) and, with budgets, the upstream saw no more than the budget.
"""

from __future__ import annotations

import bisect
import os
import sys
from collections import Counter
from typing import Any

import orjson
import trio

from ..testing.server import FakeUpstream
from .options import StressOptions
from .run import FAKE_PROVIDER_KINDS

__all__ = ["run_fleet_stress"]

#: The windows the busiest counts are taken over (seconds), besides the whole run.
WINDOWS = (1.0, 10.0, 60.0)


def worker_command(opts: StressOptions, upstream: str, namespace: str) -> list[str]:
    """The command line of one worker: this run's workload against `upstream`."""
    args = [
        "--tokens",
        str(opts.tokens),
        "--concurrency",
        str(opts.concurrency),
        "--providers",
        ",".join(opts.providers),
        "--upstream",
        upstream,
        "--ttft-ms",
        str(opts.ttft_ms),
        "--delay-ms",
        str(opts.delay_ms),
        "--tokens-per-chunk",
        str(opts.tokens_per_chunk),
        "--idle-streams",
        "0",
        "--json",
        "--no-progress",
    ]
    for flag, value in (
        ("--requests", opts.requests),
        ("--duration", opts.duration),
        ("--requests-per-minute", opts.requests_per_minute),
        ("--tokens-per-minute", opts.tokens_per_minute),
        ("--redis", opts.redis),
    ):
        if value is not None:
            args += [flag, str(value)]
    if opts.redis:
        args += ["--namespace", namespace]
    if opts.fallback:
        args.append("--fallback")
    return [sys.executable, "-m", "streamactors", "stress", *args]


def busiest(times: list[float], window: float) -> int:
    """The most of `times` (sorted) within any `window` seconds (both ends included)."""
    return max((bisect.bisect_right(times, t + window) - i for i, t in enumerate(times)), default=0)


def budget_for(opts: StressOptions, providers: int, window: float) -> float | None:
    """The most requests the fleet's budgets let through in `window` seconds, if budgeted."""
    rpm = opts.requests_per_minute
    if rpm is None:
        return None
    return providers * (max(1.0, rpm) + rpm / 60.0 * window)


async def run_fleet_stress(opts: StressOptions, out: Any = None) -> dict[str, Any]:
    """Run the fleet (see the module docstring); print the report; return it."""
    out = out or sys.stdout
    workers = opts.workers or 1
    namespace = f"stress-{os.getpid()}-{os.urandom(3).hex()}"
    fake = FakeUpstream(
        events_per_chunk=opts.events_per_chunk,
        fail_rate=opts.fail_rate,
        midstream_rate=opts.midstream_rate,
        record=10_000_000,
    )
    reports: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        command = worker_command(opts, fake.base_url, namespace)
        started = trio.current_time()

        async def worker() -> None:
            done = await trio.run_process(command, capture_stdout=True, check=False)
            lines = done.stdout.decode(errors="replace").strip().splitlines()
            try:
                reports.append(orjson.loads(lines[-1]))
            except (IndexError, orjson.JSONDecodeError):
                raise SystemExit(f"a worker ended with status {done.returncode} and no report") from None

        async with trio.open_nursery() as fleet:
            for _ in range(workers):
                fleet.start_soon(worker)
        elapsed = trio.current_time() - started
        nursery.cancel_scope.cancel()
    arrivals = sorted(r.at for r in fake.requests if r.method == "POST")
    report = build_fleet_report(opts, workers, reports, arrivals, elapsed)
    print_fleet_report(report, out)
    if opts.json:
        print(orjson.dumps(report).decode(), file=out, flush=True)
    return report


def build_fleet_report(
    opts: StressOptions, workers: int, reports: list[dict[str, Any]], arrivals: list[float], elapsed: float
) -> dict[str, Any]:
    """The fleet's totals and the upstream's view (see the module docstring)."""
    providers = len(FAKE_PROVIDER_KINDS) if "all" in opts.providers else len(opts.providers)
    keys = ("tokens_expected", "tokens_received", "lost", "duplicated", "reordered", "submitted", "completed", "failed")
    totals = {key: sum(int(r[key]) for r in reports) for key in keys}
    errors: Counter[str] = Counter()
    for r in reports:
        errors.update(r["errors_by_kind"])
    span = arrivals[-1] - arrivals[0] if arrivals else 0.0
    windows: dict[str, dict[str, Any]] = {}
    for window in (*WINDOWS, span):
        name = "run" if window == span else f"{window:g}s"
        bound = budget_for(opts, providers, window)
        windows[name] = {
            "window_s": round(window, 3),
            "upstream_requests": busiest(arrivals, window),
            "budget": None if bound is None else round(bound, 2),
            "allowed": None if bound is None else round(bound + workers, 2),
        }
    budgeted = opts.requests_per_minute is not None
    within = all(w["upstream_requests"] <= w["allowed"] for w in windows.values()) if budgeted else None
    return {
        "workers": workers,
        "shared": opts.redis is not None,
        "requests_per_minute": opts.requests_per_minute,
        "tokens_per_minute": opts.tokens_per_minute,
        "providers": providers,
        **totals,
        "errors_by_kind": dict(sorted(errors.items())),
        "elapsed_s": round(elapsed, 3),
        "cpu_s": round(sum(float(r["cpu_s"]) for r in reports), 3),
        "upstream_requests": len(arrivals),
        "upstream_span_s": round(span, 3),
        "busiest": windows,
        "within_budget": within,
        "per_worker": [
            {key: r[key] for key in ("submitted", "completed", "failed", "tokens_received", "elapsed_s", "cpu_s")}
            for r in reports
        ],
    }


def print_fleet_report(r: dict[str, Any], out: Any) -> None:
    """The report for people."""
    how = "sharing one budget through Redis" if r["shared"] else "each with a budget of its own (no --redis)"
    ok = r["lost"] == 0 and r["duplicated"] == 0 and r["reordered"] == 0
    lines = [
        f"streamactors stress: {r['workers']} worker processes, {how}",
        f"  fleet: {r['tokens_received']:,}/{r['tokens_expected']:,} tokens over {r['submitted']:,} requests in "
        f"{r['elapsed_s']} s; {'OK' if ok else 'FAILED'}: lost {r['lost']}, duplicated {r['duplicated']}, "
        f"reordered {r['reordered']}; completed {r['completed']:,}, failed {r['failed']:,}"
        f"{' ' + str(r['errors_by_kind']) if r['errors_by_kind'] else ''}; {r['cpu_s']} s of CPU in all",
        f"  the fake upstream saw {r['upstream_requests']:,} requests over {r['upstream_span_s']} s",
    ]
    if r["requests_per_minute"] is not None:
        per = f" x {r['providers']} providers" if r["providers"] > 1 else ""
        lines.append(
            f"  budget: {r['requests_per_minute']:g} requests/min{per} (a burst of a minute's worth); the most "
            "the upstream saw in any window, against the budget for it plus one request per worker:"
        )
        for name, w in r["busiest"].items():
            mark = "ok" if w["upstream_requests"] <= w["allowed"] else "OVER BUDGET"
            lines.append(
                f"    {name:>4} ({w['window_s']:g} s): {w['upstream_requests']:>7,} <= {w['allowed']:,.1f} "
                f"(budget {w['budget']:,.1f} + {r['workers']})  {mark}"
            )
        lines.append(f"  {'within budget' if r['within_budget'] else 'OVER BUDGET'}")
    for i, w in enumerate(r["per_worker"], 1):
        lines.append(
            f"  worker {i}: {w['completed']:,}/{w['submitted']:,} completed, {w['failed']:,} failed, "
            f"{w['tokens_received']:,} tokens, {w['elapsed_s']} s, {w['cpu_s']} s CPU"
        )
    print("\n".join(lines), file=out, flush=True)
