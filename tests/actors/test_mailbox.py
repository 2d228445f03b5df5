"""The batched mailbox's rule, in virtual time: routine reports wait, in order, for the next
wake-up, which comes with anything urgent (an alert, a call, a dropped report), when the
mailbox is half full, or `FLUSH_INTERVAL` seconds after the last wake-up; reads drain first;
a full mailbox drops and counts; closing serves the rest and ends the loop."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from streamactors.actors.mailbox import FLUSH_INTERVAL, BatchedActor, Call

CAPACITY = 8


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@attrs.frozen(slots=True)
class _Note:
    value: int


@attrs.frozen(slots=True, eq=False)
class _Ask(Call[list[int]]):
    """What has the actor taken in so far?"""


class Probe(BatchedActor[_Note | _Ask]):
    """Records each note it takes in, with the trio time it did."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__(capacity)
        self.seen: list[tuple[int, float]] = []
        self.broken = False

    def note(self, value: int) -> None:
        self._post(_Note(value))

    def alert(self, value: int) -> None:
        self._alert(_Note(value))

    async def ask(self) -> list[int]:
        return await self._call(_Ask)

    def status(self) -> list[int]:
        self.drain()
        return self.values()

    def values(self) -> list[int]:
        return [value for value, _ in self.seen]

    def _handle(self, msg: _Note | _Ask) -> None:
        if self.broken:
            raise ValueError("a bug in the handler")
        if type(msg) is _Note:
            self.seen.append((msg.value, trio.current_time()))
        elif type(msg) is _Ask:
            msg.reply.send_nowait(self.values())


async def started(nursery: trio.Nursery, capacity: int = CAPACITY) -> Probe:
    probe = Probe(capacity)
    await nursery.start(probe.run)
    return probe


async def test_routine_reports_wait_for_the_flush_interval(autojump_clock: Any, nursery: trio.Nursery) -> None:
    probe = await started(nursery)
    for value in (1, 2, 3):
        probe.note(value)
    await trio.sleep(FLUSH_INTERVAL * 0.75)
    assert probe.seen == []  # no wake-up for routine news
    assert not probe._urgent
    await trio.sleep(FLUSH_INTERVAL)
    assert probe.seen == [(1, 1.0), (2, 1.0), (3, 1.0)]  # in order, in one turn, at the interval


async def test_the_interval_runs_from_the_last_wake_up(autojump_clock: Any, nursery: trio.Nursery) -> None:
    probe = await started(nursery)
    await trio.sleep(0.25)
    probe.alert(1)  # a wake-up at 0.25
    await trio.sleep(0.25)
    probe.note(2)  # at 0.5: waits for 0.25 + FLUSH_INTERVAL
    await trio.sleep(2 * FLUSH_INTERVAL)
    assert probe.seen == [(1, 0.25), (2, 0.25 + FLUSH_INTERVAL)]


async def test_an_urgent_report_wakes_the_actor_with_the_routine_ones_before_it(
    autojump_clock: Any, nursery: trio.Nursery
) -> None:
    probe = await started(nursery)
    await trio.sleep(0.25)
    probe.note(1)
    probe.note(2)
    probe.alert(3)
    assert probe._urgent  # news that matters waits unread: nobody may rely on the state on show
    await trio.testing.wait_all_tasks_blocked()
    assert probe.seen == [(1, 0.25), (2, 0.25), (3, 0.25)]
    assert not probe._urgent


async def test_a_half_full_mailbox_wakes_the_actor(autojump_clock: Any, nursery: trio.Nursery) -> None:
    probe = await started(nursery)
    await trio.sleep(0.25)
    for value in range(CAPACITY // 2 - 1):
        probe.note(value)
    await trio.sleep(0.25)
    assert probe.seen == []  # one short of half full
    probe.note(CAPACITY // 2 - 1)
    await trio.testing.wait_all_tasks_blocked()
    assert probe.seen == [(value, 0.5) for value in range(CAPACITY // 2)]
    # The count starts again after each turn: half full means half full of new reports.
    for value in range(CAPACITY // 2 - 1):
        probe.note(100 + value)
    await trio.sleep(0.25)
    assert len(probe.seen) == CAPACITY // 2
    probe.note(200)
    await trio.testing.wait_all_tasks_blocked()
    assert probe.values()[CAPACITY // 2 :] == [*range(100, 100 + CAPACITY // 2 - 1), 200]
    assert probe.seen[-1][1] == 0.75


async def test_a_call_wakes_the_actor_and_is_answered_after_what_was_queued(
    autojump_clock: Any, nursery: trio.Nursery
) -> None:
    probe = await started(nursery)
    await trio.sleep(0.25)
    probe.note(1)
    probe.note(2)
    assert await probe.ask() == [1, 2]
    assert trio.current_time() == 0.25  # answered at once, not at the interval


async def test_a_read_drains_first(autojump_clock: Any, nursery: trio.Nursery) -> None:
    probe = await started(nursery)
    probe.note(1)
    probe.alert(2)  # urgent, but the actor has not run yet
    assert probe.status() == [1, 2]  # synchronously: the read takes them in itself
    assert not probe._urgent
    await trio.sleep(2 * FLUSH_INTERVAL)
    assert probe.values() == [1, 2]  # taken in once


async def test_a_full_mailbox_drops_and_counts(autojump_clock: Any, nursery: trio.Nursery) -> None:
    probe = await started(nursery)
    for value in range(CAPACITY + 3):  # the actor has no chance to run in between
        probe.note(value)
    assert probe.dropped_reports == 3
    assert probe._urgent  # something was lost: the state on show may be out of date
    probe.alert(99)
    assert probe.dropped_reports == 4
    await trio.testing.wait_all_tasks_blocked()
    assert probe.seen == [(value, 0.0) for value in range(CAPACITY)]  # the first ones, in order
    probe.note(CAPACITY)
    assert probe.dropped_reports == 4  # emptied: room again


async def test_closing_serves_the_rest_then_ends_the_loop(autojump_clock: Any) -> None:
    probe = Probe()
    async with trio.open_nursery() as nursery:
        await nursery.start(probe.run)
        probe.note(1)
        probe.close()
        probe.note(2)  # refused: not queued, not counted as dropped
    assert probe.values() == [1]
    assert probe.dropped_reports == 0
    assert trio.current_time() == 0.0  # closing woke the actor
    assert probe.drain() is False


async def test_a_call_whose_handler_raises_fails_instead_of_waiting(nursery: trio.Nursery) -> None:
    probe = Probe()  # no actor task: the test serves the mailbox itself, as a read does
    outcome: list[BaseException] = []

    async def ask() -> None:
        try:
            await probe.ask()
        except RuntimeError as exc:
            outcome.append(exc)

    nursery.start_soon(ask)
    await trio.testing.wait_all_tasks_blocked()
    probe.broken = True
    with pytest.raises(ValueError, match="a bug"):
        probe.drain()  # the bug reaches whoever served the mailbox (the actor: it crashes)
    await trio.testing.wait_all_tasks_blocked()
    assert [str(e) for e in outcome] == ["Probe stopped before answering"]
