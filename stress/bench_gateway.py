"""The gateway hop (issue 14): `streamactors serve` between a client and the fake upstream,
against the same client straight to the fake upstream, and through LiteLLM's proxy, in one run.

Processes: the fake upstream (`streamactors mock-upstream`, one SSE event per HTTP chunk) runs
for the whole run; each server (`streamactors serve` with its defaults but for the provider's
`max_concurrency`, raised to the number of streams; LiteLLM's proxy with its defaults) is a
fresh process per (scenario, repeat); each client is a fresh process (`_gateway_client.py`)
that warms up with 20 requests, then measures. With two or more cores, the server has a core
of its own and the fake upstream and the client share another (`os.sched_setaffinity`, as
`taskset` pins them): the client and the fake upstream then cost the same in the direct runs
as beside a server. Each figure is the median over `--repeat` runs, the runs interleaved.

Scenarios:
- time to first token: the openai SDK (sync), `--requests` sequential streaming requests of 5
  tokens: p50 and p99 of each run, the server's, client's and fake upstream's CPU per request;
- tokens/s on 1 stream of `--tokens` tokens and on `--streams` concurrent streams sharing
  `--tokens-many`, read by a raw epoll client that counts tokens without parsing JSON (every
  token is counted; a lost one fails the run): the server's CPU per token, tokens per server
  CPU-second (the "on one core" figure, whatever the share of the core it got), the share of
  its core it used, and its RSS growth;
- the same two at `--small-tokens` / `--small-tokens-many`, for LiteLLM too (its proxy costs
  about a millisecond of CPU per token, so the large workloads would take an hour).

LiteLLM: `--litellm auto` uses /tmp/litellm-venv/bin/litellm, creating that venv with
`pip install 'litellm[proxy]==1.81.13'` if it is missing (never in the project's venv); the
version is pinned so that a bench run never installs an unvetted release. It is pointed at the
fake upstream as an OpenAI provider (model_name `*`, model `openai/*`). If it does not
install or start, the output says so and why. `--litellm skip` leaves it out.

Usage: python stress/bench_gateway.py [--repeat 3] [--requests 200] [--tokens 200000]
       [--streams 1000] [--tokens-many 1000000] [--small-tokens 5000] [--small-tokens-many 20000]
       [--litellm auto|skip|PATH] [--no-pin] [--scenarios ttft,one,many,one_small,many_small]
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psutil

from _common import emit_json, two_cores
from streamactors.stress import StressOptions, UpstreamProcess

CLIENT = Path(__file__).with_name("_gateway_client.py")
KEY = "sk-gw-bench-0123456789"
UPSTREAM_KEY = "sk-fake-bench-key"
LITELLM_VENV = Path("/tmp/litellm-venv")
LITELLM_REQUIREMENT = "litellm[proxy]==1.81.13"
KINDS = ("direct", "serve", "litellm")
NAMES = {"direct": "fake upstream direct", "serve": "streamactors serve", "litellm": "LiteLLM proxy"}


# --- placement ---------------------------------------------------------------------------


def cores() -> tuple[set[int] | None, set[int] | None]:
    """(the server's core, the fake upstream's and client's core), or Nones on one core."""
    shared, server = two_cores()
    return server, shared


def pinned(core: set[int] | None) -> Callable[[], None] | None:
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, core)


# --- servers -----------------------------------------------------------------------------


class Server:
    """A server process in front of the fake upstream: its URL, the model prefix, its pids."""

    def __init__(self, proc: subprocess.Popen[bytes] | None, url: str, model: str, log: Path | None) -> None:
        self.proc = proc
        self.url = url
        self.model = model
        self.log = log

    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        parent = psutil.Process(self.proc.pid)
        return [parent.pid, *(c.pid for c in parent.children(recursive=True))]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_serve(upstream: str, streams: int, workdir: Path, core: set[int] | None) -> Server:
    """`streamactors serve` with its defaults (logs at info, JSON, to stderr: a file here),
    API keys on, the fake upstream as an OpenAI provider whose `max_concurrency` lets every
    stream through at once."""
    config = workdir / "gateway.toml"
    config.write_text(
        f"""
[providers.fake]
kind = "openai"
api_key = "{UPSTREAM_KEY}"
base_url = "{upstream}/v1"
max_concurrency = {max(100, streams)}

[server]
api_keys = ["{KEY}"]
"""
    )
    log = workdir / f"serve-{time.monotonic_ns()}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamactors", "serve", "--config", str(config), "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=pinned(core),
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("listening on http://"):
                return Server(proc, line.removeprefix("listening on "), "fake/gpt-fake", log)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    Server(proc, "", "", log).stop()
    raise SystemExit(f"streamactors serve did not start:\n{_log_tail(log)}")


