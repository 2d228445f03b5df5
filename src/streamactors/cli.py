"""The `streamactors` command: `stress`, `serve`, `mock-upstream`, `logs`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import IO

import trio

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamactors", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stress", help="stream N tokens over C concurrent requests through the fake upstream")
    s.add_argument("--tokens", type=int, default=1_000_000, help="tokens in all (default 1,000,000)")
    s.add_argument("--concurrency", type=int, default=1000, help="concurrent requests (default 1000)")
    s.add_argument("--requests", type=int, default=None, help="requests in all (default: = concurrency)")
    s.add_argument("--providers", default="all", help='comma-separated provider kinds, or "all"')
    s.add_argument("--upstream", default=None, help="URL of an already running fake upstream")
    s.add_argument("--ttft-ms", type=float, default=0.0, help="fake time to first token")
    s.add_argument("--delay-ms", type=float, default=0.0, help="fake delay between tokens")
    s.add_argument("--tokens-per-chunk", type=int, default=1, help="tokens per SSE event")
    s.add_argument("--events-per-chunk", type=int, default=1, help="SSE events per HTTP chunk")
    s.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests failing with HTTP 503")
    s.add_argument("--midstream-rate", type=float, default=0.0, help="fraction of streams failing midway")
    s.add_argument(
        "--fallback",
        action="store_true",
        help="send each request through a route that falls back to the next provider",
    )
    s.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="soak: keep submitting requests (of tokens/requests tokens each) until the time is up, then drain",
    )
    s.add_argument(
        "--baseline",
        action="store_true",
        help="also run the same requests through bare httpx + the same SSE parse, and report the ratio",
    )
    s.add_argument(
        "--idle-streams",
        type=int,
        default=None,
        metavar="N",
        help="measure memory per idle stream with N open at once (default: min(concurrency, 1000); 0: skip)",
    )
    s.add_argument("--requests-per-minute", type=float, default=None, help="each provider's requests budget")
    s.add_argument("--tokens-per-minute", type=float, default=None, help="each provider's tokens budget")
    s.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="run the workload as N processes against one fake upstream; report the fleet's totals "
        "and what the upstream saw against the budget",
    )
    s.add_argument(
        "--redis", default=None, metavar="URL", help="share budgets, circuits and quota news through this Redis"
    )
    s.add_argument("--namespace", default="stress", help=argparse.SUPPRESS)  # a worker's: the fleet run's own
    s.add_argument("--log-file", default=None, help="write the service's JSON request logs here")
    s.add_argument("--json", action="store_true", help="print the report as one JSON object, last line")
    s.add_argument("--no-progress", action="store_true", help="no progress bar or periodic progress lines")
    s.add_argument("--html", metavar="PATH", help="also write the report as one self-contained HTML page with charts")
    s.add_argument(
        "--sample-interval",
        type=_interval,
        default=0.5,
        metavar="SECONDS",
        help="seconds between two readings of the charted time series (default 0.5; at least 0.05)",
    )

    sv = sub.add_parser("serve", help="run the OpenAI- and Anthropic-compatible HTTP gateway")
    sv.add_argument("--config", required=True, metavar="PATH", help="the TOML config ([providers], [server], ...)")
    sv.add_argument("--host", default=None, help="address to listen on (default: server.host, loopback without keys)")
    sv.add_argument("--port", type=int, default=None, help="port (default: server.port; 0 picks a free one)")

    m = sub.add_parser("mock-upstream", help="run the fake upstream server")
    m.add_argument("--port", type=int, default=8787)
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--events-per-chunk", type=int, default=1)
    m.add_argument("--fail-rate", type=float, default=0.0)
    m.add_argument("--midstream-rate", type=float, default=0.0)

    lg = sub.add_parser("logs", help="summarize the service's JSON log lines (files, or stdin)")
    lg.add_argument("files", nargs="*", metavar="FILE", help='log files; none or "-" reads stdin')
    lg.add_argument("--request", metavar="ID", help="print every line of one request, in order")
    lg.add_argument(
        "--since", metavar="WHEN", help="only lines at or after WHEN: ISO 8601, or relative (90s, 10m, 2h, 1d)"
    )
    lg.add_argument("--provider", metavar="NAME", help="only this provider")
    lg.add_argument("--errors", action="store_true", help="only failed requests")
    lg.add_argument("--slowest", type=int, default=5, metavar="N", help="slowest requests to list (default 5)")
    lg.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    lg.add_argument(
        "--html",
        metavar="PATH",
        help="also write the summary as one self-contained HTML page: charts per provider/model, the slowest "
        "requests' stories",
    )
    return p


def _interval(text: str) -> float:
    value = float(text)
    if not value >= 0.05:  # the progress loop reads every 0.02 s
        raise argparse.ArgumentTypeError(f"{text!r}: give at least 0.05 (seconds)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `streamactors` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "mock-upstream":
            return _mock_upstream(args)
        if args.command == "logs":
            return _logs(args)
        if args.command == "serve":
            return _serve(args)
        return _stress(args)
    except BrokenPipeError:
        # The reader went away (`streamactors logs ... | head`): stop quietly, and keep
        # Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _stress(args: argparse.Namespace) -> int:
    from .stress.run import StressOptions, run_stress

    opts = StressOptions(
        tokens=args.tokens,
        concurrency=args.concurrency,
        requests=args.requests,
        providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()),
        upstream=args.upstream,
        ttft_ms=args.ttft_ms,
        delay_ms=args.delay_ms,
        tokens_per_chunk=args.tokens_per_chunk,
        events_per_chunk=args.events_per_chunk,
        fail_rate=args.fail_rate,
        midstream_rate=args.midstream_rate,
        fallback=args.fallback,
        log_file=args.log_file,
        json=args.json,
        progress=not args.no_progress,
        duration=args.duration,
        baseline=args.baseline,
        idle_streams=args.idle_streams,
        requests_per_minute=args.requests_per_minute,
        tokens_per_minute=args.tokens_per_minute,
        redis=args.redis,
        namespace=args.namespace,
        workers=args.workers,
        sample_interval=args.sample_interval,
    )
    if args.html and opts.workers is not None:
        print("streamactors stress: --html draws one process's run; it does not go with --workers", file=sys.stderr)
        return 2
    # Opened first: a path that cannot be written fails now, not after the run.
    html = _open_html(args.html, "stress") if args.html else None
    if args.html and html is None:
        return 2
    if opts.workers is not None:
        from .stress.fleet import run_fleet_stress

        fleet = trio.run(run_fleet_stress, opts)
        exact = fleet["lost"] == 0 and fleet["duplicated"] == 0 and fleet["reordered"] == 0
        faults = opts.fail_rate > 0 or opts.midstream_rate > 0
        return 0 if exact and (faults or fleet["failed"] == 0) and fleet["within_budget"] is not False else 1
    report = trio.run(run_stress, opts)
    if html is not None:
        from .reports.stress_page import render_stress_html

        _write_html(html, render_stress_html(report), "stress")
    faults = opts.fail_rate > 0 or opts.midstream_rate > 0
    exact = report["lost"] == 0 and report["duplicated"] == 0 and report["reordered"] == 0
    healthy = exact and (faults or report["failed"] == 0)
    return 0 if healthy else 1


def _open_html(path: str, command: str) -> IO[bytes] | None:
    try:
        return open(path, "wb")
    except OSError as exc:
        print(f"streamactors {command}: --html: {exc}", file=sys.stderr)
        return None


def _write_html(f: IO[bytes], text: str, command: str) -> None:
    data = text.encode()
    with f:
        f.write(data)
    print(f"streamactors {command}: wrote {f.name} ({len(data):,} bytes)", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    from .config.schema import Config
    from .errors import ConfigError
    from .gateway.run import run_gateway

    try:
        config = Config.load(args.config)
    except ConfigError as exc:
        print(f"streamactors serve: {exc}", file=sys.stderr)
        return 2
    try:
        trio.run(run_gateway, config, args.host, args.port)
    except OSError as exc:  # the address is in use, say
        print(f"streamactors serve: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


def _logs(args: argparse.Namespace) -> int:
    from .reports.logreport import LogFilter, parse_since, print_story, print_summary, read_lines, summarize

    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"streamactors logs: {exc}", file=sys.stderr)
        return 2
    if args.html and args.request:
        print(
            "streamactors logs: --html writes the summary, not --request's story (each slowest request's "
            "story is in the page)",
            file=sys.stderr,
        )
        return 2
    html = _open_html(args.html, "logs") if args.html else None
    if args.html and html is None:
        return 2
    try:
        lines = read_lines(args.files or ["-"], sys.stdin)
        if args.request:
            return 0 if print_story(lines, args.request, sys.stdout, as_json=args.json) else 1
        where = LogFilter(since=since, provider=args.provider, errors_only=args.errors)
        report = summarize(lines, where, slowest=args.slowest, detail=html is not None)
    except OSError as exc:
        print(f"streamactors logs: {exc}", file=sys.stderr)
        return 2
    if html is not None:  # before the summary: a reader gone from stdout does not lose the page
        from .reports.logs_page import render_logs_html

        _write_html(html, render_logs_html(report, source=", ".join(args.files or ["stdin"])), "logs")
    print_summary(report, sys.stdout, as_json=args.json)
    return 0


def _mock_upstream(args: argparse.Namespace) -> int:
    from .testing.server import serve_fake_upstream

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            fake = await nursery.start(
                lambda task_status: serve_fake_upstream(
                    args.port,
                    host=args.host,
                    events_per_chunk=args.events_per_chunk,
                    fail_rate=args.fail_rate,
                    midstream_rate=args.midstream_rate,
                    task_status=task_status,
                )
            )
            print(f"listening on {fake.base_url}", flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
