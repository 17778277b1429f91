"""The forwarding and do-not-disturb situations of ``step`` (firmware/phone/forwarding.py's table)."""

from dataclasses import replace
from datetime import timedelta

import pytest

from firmware.commands import LiftHandset, PressKey, Reply, SetDoNotDisturb, SetForward
from firmware.effects import EndCall, RedirectCall, Ring, SendReply, ShowText, StartTimer
from firmware.events import Forwarded
from firmware.inputs import CallAnswered, CallEnded, IncomingCall, OutgoingCallStarted, TimerFired
from firmware.phone import outputs_of
from firmware.phone.forwarding import FORWARD_NO_ANSWER_TIMER
from tests.firmware.test_phone import ALICE, in_call_outbound, in_ended, in_ringing, registered_phone

INCOMING = IncomingCall("in1", "sip-in1", ALICE)
PBX_CLICK = IncomingCall("in1", "sip-in1", ALICE, auto_answer=True)


def forwarding(mode, number="1003", phone=None, **more):
    phone = phone or registered_phone(own_number="1001")
    phone.send(SetForward("f1", mode, number, **more))
    assert phone.reply().ok, phone.reply()
    return phone


def assert_forwarded(phone, number, reason, events=("call.incoming", "call.ended")):
    assert phone.of(RedirectCall) == [RedirectCall("in1", number, reason)]
    assert phone.of(EndCall) == []
    assert phone.event_types() == list(events)
    record = phone.events()[-1].call
    assert record.disposition == "forwarded" and record.forwarded_to == Forwarded(number, reason)
    assert record.sip_code == 302 and record.hangup_by == "local" and record.talk_s == 0.0


def test_forward_always_redirects_at_once_without_ringing():
    phone = forwarding("always")
    phone.send(INCOMING)
    assert_forwarded(phone, "1003", "unconditional")
    assert phone.state.mode == "idle" and phone.of(Ring) == [] and not phone.state.missed_call


def test_forward_always_comes_before_do_not_disturb():
    phone = forwarding("always", "0170123456")
    phone.send(SetDoNotDisturb(True))
    phone.send(INCOMING)
    assert_forwarded(phone, "0170123456", "unconditional")


def test_do_not_disturb_refuses_with_486_and_says_why():
    phone = forwarding("busy")
    phone.send(SetDoNotDisturb(True, request_id="d1"))
    assert phone.reply().result["dnd"] is True
    phone.send(INCOMING)
    assert phone.of(EndCall) == [EndCall("in1", 486)] and phone.of(RedirectCall) == []
    record = phone.events()[-1].call
    assert (record.disposition, record.sip_code, record.reason) == ("rejected", 486, "Do Not Disturb")


@pytest.mark.parametrize("busy", [in_call_outbound, in_ringing, in_ended])
def test_forward_on_busy_redirects_the_call_the_line_cannot_take(busy):
    phone = forwarding("busy", phone=busy())
    mode = phone.state.mode
    phone.send(IncomingCall("in2", "sip-in2", ALICE))
    assert phone.of(RedirectCall) == [RedirectCall("in2", "1003", "user-busy")]
    assert phone.events()[-1].call.forwarded_to == Forwarded("1003", "user-busy")
    assert phone.state.mode == mode


def test_forward_on_busy_leaves_an_idle_phone_ringing():
    phone = forwarding("busy")
    phone.send(INCOMING)
    assert phone.state.mode == "ringing_in" and phone.of(RedirectCall) == []


def test_with_call_waiting_a_second_call_waits_instead_of_being_forwarded_on_busy():
    phone = in_call_outbound()
    phone.state = replace(phone.state, settings=replace(phone.state.settings, call_waiting=True))
    forwarding("busy", phone=phone)
    phone.send(IncomingCall("in2", "sip-in2", ALICE))
    assert phone.state.waiting is not None and phone.of(RedirectCall) == []
    phone.send(IncomingCall("in3", "sip-in3", ALICE))  # a third call: the line cannot take it
    assert phone.of(RedirectCall) == [RedirectCall("in3", "1003", "user-busy")]


