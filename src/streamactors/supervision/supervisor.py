"""A one-for-one supervisor: each child restarts on its own when it crashes.

Children are declared as `ChildSpec`s (OTP style, PEP 8 names). A crashed child is
restarted after a backoff that doubles with consecutive crashes; if crashes exceed the
restart intensity (`max_restarts` within `within_s`), the supervisor gives up and
raises `SupervisorGaveUp`, so the failure is loud rather than a silent restart loop.
Time is trio's clock, so tests drive it with `MockClock`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from ..policy.intensity import RestartIntensity, restart_backoff

__all__ = ["ChildSpec", "Restart", "SupervisorGaveUp", "supervise"]


class Restart(enum.Enum):
    """When a child that stopped is started again."""

    PERMANENT = "permanent"  # always (after a crash or a normal return)
    TRANSIENT = "transient"  # only after a crash
    TEMPORARY = "temporary"  # never


@attrs.frozen
class ChildSpec:
    """`start` is an async callable taking `task_status`; it calls `task_status.started()`
    once it is ready to serve."""

    id: str
    start: Callable[..., Awaitable[Any]]
    restart: Restart = Restart.TRANSIENT


class SupervisorGaveUp(Exception):
    """A child crashed more often than the restart intensity allows."""

    def __init__(self, child: str, restarts: int, within_s: float) -> None:
        super().__init__(f"child {child!r} crashed {restarts} times within {within_s} s; giving up")
        self.child = child


async def supervise(
    children: Sequence[ChildSpec],
    *,
    logger: Any,
    max_restarts: int = 10,
    within_s: float = 60.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start every child (in order, each ready before the next), then keep them running."""
    async with trio.open_nursery() as nursery:
        for spec in children:
            await nursery.start(_keep_running, spec, logger, max_restarts, within_s)
        task_status.started()


async def _keep_running(
    spec: ChildSpec,
    logger: Any,
    max_restarts: int,
    within_s: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    intensity = RestartIntensity(max_restarts, within_s)
    log = logger.bind(child=spec.id)
    ready = False
    consecutive = 0
    while True:
        crashed: Exception | None = None
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(spec.start)
                if not ready:
                    ready = True
                    task_status.started()
                elif consecutive:
                    log.info("child_restarted", crashes=consecutive)
        except Exception as exc:  # an ExceptionGroup from the child's nursery, typically
            crashed = exc
        if crashed is None:
            consecutive = 0
            if spec.restart is not Restart.PERMANENT:
                return
            continue
        if spec.restart is Restart.TEMPORARY:
            raise crashed
        consecutive += 1
        log.error("child_crashed", error=_describe(crashed), crashes=consecutive)
        if not intensity.record(trio.current_time()):
            log.critical("supervisor_gave_up", crashes=consecutive)
            raise SupervisorGaveUp(spec.id, max_restarts, within_s) from crashed
        await trio.sleep(restart_backoff(consecutive - 1))


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
