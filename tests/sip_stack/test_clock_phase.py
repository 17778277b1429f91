"""ClockPhase: when to restart the media clock so that its ticks follow the routed call's packets."""

from __future__ import annotations

import pytest

from sip_stack.clock_phase import MARGIN_S, SAMPLES, ClockPhase

FRAME = 0.020


def _feed(phase: ClockPhase, arrivals: list[float], first_count: int = 100) -> None:
    phase.packets_counted(first_count, arrivals[0] - FRAME)  # the count before the first arrival
    for n, t in enumerate(arrivals, start=1):
        phase.packets_counted(first_count + n, t)


def test_the_restart_comes_a_margin_after_a_late_arrival_not_after_a_stall() -> None:
    phase = ClockPhase(FRAME)
    phase.follow("c1", 0)
    # most packets within 1 ms, a fifth 2 ms late, one 9 ms late (the thread stalled)
    jitter = [0.0005 * (k % 3) for k in range(SAMPLES)]
    for k in range(0, SAMPLES, 5):
        jitter[k] = 0.002
    jitter[7] = 0.009
    arrivals = [10.0 + k * FRAME + j for k, j in enumerate(jitter)]
    _feed(phase, arrivals)
    assert phase.restart_at is not None
    assert phase.restart_at > arrivals[-1]
    offset = (phase.restart_at - 10.0) % FRAME
    assert offset == pytest.approx(0.002 + MARGIN_S, abs=1e-9)


def test_arrivals_around_the_period_boundary_fold_onto_one_phase() -> None:
    phase = ClockPhase(FRAME)
    phase.follow("c1", 0)
    # arrivals alternate just before and just after a multiple of the frame (phase ~0 = ~20 ms)
    arrivals = [10.0 + k * FRAME + (0.0195 if k % 2 else 0.0005) for k in range(SAMPLES)]
    _feed(phase, arrivals)
    assert phase.restart_at is not None
    offset = (phase.restart_at - 10.0) % FRAME
    assert offset == pytest.approx(0.0005 + MARGIN_S, abs=1e-9)  # after the packets, not 10 ms off


def test_packets_that_came_together_are_no_arrival_times() -> None:
    phase = ClockPhase(FRAME)
    phase.follow("c1", 0)
    phase.packets_counted(5, 1.0)
    for n in range(SAMPLES):
        phase.packets_counted(7 + 2 * n, 1.0 + n * FRAME)  # two at a time: a stall
    assert phase.restart_at is None


def test_restart_is_due_once_and_a_late_wake_keeps_the_phase() -> None:
    phase = ClockPhase(FRAME)
    phase.follow("c1", 1)
    _feed(phase, [2.0 + k * FRAME for k in range(SAMPLES)])
    at = phase.restart_at
    assert at is not None
    assert not phase.restart_due(at - 0.001)
    assert not phase.restart_due(at + MARGIN_S + 0.004)  # woken too late for this tick
    assert phase.restart_at == pytest.approx(at + FRAME)
    assert phase.restart_due(at + FRAME)
    assert phase.target is None and phase.restart_at is None
    assert not phase.restart_due(at + 2 * FRAME)


def test_another_call_routed_or_this_one_gone_stops_following() -> None:
    phase = ClockPhase(FRAME)
    phase.follow("c1", 0)
    phase.stop_following("c2")
    assert phase.target == ("c1", 0)
    phase.stop_following("c1")
    assert phase.target is None
    _feed(phase, [1.0 + k * FRAME for k in range(SAMPLES)])
    assert phase.restart_at is None
