"""Instructions per short (5-token) request through the service, counted by callgrind.

Timings on a shared VM drift; instruction counts do not. This runs the service's short request
(`complete()` of 5 tokens, OpenAI format, default settings: JSON logs at info level to stderr,
the API key redacted from them) under `valgrind --tool=callgrind` twice, with `--requests` and
with twice as many, after the same warm-up, and reports the difference divided by the extra
requests: start-up, imports and the warm-up cancel out. The fake upstream runs in its own
process, outside valgrind.

    .venv/bin/python stress/count_short_request.py [--requests 300]

(`--child N` is the measured process itself.)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import trio
import trio.testing

from _common import emit_json, fake_upstream, print_table

WARM_UP = 50


async def _child(url: str, requests: int) -> None:
    from streamactors import Config, open_service

    cfg = Config.from_dict(
        {"providers": {"openai": {"kind": "openai", "api_key": "sk-bench", "base_url": f"{url}/v1", "max_retries": 0}}}
    )
    request = {"model": "openai/m~tokens=5", "messages": [{"role": "user", "content": "bench"}]}
    async with open_service(cfg) as svc:
        for _ in range(WARM_UP + requests):
            await svc.complete(request)


def _count(url: str, requests: int, out_dir: Path) -> int:
    out = out_dir / f"callgrind.{requests}"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            str(requests),
            "--url",
            url,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict and set layouts in every run
    )
    totals = re.search(rb"^(?:summary|totals): (\d+)", out.read_bytes(), re.M)
    assert totals is not None, "no totals in the callgrind output"
    return int(totals.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        # Time stands still (a MockClock that never jumps): under valgrind a request takes tens of
        # milliseconds, and periodic work (the submitters' watcher, mailbox flushes) would run as
        # often as the machine is slow. No request waits on a timer.
        trio.run(_child, args.url, args.child, clock=trio.testing.MockClock())
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    with fake_upstream() as url, tempfile.TemporaryDirectory() as tmp:
        low = _count(url, args.requests, Path(tmp))
        high = _count(url, 2 * args.requests, Path(tmp))
    per_request = (high - low) / args.requests
    print_table(
        f"Instructions per short request (callgrind; {args.requests} and {2 * args.requests} requests)",
        ["run", "instructions"],
        [[f"{args.requests} requests", low], [f"{2 * args.requests} requests", high], ["per request", per_request]],
    )
    emit_json("short_request_instructions", requests=args.requests, per_request=round(per_request))


if __name__ == "__main__":
    main()
