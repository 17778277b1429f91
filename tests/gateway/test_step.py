"""The step table: which CRM requests each event causes, redeliveries and skipped calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.calls import CallFact, CallState, Desk
from gateway.step import step

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ANNA = Desk("desk-anna", "1001", "7")
PLAIN = Desk("desk-acct", "1003", "")


def call(**changes: object) -> CallState:
    base = CallState(
        call_id="c-1",
        device_id="desk-anna",
        phase="ringing",
        direction="inbound",
        origin="pbx",
        remote_number="+4930123",
        started_at=T0,
    )
    return base.advanced(**changes)


def run(facts: list[tuple[str, CallState]], desk: Desk | None = ANNA, internal: bool = False):  # type: ignore[no-untyped-def]
    state, kinds = None, []
    for fact_type, reported in facts:
        state, requests = step(state, CallFact(fact_type, reported, desk, internal))  # type: ignore[arg-type]
        kinds.append([r.kind for r in requests])
    return state, kinds


ENDED = call(
    answered_at=T0 + timedelta(seconds=3), ended_at=T0 + timedelta(seconds=10), disposition="answered"
)


def test_incoming_answered_registers_looks_up_answers_and_finishes_once() -> None:
    state, kinds = run([("call.incoming", call()), ("call.answered", call()), ("call.ended", ENDED)])
    assert kinds == [["register", "lookup_caller"], ["answered"], ["finish"]]
    assert state is not None and state.phase == "ended" and state.talk_s == 7.0 and state.crm_user == "7"


def test_redelivered_and_late_events_cause_nothing() -> None:
    _, kinds = run(
        [
            ("call.incoming", call()),
            ("call.incoming", call()),
            ("call.ended", ENDED),
            ("call.answered", call()),
            ("call.ended", ENDED),
        ]
    )
    assert kinds == [["register", "lookup_caller"], [], ["finish"], [], []]


def test_first_event_seen_is_the_end_still_registers_before_finishing() -> None:
    _, kinds = run([("call.ended", ENDED)])
    assert kinds == [["register", "finish"]]


def test_crm_started_call_is_only_finished() -> None:
    c = call(direction="outbound", origin="crm", crm={"b24": {"call_id": "externalCall.1"}})
    _, kinds = run([("call.outgoing", c), ("call.ringing", c), ("call.answered", c), ("call.ended", c)])
    assert kinds == [[], [], ["answered"], ["finish"]]


@pytest.mark.parametrize(("desk", "internal", "why"), [(PLAIN, False, "desk without a CRM user"),
                                                      (None, False, "desk not in the inventory"),
                                                      (ANNA, True, "internal call")])  # fmt: skip
def test_calls_the_crm_must_not_see_are_recorded_as_skipped(desk, internal, why) -> None:  # type: ignore[no-untyped-def]
    state, kinds = run([("call.incoming", call()), ("call.ended", ENDED)], desk=desk, internal=internal)
    assert kinds == [[], []]
    assert state is not None and state.skipped == why and state.phase == "ended"


def test_refused_click_to_call_finishes_the_crm_card_even_without_a_desk() -> None:
    c = call(phase="ended", direction="outbound", origin="crm", ended_at=T0, disposition="failed")
    state, kinds = run([("dial.refused", c)], desk=None)
    assert kinds == [["finish"]]
    assert state is not None and state.skipped is None
