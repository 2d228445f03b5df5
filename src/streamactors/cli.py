"""The `streamactors` command: `stress`, `mock-upstream`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
    s.add_argument("--log-file", default=None, help="write the service's JSON request logs here")
    s.add_argument("--json", action="store_true", help="print the report as one JSON object, last line")
    s.add_argument("--no-progress", action="store_true", help="no periodic progress lines")

    m = sub.add_parser("mock-upstream", help="run the fake upstream server")
    m.add_argument("--port", type=int, default=8787)
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--events-per-chunk", type=int, default=1)
    m.add_argument("--fail-rate", type=float, default=0.0)
    m.add_argument("--midstream-rate", type=float, default=0.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `streamactors` command."""
    args = _parser().parse_args(argv)
    if args.command == "mock-upstream":
        return _mock_upstream(args)
    from .stress import StressOptions, run_stress

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
        log_file=args.log_file,
        json=args.json,
        progress=not args.no_progress,
    )
    report = trio.run(run_stress, opts)
    faults = opts.fail_rate > 0 or opts.midstream_rate > 0
    healthy = report["lost"] == 0 and report["duplicated"] == 0 and (faults or report["errors"] == 0)
    return 0 if healthy else 1


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
