"""Named timers: fire once, restart replaces, cancel forgets, a stale firing is recognised."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest

from firmware.timers import TimerExpiry, Timers


@pytest.fixture
def fired() -> queue.SimpleQueue[TimerExpiry]:
    return queue.SimpleQueue()


@pytest.fixture
def timers(fired: queue.SimpleQueue[TimerExpiry]) -> Iterator[Timers]:
    t = Timers(fired.put)
    t.start()
    yield t
    t.stop()


def test_a_timer_fires_once_and_is_current(timers: Timers, fired: queue.SimpleQueue[TimerExpiry]) -> None:
    timers.schedule("interdigit", 0.05)
    expiry = fired.get(timeout=2)
    assert expiry.name == "interdigit"
    assert timers.is_current(expiry)
    with pytest.raises(queue.Empty):
        fired.get(timeout=0.2)


def test_restart_replaces_the_pending_timer(timers: Timers, fired: queue.SimpleQueue[TimerExpiry]) -> None:
    timers.schedule("interdigit", 0.1)
    timers.schedule("interdigit", 0.3)
    expiry = fired.get(timeout=2)
    assert timers.is_current(expiry)
    with pytest.raises(queue.Empty):
        fired.get(timeout=0.4)


def test_cancel_forgets_and_marks_posted_firings_stale(
    timers: Timers, fired: queue.SimpleQueue[TimerExpiry]
) -> None:
    timers.schedule("click_to_call", 0.05)
    expiry = fired.get(timeout=2)
    timers.cancel("click_to_call")
    assert not timers.is_current(expiry)
    timers.schedule("other", 0.05)
    timers.cancel("other")
    with pytest.raises(queue.Empty):
        fired.get(timeout=0.3)