def test_forward_on_no_answer_rings_then_redirects_when_the_time_is_up():
    phone = forwarding("no_answer", no_answer_s=15)
    phone.send(INCOMING)
    assert phone.state.mode == "ringing_in" and StartTimer(FORWARD_NO_ANSWER_TIMER, 15) in phone.effects
    phone.send(TimerFired(FORWARD_NO_ANSWER_TIMER), after=15)
    assert_forwarded(phone, "1003", "no-answer", events=("call.ended",))
    assert phone.state.mode == "idle" and phone.state.call is None and not phone.state.missed_call
    assert Ring(None) in phone.effects
    assert phone.events()[-1].call.ring_s == 15.0


def test_a_stale_no_answer_timer_changes_nothing():
    phone = forwarding("no_answer", no_answer_s=15)
    phone.send(INCOMING)
    phone.send(TimerFired(FORWARD_NO_ANSWER_TIMER), after=5)  # an earlier call's timer
    assert phone.effects == [] and phone.state.mode == "ringing_in"
    phone.send(LiftHandset())
    phone.send(TimerFired(FORWARD_NO_ANSWER_TIMER), after=15)  # answered meanwhile
    assert phone.effects == [] and phone.state.mode == "in_call"


def test_the_caller_giving_up_before_the_no_answer_time_is_a_missed_call():
    phone = forwarding("no_answer", no_answer_s=15)
    phone.send(INCOMING)
    phone.send(CallEnded("in1", 487, "Request Terminated"), after=3)
    assert phone.events()[-1].call.disposition == "missed" and phone.state.missed_call
    phone.send(TimerFired(FORWARD_NO_ANSWER_TIMER), after=12)
    assert phone.effects == []


def test_a_pbx_click_to_call_is_never_forwarded_nor_refused_for_dnd():
    phone = forwarding("always")
    phone.send(SetDoNotDisturb(True))
    phone.send(PBX_CLICK)
    assert phone.state.mode == "alerting" and phone.of(RedirectCall) == [] and phone.of(EndCall) == []


def test_set_forward_replies_with_every_setting_and_clear_restores_ringing():
    phone = forwarding("always")
    assert phone.reply() == Reply.success(
        "f1",
        status="set",
        dnd=False,
        forward={"always": "1003", "busy": None, "no_answer": None, "no_answer_s": 20},
    )
    phone.send(SetForward("f2", "always", None))
    assert phone.reply().result["forward"]["always"] is None
    phone.send(INCOMING)
    assert phone.state.mode == "ringing_in" and Ring("normal") in phone.effects


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (SetForward("f9", "always", "1001"), "invalid_number"),  # our own extension: a loop
        (SetForward("f9", "busy", "sip:x@example.com"), "invalid_number"),
        (SetForward("f9", "no_answer", "1003", no_answer_s=0), "invalid_payload"),
        (SetForward("f9", "no_answer", "1003", no_answer_s=121), "invalid_payload"),
    ],
)
def test_a_bad_forward_is_refused_and_changes_nothing(command, code):
    phone = forwarding("busy", "0170123456")
    before = phone.state
    phone.send(command)
    assert phone.state == before
    (reply,) = phone.of(SendReply)
    assert not reply.reply.ok and reply.reply.error_code == code and reply.reply.error_message


def test_the_display_at_rest_shows_forward_always_and_dnd():
    phone = forwarding("always")
    assert ShowText("Fwd -> 1003") in phone.effects
    phone.send(SetDoNotDisturb(True))
    assert outputs_of(phone.state).text == "Fwd -> 1003 DND"
    phone.send(SetForward("f2", "always", None))
    assert ShowText("DND") in phone.effects
    phone.send(LiftHandset())
    assert outputs_of(phone.state).text == ""  # dialing shows the digits
    phone.send(PressKey("5"))
    assert outputs_of(phone.state).text == "5"


def test_a_forwarded_call_never_reaches_the_sip_stack_as_answered():
    phone = forwarding("always")
    phone.send(INCOMING)
    for late in (CallAnswered("in1"), CallEnded("in1", 302, "Forwarded"), OutgoingCallStarted("in1", "x")):
        phone.send(late, after=timedelta(seconds=0.1).total_seconds())
        assert phone.effects == [] and phone.state.mode == "idle"
