"""`streamactors serve`: the service and its HTTP gateway, until SIGINT or SIGTERM."""

from __future__ import annotations

import ipaddress
import signal
import sys
from typing import Any, TextIO

import trio

from ..config.schema import Config
from ..logs import make_logger, open_log_file
from ..service import open_service
from .app import GatewayApp
from .dialects import AnthropicDialect, OpenAIDialect
from .server import ServerLimits, serve

__all__ = ["bind_address", "run_gateway"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_address(config: Config, host: str | None, port: int | None) -> tuple[str, int, str | None]:
    """(host, port, warning) to listen on. Without API keys the gateway binds to loopback
    only, unless `host` was given explicitly (`--host`): then it warns that it is open."""
    server = config.server
    port = server.port if port is None else port
    if config.server.api_keys:
        return (host or server.host), port, None
    if host is None:
        if not _is_loopback(server.host):
            return (
                "127.0.0.1",
                port,
                (
                    f"no [server] api_keys: listening on 127.0.0.1, not on server.host {server.host!r}; "
                    "set api_keys, or pass --host to listen there without keys"
                ),
            )
        return server.host, port, None
    if _is_loopback(host):
        return host, port, None
    return (
        host,
        port,
        (
            f"no [server] api_keys: the gateway on {host} is open to anyone who can reach it, "
            "and every request spends the configured providers' keys"
        ),
    )


async def run_gateway(
    config: Config,
    host: str | None = None,
    port: int | None = None,
    *,
    err: TextIO = sys.stderr,
    logger: Any = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until SIGINT or SIGTERM (or cancellation): then stop accepting, let in-flight
    streams finish within `service.shutdown_grace`, and return.

    Prints `listening on http://HOST:PORT` to `err` once connections are accepted (with the
    real port when `port` is 0), after any warning about an open server.
    """
    bind_host, bind_port, warning = bind_address(config, host, port)
    log_file = open_log_file(config.logging) if logger is None else None
    try:
        log = logger if logger is not None else make_logger(config.logging, config.secrets(), stream=log_file)
        async with open_service(config, logger=log) as service:
            app = GatewayApp(service, config, openai=OpenAIDialect(), anthropic=AnthropicDialect(), logger=log)
            s = config.server
            limits = ServerLimits(
                max_body_bytes=s.max_body_bytes,
                header_timeout=s.header_timeout,
                body_timeout=s.body_timeout,
                keepalive_timeout=s.keepalive_timeout,
                send_timeout=s.send_timeout,
            )
            shutdown = trio.Event()
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with trio.open_nursery() as nursery:

                    async def on_signal() -> None:
                        async for signum in signals:
                            log.info("gateway_stopping", signal=signal.Signals(signum).name)
                            app.draining = True
                            shutdown.set()
                            return

                    nursery.start_soon(on_signal)
                    bound = await nursery.start(
                        lambda task_status: serve(
                            app,
                            bind_host,
                            bind_port,
                            limits,
                            shutdown=shutdown,
                            grace=config.service.shutdown_grace,
                            logger=log,
                            task_status=task_status,
                        )
                    )
                    if warning:
                        print(f"streamactors serve: warning: {warning}", file=err, flush=True)
                    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
                    print(f"listening on http://{shown}:{bound[1]}", file=err, flush=True)
                    log.info("gateway_listening", host=bound[0], port=bound[1])
                    task_status.started(bound)
                    await shutdown.wait()
                    # `serve` returns once the in-flight streams are done (or the grace is over).
                    nursery.cancel_scope.deadline = trio.current_time() + config.service.shutdown_grace + 1.0
    finally:
        if log_file is not None:
            log_file.close()
