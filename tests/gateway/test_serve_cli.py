"""`streamactors serve` as a user runs it (issue 14): a real process, its `listening on` line,
SIGTERM letting an in-flight stream finish before exit 0, and the loopback rule without API
keys. Wall clock: a separate process and real signals are the point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
import trio

from streamactors import Config
from streamactors.gateway.run import bind_address
from streamactors.testing import FakeUpstream, token_text


def write_config(tmp_path: Path, fake: FakeUpstream, server: str = "") -> Path:
    path = tmp_path / "streamactors.toml"
    path.write_text(
        f"""
[providers.openai]
kind = "openai"
api_key = "sk-openai-0123456789"
base_url = "{fake.base_url}/v1"

[service]
shutdown_grace = 5.0

[server]
{server}
"""
    )
    return path


async def start_serve(config: Path, *args: str) -> tuple[trio.Process, str, list[str]]:
    """Start `streamactors serve`; return the process, its URL and the stderr lines up to the
    `listening on` line."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "streamactors", "serve", "--config", str(config), "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    lines: list[str] = []
    buffer = b""
    with trio.fail_after(30):
        while True:
            chunk = await proc.stderr.receive_some(4096)
            assert chunk, f"serve exited early: {buffer.decode()!r}"
            buffer += chunk
            *done, buffer = buffer.split(b"\n")
            lines += [line.decode() for line in done]
            for line in lines:
                if line.startswith("listening on http://"):
                    return proc, line.removeprefix("listening on "), lines


async def test_sigterm_lets_an_in_flight_stream_finish_then_exits_0(tmp_path: Path, fake: FakeUpstream) -> None:
    proc, url, _ = await start_serve(write_config(tmp_path, fake, 'api_keys = ["sk-gw-0123456789"]'))
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    headers = {"authorization": "Bearer sk-gw-0123456789"}
    request = {
        "model": "openai/gpt-fake~tokens=20~delay_ms=50",  # about 1 s of streaming
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        async with client.stream("POST", "/v1/chat/completions", json=request) as response:
            assert response.status_code == 200
            body = b""
            signalled = False
            async for chunk in response.aiter_bytes():
                body += chunk
                if not signalled and b"t0 " in body:
                    proc.send_signal(signal.SIGTERM)
                    signalled = True
        assert body.endswith(b"data: [DONE]\n\n")  # the whole stream, though the signal came after its first token
        chunks = [orjson.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: {")]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == "".join(token_text(i) for i in range(20))
    with trio.fail_after(10):
        assert await proc.wait() == 0


async def test_without_keys_it_binds_to_loopback_unless_told(tmp_path: Path, fake: FakeUpstream) -> None:
    proc, url, lines = await start_serve(write_config(tmp_path, fake))
    assert url.startswith("http://127.0.0.1:") and not any("warning" in line for line in lines)
    proc.send_signal(signal.SIGINT)
    with trio.fail_after(10):
        assert await proc.wait() == 0


@pytest.mark.parametrize(
    ("server", "host", "expected", "warns"),
    [
        ({}, None, "127.0.0.1", None),
        ({"host": "0.0.0.0"}, None, "127.0.0.1", "not on server.host '0.0.0.0'"),
        ({}, "0.0.0.0", "0.0.0.0", "open to anyone who can reach it"),
        ({}, "::1", "::1", None),
        ({"host": "0.0.0.0", "api_keys": ["sk-gw-0123456789"]}, None, "0.0.0.0", None),
    ],
)
def test_bind_address(server: dict[str, object], host: str | None, expected: str, warns: str | None) -> None:
    got_host, port, warning = bind_address(Config.from_dict({"server": server}), host, None)
    assert (got_host, port) == (expected, 8080)
    assert (warning is None) if warns is None else (warns in (warning or ""))


def test_a_bad_config_names_the_key_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nprot = 1\n")
    done = subprocess.run(
        [sys.executable, "-m", "streamactors", "serve", "--config", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "server.prot: unknown key (did you mean 'port'?)" in done.stderr
