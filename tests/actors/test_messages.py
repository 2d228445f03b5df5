"""The actors' messages: the consumer's cancel handle, which the provider's waits use."""

from __future__ import annotations

from streamactors.actors.messages import CancelHandle


async def test_cancel_handle_interrupts_the_current_wait_only() -> None:
    handle = CancelHandle()
    first = handle.scope()
    handle.release(first)
    second = handle.scope(deadline=5.0)
    handle.release(first)  # not the current one: changes nothing
    handle.cancel()
    assert second.cancel_called  # the wait in progress ends
    assert not first.cancel_called  # one already left is not touched (trio would log a repr)
    assert handle.scope().cancel_called  # and every later wait opens cancelled
