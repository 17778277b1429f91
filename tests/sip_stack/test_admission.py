"""Which INVITEs the phone takes on: source, user, calls up and the admission rate (no pjsua)."""

from __future__ import annotations

import logging

import pytest

from sip_stack import sipmsg
from sip_stack.admission import (
    ADMISSIONS_BURST,
    ADMISSIONS_PER_S,
    BUSY,
    NOT_FOR_US,
    QUIET_BEFORE_TRIM_S,
    TOO_FAST,
    UNTRUSTED,
    Admission,
    host_matches,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(clock: Clock, **kwargs) -> Admission:  # type: ignore[no-untyped-def]
    return Admission("1001", ["10.0.0.5", "192.168.7.0/24", "pbx.office.test"], clock=clock, **kwargs)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("10.0.0.5:5060", True),
        ("192.168.7.20:5060", True),
        ("PBX.office.test:5060", True),
        ("10.0.0.6:5060", False),
        ("[2001:db8::1]:5060", False),
        ("", False),
    ],
)
def test_sources_match_by_host_address_or_network(source: str, expected: bool) -> None:
    assert host_matches(source, ["10.0.0.5", "192.168.7.0/24", "pbx.office.test"]) is expected


def test_a_stranger_is_refused_with_403_before_anything_else() -> None:
    clock = Clock()
    gate = admission(clock)
    assert gate.decide("10.9.9.9:5060", "1001", 0) == UNTRUSTED
    assert gate.decide("10.9.9.9:5060", "9999", 9) == UNTRUSTED
    assert UNTRUSTED.code == 403
    assert gate.decide("10.0.0.5:5060", "1001", 0) is None


def test_with_only_from_pbx_off_a_stranger_may_call() -> None:
    gate = admission(Clock(), only_from_pbx=False)
    assert gate.decide("10.9.9.9:5060", "1001", 0) is None


def test_another_user_gets_404_and_past_max_calls_486() -> None:
    gate = admission(Clock(), max_calls=3)
    assert gate.decide("10.0.0.5:5060", "9999", 0) == NOT_FOR_US
    assert gate.decide("10.0.0.5:5060", "1001", 2) is None
    assert gate.decide("10.0.0.5:5060", "1001", 3) == BUSY
    assert BUSY.code == 486
    assert gate.room_for_call(2) and not gate.room_for_call(3)


def test_new_calls_past_the_admission_rate_get_486_and_the_rate_refills() -> None:
    clock = Clock()
    gate = admission(clock)
    taken = [gate.decide("10.0.0.5:5060", "1001", 0) for _ in range(ADMISSIONS_BURST + 3)]
    assert taken[:ADMISSIONS_BURST] == [None] * ADMISSIONS_BURST
    assert taken[ADMISSIONS_BURST:] == [TOO_FAST] * 3
    clock.now += 1.0 / ADMISSIONS_PER_S
    assert gate.decide("10.0.0.5:5060", "1001", 0) is None
    assert gate.decide("10.0.0.5:5060", "1001", 0) == TOO_FAST
    # refused strangers do not use up the rate: the PBX's next call still gets through
    clock.now += 1.0 / ADMISSIONS_PER_S
    for _ in range(100):
        gate.decide("10.9.9.9:5060", "1001", 0)
    assert gate.decide("10.0.0.5:5060", "1001", 0) is None


def test_max_calls_is_bounded_by_the_media_socket_budget() -> None:
    with pytest.raises(ValueError, match="max_calls"):
        Admission("1001", [], max_calls=13)


def test_refusals_are_logged_once_per_source_then_summed_up(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    gate = admission(clock)
    with caplog.at_level(logging.INFO, logger="sip_stack.admission"):
        for _ in range(500):
            gate.decide("10.9.9.9:5060", "1001", 0)
        clock.now += 11
        gate.decide("10.9.9.8:5060", "1001", 0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "10.9.9.9" in lines[0] and "403" in lines[0]
    assert lines[-1] == "refused 501 INVITEs since the last summary (untrusted 501)"


def test_the_heap_is_trimmed_once_after_a_flood_has_been_quiet_long_enough() -> None:
    clock = Clock()
    gate = admission(clock)
    gate.decide("10.9.9.9:5060", "1001", 0)
    clock.now += QUIET_BEFORE_TRIM_S + 1
    assert not gate.heap_trim_due(), "one refusal is no flood"
    for _ in range(200):
        gate.decide("10.9.9.9:5060", "1001", 0)
    clock.now += QUIET_BEFORE_TRIM_S - 1
    assert not gate.heap_trim_due()
    clock.now += 2
    assert gate.heap_trim_due()
    assert not gate.heap_trim_due()


def test_dialog_and_call_id_of_a_raw_request() -> None:
    invite = "INVITE sip:1001@h SIP/2.0\r\nTo: <sip:1001@h>\r\ni: abc@x\r\n\r\nv=0"
    reinvite = "INVITE sip:1001@h SIP/2.0\r\nt: <sip:1001@h>;tag=9f\r\nCall-ID: abc@x\r\n\r\n"
    assert not sipmsg.has_to_tag(invite)
    assert sipmsg.has_to_tag(reinvite)
    assert sipmsg.call_id(invite) == sipmsg.call_id(reinvite) == "abc@x"
    assert sipmsg.call_id("INVITE sip:1001@h SIP/2.0\r\n\r\n") is None


def test_the_registrars_own_address_has_a_rate_of_its_own() -> None:
    """A flood from the PBX's host but another port must not use up the rate of the PBX's real calls."""
    clock = Clock()
    gate = Admission("1001", [], registrar_port=5060, clock=clock)
    gate.trust(["10.0.0.5"], registrar=True)
    for _ in range(50):
        gate.decide("10.0.0.5:40123", "1001", 0)
    assert gate.decide("10.0.0.5:40123", "1001", 0) == TOO_FAST
    taken = [gate.decide("10.0.0.5:5060", "1001", 0) for _ in range(ADMISSIONS_BURST + 1)]
    assert taken == [None] * ADMISSIONS_BURST + [TOO_FAST]