def find_litellm(choice: str, workdir: Path) -> tuple[str | None, str]:
    """(the litellm executable or None, what happened)."""
    if choice == "skip":
        return None, "skipped (--litellm skip)"
    if choice != "auto":
        return (choice, f"ran {choice}") if Path(choice).exists() else (None, f"not found: {choice}")
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        print(f"installing {LITELLM_REQUIREMENT} into {LITELLM_VENV} ...", file=sys.stderr, flush=True)
        steps = [
            [sys.executable, "-m", "venv", str(LITELLM_VENV)],
            [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", LITELLM_REQUIREMENT],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                why = " / ".join(line[:300] for line in (done.stderr or done.stdout).strip().splitlines()[-2:])
                return None, f"did not install ({' '.join(step[-2:])} failed: {why})"
    version = subprocess.run(
        [str(LITELLM_VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return str(exe), f"litellm {version or '?'} from {LITELLM_VENV}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_litellm(exe: str, upstream: str, workdir: Path, core: set[int] | None) -> Server:
    """LiteLLM's proxy (one uvicorn worker, its defaults), every model name sent on to the fake
    upstream as an OpenAI provider; a master key, as the gateway has API keys."""
    config = workdir / "litellm.yaml"
    config.write_text(
        f"""model_list:
  - model_name: "*"
    litellm_params:
      model: "openai/*"
      api_base: "{upstream}/v1"
      api_key: "{UPSTREAM_KEY}"
litellm_settings:
  telemetry: false
general_settings:
  master_key: "{KEY}"
"""
    )
    port = _free_port()
    log = workdir / f"litellm-{time.monotonic_ns()}.log"
    # The model cost map is read from the package, not fetched (no network here).
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=pinned(core),
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/health/liveliness", timeout=2) as r:
                if r.status == 200:
                    return Server(proc, url, "gpt-fake", log)
        except OSError:
            time.sleep(0.25)
    Server(proc, "", "", log).stop()
    raise RuntimeError(f"LiteLLM's proxy did not start:\n{_log_tail(log)}")


# --- one client run ----------------------------------------------------------------------


def run_client(server: Server, upstream_pid: int, args: list[str], core: set[int] | None) -> dict[str, Any]:
    """One client process; its JSON with `server_cpu_s` (the server's processes summed) and
    `upstream_cpu_s` over the measured part."""
    server_pids = server.pids()
    cmd = [sys.executable, str(CLIENT), *args, "--pids", ",".join(map(str, [*server_pids, upstream_pid]))]
    if server_pids and args[0] == "raw":
        cmd += ["--rss-pids", ",".join(map(str, server_pids))]
    run = subprocess.run(cmd, capture_output=True, preexec_fn=pinned(core), check=False, timeout=3600)
    if run.returncode != 0:
        raise RuntimeError(f"client {' '.join(args[:2])} failed:\n{run.stderr.decode()[-3000:]}")
    result: dict[str, Any] = orjson.loads(run.stdout.splitlines()[-1])
    cpu = result.pop("cpu_s")
    result["server_cpu_s"] = sum(cpu[:-1]) if server_pids else None
    result["upstream_cpu_s"] = cpu[-1]
    if result.get("lost"):
        raise RuntimeError(f"client {' '.join(args[:2])} lost {result['lost']} tokens")
    return result


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def summarize_ttft(runs: list[dict[str, Any]]) -> dict[str, Any]:
    n = runs[0]["requests"]
    out: dict[str, Any] = {
        "ttft_p50_ms": statistics.median(statistics.median(r["ttft_s"]) * 1e3 for r in runs),
        "ttft_p99_ms": statistics.median(p99(r["ttft_s"]) * 1e3 for r in runs),
        "client_cpu_us_per_request": statistics.median(r["client_cpu_s"] * 1e6 / n for r in runs),
        "upstream_cpu_us_per_request": statistics.median(r["upstream_cpu_s"] * 1e6 / n for r in runs),
    }
    if runs[0]["server_cpu_s"] is not None:
        out["server_cpu_us_per_request"] = statistics.median(r["server_cpu_s"] * 1e6 / n for r in runs)
    return out


def summarize_tokens(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "streams": runs[0]["streams"],
        "tokens": runs[0]["tokens"],
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
        "client_cpu_us_per_token": statistics.median(r["client_cpu_s"] * 1e6 / r["received"] for r in runs),
        "upstream_cpu_us_per_token": statistics.median(r["upstream_cpu_s"] * 1e6 / r["received"] for r in runs),
    }
    if runs[0]["server_cpu_s"] is not None:
        out |= {
            "server_cpu_us_per_token": statistics.median(r["server_cpu_s"] * 1e6 / r["received"] for r in runs),
            "tokens_per_server_cpu_s": statistics.median(r["received"] / r["server_cpu_s"] for r in runs),
            "server_core_share": statistics.median(r["server_cpu_s"] / r["wall_s"] for r in runs),
            "server_rss_growth_mib": statistics.median(r["rss_growth_mib"] for r in runs),
        }
    return out


# --- output ------------------------------------------------------------------------------


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--requests", type=int, default=200, help="sequential SDK requests for the TTFT")
    p.add_argument("--tokens", type=int, default=200_000, help="tokens of the one-stream scenario")
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--tokens-many", type=int, default=1_000_000, help="tokens in all over --streams streams")
    p.add_argument("--small-tokens", type=int, default=5_000, help="one stream, LiteLLM's size")
    p.add_argument("--small-tokens-many", type=int, default=20_000, help="over --streams streams, LiteLLM's size")
    p.add_argument("--litellm", default="auto", help="auto, skip, or the path of a litellm executable")
    p.add_argument("--no-pin", action="store_true", help="leave every process to the scheduler")
    p.add_argument("--scenarios", default="ttft,one,many,one_small,many_small", help="which to run, comma-separated")
    args = p.parse_args()

    server_core, shared_core = (None, None) if args.no_pin else cores()
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    litellm_exe, litellm_status = find_litellm(args.litellm, workdir)
    S = args.streams
    scenarios: list[tuple[str, str, list[str], tuple[str, ...]]] = [
        ("ttft", f"TTFT, openai SDK, {args.requests} sequential requests", ["sdk", str(args.requests)], KINDS),
        ("one", f"1 stream x {args.tokens:,} tokens", ["raw", "1", str(args.tokens)], ("direct", "serve")),
        ("many", f"{S:,} streams, {args.tokens_many:,} tokens", ["raw", str(S), str(args.tokens_many)], KINDS[:2]),
        ("one_small", f"1 stream x {args.small_tokens:,} tokens", ["raw", "1", str(args.small_tokens)], KINDS),
        (
            "many_small",
            f"{S:,} streams, {args.small_tokens_many:,} tokens",
            ["raw", str(S), str(args.small_tokens_many)],
            KINDS,
        ),
    ]
    chosen = set(args.scenarios.split(","))
    scenarios = [sc for sc in scenarios if sc[0] in chosen]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    upstream_proc = UpstreamProcess(StressOptions())
    upstream = upstream_proc.start()
    assert upstream_proc.proc is not None
    upstream_pid = upstream_proc.proc.pid
    if shared_core is not None:
        os.sched_setaffinity(upstream_pid, shared_core)
    try:
        for rep in range(args.repeat):
            for name, _, client_args, kinds in scenarios:
                for kind in kinds:
                    if kind == "litellm" and litellm_exe is None:
                        continue
                    print(f"[{rep + 1}/{args.repeat}] {name} {kind}", file=sys.stderr, flush=True)
                    streams = int(client_args[1]) if client_args[0] == "raw" else 1
                    if kind == "direct":
                        server = Server(None, upstream, "gpt-fake", None)
                    elif kind == "serve":
                        server = start_serve(upstream, streams, workdir, server_core)
                    else:
                        assert litellm_exe is not None
                        try:
                            server = start_litellm(litellm_exe, upstream, workdir, server_core)
                        except RuntimeError as exc:
                            litellm_exe, litellm_status = None, f"did not run: {exc}"
                            continue
                    try:
                        head = [client_args[0], server.url, server.model, KEY, *client_args[1:]]
                        runs.setdefault((name, kind), []).append(run_client(server, upstream_pid, head, shared_core))
                    except RuntimeError as exc:
                        if kind != "litellm":
                            raise SystemExit(str(exc)) from None
                        litellm_exe, litellm_status = None, f"failed: {exc}"
                    finally:
                        server.stop()
    finally:
        upstream_proc.stop()

    results: dict[str, dict[str, Any]] = {}
    for (name, kind), rs in runs.items():
        if kind == "litellm" and litellm_exe is None:
            continue
        results.setdefault(name, {})[kind] = summarize_ttft(rs) if name == "ttft" else summarize_tokens(rs)
    load = (load_before, os.getloadavg()[0])
    print_report(args, scenarios, results, server_core, litellm_status, load)
    emit_json(
        "gateway",
        repeat=args.repeat,
        pinned=server_core is not None,
        load_average=load,
        litellm=litellm_status,
        results=results,
    )


def print_report(
    args: argparse.Namespace,
    scenarios: list[tuple[str, str, list[str], tuple[str, ...]]],
    results: dict[str, dict[str, Any]],
    server_core: set[int] | None,
    litellm_status: str,
    load: tuple[float, float],
) -> None:
    kinds = [k for k in KINDS if any(k in r for r in results.values())]
    rows: list[list[str]] = []

    def row(label: str, name: str, key: str, digits: int = 0, added: bool = False) -> None:
        cells = []
        base = results.get(name, {}).get("direct", {}).get(key)
        for kind in kinds:
            value = results.get(name, {}).get(kind, {}).get(key)
            cell = _num(value, digits)
            if added and value is not None and base is not None and kind != "direct":
                cell += f" ({value - base:+,.{digits}f})"
            cells.append(cell)
        rows.append([label, *cells])

    titles = {name: title for name, title, _, _ in scenarios}
    if "ttft" in results:
        t = titles["ttft"]
        row(f"{t}: TTFT p50, ms (added)", "ttft", "ttft_p50_ms", 3, added=True)
        row(f"{t}: TTFT p99, ms (added)", "ttft", "ttft_p99_ms", 3, added=True)
        row(f"{t}: server CPU per request, µs", "ttft", "server_cpu_us_per_request")
        row(f"{t}: client CPU per request, µs", "ttft", "client_cpu_us_per_request")
        row(f"{t}: fake upstream CPU per request, µs", "ttft", "upstream_cpu_us_per_request")
    for name in ("one", "many", "one_small", "many_small"):
        if name not in results:
            continue
        t = titles[name]
        row(f"{t}: tokens/s", name, "tokens_per_s")
        row(f"{t}: server CPU per token, µs", name, "server_cpu_us_per_token", 2)
        row(f"{t}: tokens per server CPU-second", name, "tokens_per_server_cpu_s")
        row(f"{t}: server's share of its core", name, "server_core_share", 2)
        row(f"{t}: server RSS growth, MiB", name, "server_rss_growth_mib", 1)
        row(f"{t}: client CPU per token, µs", name, "client_cpu_us_per_token", 2)
    placement = (
        f"the server alone on core {sorted(server_core)[0]}, the fake upstream and the client sharing the other"
        if server_core
        else "not pinned"
    )
    print(
        f"## Gateway hop, median of {args.repeat} runs; fresh processes; {placement}; "
        f"load average {load[0]:.1f} before, {load[1]:.1f} after\n\n"
        + markdown_table(["scenario", *(NAMES[k] for k in kinds)], rows)
    )
    print(f"\nLiteLLM: {litellm_status}")
    serve_ttft = results.get("ttft", {})
    if "serve" in serve_ttft and "direct" in serve_ttft:
        added = serve_ttft["serve"]["ttft_p50_ms"] - serve_ttft["direct"]["ttft_p50_ms"]
        print(f"goal, at most +1 ms on the p50 TTFT: {added:+.3f} ms: {'met' if added <= 1.0 else 'MISSED'}")
    per_cpu = [
        (titles[n], results[n]["serve"]["tokens_per_server_cpu_s"])
        for n in ("one", "many")
        if "serve" in results.get(n, {})
    ]
    if per_cpu:
        worst = min(v for _, v in per_cpu)
        figures = "; ".join(f"{t}: {v:,.0f}" for t, v in per_cpu)
        print(
            f"goal, at least 50,000 tokens/s on one core (tokens per gateway CPU-second): {figures}: "
            f"{'met' if worst >= 50_000 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
