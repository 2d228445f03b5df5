"""The one-for-one supervisor, in virtual time (MockClock with autojump)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from conftest import LogCapture
from streamactors.supervision.supervisor import ChildSpec, Restart, SupervisorGaveUp, supervise


class Flaky:
    """A child that crashes its first `crashes` runs, then serves until cancelled."""

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.starts: list[float] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.starts.append(trio.current_time())
        task_status.started()
        await trio.sleep(1.0)
        if len(self.starts) <= self.crashes:
            raise RuntimeError(f"crash {len(self.starts)}")
        await trio.sleep_forever()


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_crashed_child_restarts_with_backoff_while_others_serve(autojump_clock: Any) -> None:
    logs = LogCapture([])
    flaky, steady = Flaky(crashes=3), Flaky(crashes=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: supervise(
                [ChildSpec("flaky", flaky.run), ChildSpec("steady", steady.run)],
                logger=logs.logger,
                max_restarts=10,
                within_s=60.0,
                task_status=task_status,
            )
        )
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    # Each run lives 1 s before crashing; restarts wait 0.05, 0.1, 0.2 s (doubling).
    assert flaky.starts == pytest.approx([0.0, 1.05, 2.15, 3.35])
    assert steady.starts == [0.0]
    events = [r["event"] for r in logs.records()]
    assert events.count("child_crashed") == 3
    assert events.count("child_restarted") == 3


async def test_supervisor_gives_up_past_the_restart_intensity(autojump_clock: Any) -> None:
    logs = LogCapture([])
    flaky = Flaky(crashes=100)
    with pytest.raises(BaseExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: supervise(
                    [ChildSpec("flaky", flaky.run)],
                    logger=logs.logger,
                    max_restarts=3,
                    within_s=60.0,
                    task_status=task_status,
                )
            )
    assert info.group_contains(SupervisorGaveUp)
    assert len(flaky.starts) == 4  # the first run and three restarts
    assert "supervisor_gave_up" in [r["event"] for r in logs.records()]


async def test_transient_child_that_returns_is_not_restarted(autojump_clock: Any) -> None:
    runs = []

    async def once(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        runs.append(trio.current_time())
        task_status.started()

    await supervise([ChildSpec("once", once, Restart.TRANSIENT)], logger=LogCapture([]).logger)
    assert runs == [0.0]


async def test_child_that_crashes_before_ready_is_retried(autojump_clock: Any) -> None:
    attempts = []

    async def slow_start(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        attempts.append(trio.current_time())
        if len(attempts) < 3:
            raise OSError("port busy")
        task_status.started()

    await supervise([ChildSpec("s", slow_start)], logger=LogCapture([]).logger)
    assert len(attempts) == 3
