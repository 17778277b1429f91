from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from firmware.commands import (
    CancelDial,
    Dial,
    Hangup,
    LiftHandset,
    PressKey,
    ReplaceHandset,
    Reply,
    SetDoNotDisturb,
    SetForward,
)
from firmware.dialplan import DialPlan
from firmware.effects import (
    AnswerCall,
    CancelTimer,
    Emit,
    EndCall,
    HoldCall,
    PlaceCall,
    PlayTone,
    Ring,
    RouteAudio,
    SendDtmf,
    SendReply,
    SetLed,
    ShowText,
    StartTimer,
    TransferCall,
)
from firmware.events import Remote
from firmware.inputs import (
    CallAnswered,
    CallEnded,
    CallHoldChanged,
    CallRinging,
    CallTransferred,
    IncomingCall,
    OutgoingCallStarted,
    RegistrationChanged,
    TimerFired,
)
from firmware.phone import PhoneSettings, PhoneState, initial_effects, initial_state, outputs_of, step
from firmware.phone.state import CALL_MODES, OFF_HOOK_MODES

DECLINE_CODE = 603
T0 = datetime(2025, 3, 1, 9, 0, 0, tzinfo=UTC)
ALICE = Remote("201", "Alice")
CAROL = Remote("1003", "Carol")


@dataclass
class Phone:
    """Drives ``step`` like the daemon does: one input at a time, with a clock the test moves."""

    state: PhoneState = field(default_factory=lambda: initial_state(PhoneSettings(call_id_prefix="c")))
    now: datetime = T0
    effects: list = field(default_factory=list)

    def send(self, inp, after=0.0):
        self.now += timedelta(seconds=after)
        self.state, self.effects = step(self.state, inp, self.now)
        return self.effects

    def of(self, kind):
        return [effect for effect in self.effects if isinstance(effect, kind)]

    def events(self):
        return [effect.event for effect in self.of(Emit)]

    def event_types(self):
        return [event.type for event in self.events()]

    def reply(self):
        (reply,) = self.of(SendReply)
        return reply.reply


def registered_phone(**settings):
    phone = Phone(state=initial_state(PhoneSettings(call_id_prefix="c", **settings)))
    phone.send(RegistrationChanged(True, 200, "OK"))
    return phone


def dial_command(number="5551234", ttl=30.0, request_id="r1", now=T0, **extra):
    return Dial(request_id=request_id, number=number, expires_at=now + timedelta(seconds=ttl), **extra)


# --- reaching every state ---------------------------------------------------------------------------


def in_idle():
    return registered_phone()


def in_dialing():
    phone = registered_phone()
    phone.send(LiftHandset())
    return phone


def in_dialing_with_digits():
    phone = in_dialing()
    phone.send(PressKey("5"))
    return phone


def in_outgoing():
    phone = in_dialing()
    for key in "55#":
        phone.send(PressKey(key))
    phone.send(OutgoingCallStarted("c1", "sip-c1"))
    return phone


def in_call_outbound():
    phone = in_outgoing()
    phone.send(CallAnswered("c1"))
    return phone


def in_ringing():
    phone = registered_phone()
    phone.send(IncomingCall("in1", "sip-in1", ALICE))
    return phone


def in_alerting():
    phone = registered_phone()
    phone.send(dial_command(display="ACME Ltd", crm={"ticket": 7}))
    return phone


def in_alerting_pbx():
    phone = registered_phone()
    phone.send(IncomingCall("in1", "sip-in1", ALICE, auto_answer=True))
    return phone


def in_call_being_transferred():
    phone = in_call_outbound()
    phone.send(CallTransferred("c1", "x1", CAROL))
    return phone


def in_ended():
    phone = in_call_outbound()
    phone.send(CallEnded("c1", 200, "BYE", by_remote=True))
    return phone


FLASH = {"hook_flash_min_s": 0.1, "hook_flash_max_s": 0.7}


def in_call_with_flash():
    phone = registered_phone(**FLASH)
    for inp in (LiftHandset(), PressKey("5"), PressKey("5"), PressKey("#"), CallAnswered("c1")):
        phone.send(inp)
    return phone


def flash(phone):
    phone.send(ReplaceHandset(), after=1)
    return phone.send(LiftHandset(), after=0.3)


def in_hook_flash_pending():
    phone = in_call_with_flash()
    phone.send(ReplaceHandset(), after=1)
    return phone


def in_holding():
    phone = in_call_with_flash()
    flash(phone)
    return phone


def in_call_with_one_held():
    phone = in_holding()
    for key in "66#":
        phone.send(PressKey(key))
    phone.send(CallAnswered("c2"))
    return phone


BOB = Remote("300", "Bob")


def in_call_with_one_waiting():
    phone = registered_phone(call_waiting=True, **FLASH)
    for inp in (LiftHandset(), PressKey("5"), PressKey("5"), PressKey("#"), CallAnswered("c1")):
        phone.send(inp)
    phone.send(IncomingCall("in2", "sip-in2", BOB))
    return phone


def in_ringing_forwarding_on_no_answer():
    phone = registered_phone(own_number="1001")
    phone.send(SetForward("f0", "no_answer", "1003", no_answer_s=1))
    phone.send(IncomingCall("in1", "sip-in1", ALICE))
    phone.now += timedelta(seconds=2)
    return phone


def in_idle_forwarding_always():
    phone = registered_phone(own_number="1001")
    phone.send(SetForward("f0", "always", "1003"))
    phone.send(SetDoNotDisturb(True))
    return phone


def in_choice_for_a_waiting_call():
    phone = registered_phone(call_waiting=True, waiting_choice_s=2.0, **FLASH)
    for inp in (LiftHandset(), PressKey("5"), PressKey("5"), PressKey("#"), CallAnswered("c1")):
        phone.send(inp)
    phone.send(IncomingCall("in2", "sip-in2", BOB))
    flash(phone)
    return phone


STATES = {
    "idle": in_idle,
    "dialing": in_dialing,
    "dialing_digits": in_dialing_with_digits,
    "outgoing": in_outgoing,
    "in_call": in_call_outbound,
    "in_call_transferring": in_call_being_transferred,
    "ringing_in": in_ringing,
    "alerting": in_alerting,
    "alerting_pbx": in_alerting_pbx,
    "ended": in_ended,
    "hook_flash_pending": in_hook_flash_pending,
    "holding": in_holding,
    "in_call_one_held": in_call_with_one_held,
    "in_call_one_waiting": in_call_with_one_waiting,
    "ringing_forward_no_answer": in_ringing_forwarding_on_no_answer,
    "idle_forward_always": in_idle_forwarding_always,
    "waiting_choice": in_choice_for_a_waiting_call,
}

INPUTS = {
    "lift": LiftHandset(),
    "replace": ReplaceHandset(),
    "key5": PressKey("5"),
    "key#": PressKey("#"),
    "dial": dial_command(request_id="r9"),
    "cancel": CancelDial("r1"),
    "cancel_other": CancelDial("zz"),
    "hangup": Hangup("h1"),
    "hangup_other": Hangup("h1", call_id="nope"),
    "dnd": SetDoNotDisturb(True),
    "dnd_remote": SetDoNotDisturb(True, request_id="d1"),
    "forward_always": SetForward("f1", "always", "1003"),
    "forward_busy": SetForward("f2", "busy", "0170123456"),
    "forward_clear": SetForward("f3", "no_answer", None),
    "forward_own": SetForward("f4", "always", "1001"),
    "timer_forward": TimerFired("forward_no_answer"),
    "unregistered": RegistrationChanged(False, 408, "Request Timeout"),
    "incoming": IncomingCall("in2", "sip-in2", Remote("300")),
    "incoming_auto": IncomingCall("in2", "sip-in2", Remote("300"), auto_answer=True),
    "started": OutgoingCallStarted("c1", "sip-c1"),
    "ringing": CallRinging("c1", 180),
    "answered": CallAnswered("c1"),
    "ended_c1": CallEnded("c1", 486, "Busy Here"),
    "ended_in1": CallEnded("in1", 487, "Request Terminated"),
    "ended_unknown": CallEnded("zz", 200),
    "transferred": CallTransferred("c1", "x2", CAROL),
    "replaced": CallTransferred("c1", "x2", CAROL, kind="replaces"),
    "transferred_other": CallTransferred("zz", "x2", CAROL),
    "held": CallHoldChanged("c1", True),
    "x1_started": OutgoingCallStarted("x1", "sip-x1"),
    "x1_ringing": CallRinging("x1", 180),
    "x1_answered": CallAnswered("x1"),
    "x1_ended": CallEnded("x1", 404, "Not Found"),
    "timer_interdigit": TimerFired("interdigit"),
    "timer_click": TimerFired("click_to_call"),
    "timer_unknown": TimerFired("whatever"),
    "timer_flash": TimerFired("hook_flash"),
    "ended_c2": CallEnded("c2", 200, "BYE", by_remote=True),
    "ended_in2": CallEnded("in2", 487, "Request Terminated", by_remote=True),
    "hangup_in2": Hangup("h2", call_id="in2"),
    "key0": PressKey("0"),
    "key1": PressKey("1"),
    "timer_waiting_choice": TimerFired("waiting_choice"),
}


def check_invariants(phone, inp):
    state = phone.state
    assert (state.mode in OFF_HOOK_MODES) == state.off_hook or state.on_hook_at is not None
    has_call = state.mode in CALL_MODES or (
        state.mode == "alerting" and state.click_to_call and state.click_to_call.origin == "pbx"
    )
    assert (state.call is not None) == bool(has_call)
    assert (state.click_to_call is not None) == (state.mode == "alerting")
    assert state.digits == "" or state.mode == "dialing"
    assert state.transfer is None or state.mode == "in_call"
    # privacy: the microphone reaches a call only with the handset up and that call connected
    outputs = outputs_of(state)
    if outputs.microphone:
        assert state.off_hook and state.mode == "in_call" and outputs.audio_call == state.call.call_id
    routes = [i for i, e in enumerate(phone.effects) if isinstance(e, RouteAudio) and not e.microphone]
    ends = [i for i, e in enumerate(phone.effects) if isinstance(e, EndCall)]
    if routes and ends:
        assert routes[0] < ends[0], "the microphone is muted before a call is hung up"
    replies = phone.of(SendReply)
    assert len(replies) == (1 if getattr(inp, "request_id", None) is not None else 0)
    for event in phone.events():
        assert event.ts == phone.now
        if event.type.startswith("call."):
            assert event.call is not None
        if event.type == "call.ended":
            assert event.call.ended_at <= phone.now and event.call.disposition is not None
            assert event.call.hangup_by in ("local", "remote")


@pytest.mark.parametrize("input_name", INPUTS)
@pytest.mark.parametrize("state_name", STATES)
def test_every_input_in_every_state_keeps_the_invariants(state_name, input_name):
    phone = STATES[state_name]()
    inp = INPUTS[input_name]
    phone.send(inp, after=1)
    check_invariants(phone, inp)
    # and the phone can always be brought back to rest
    phone.send(ReplaceHandset(), after=1)
    assert not outputs_of(phone.state).microphone and outputs_of(phone.state).audio_call is None
    phone.send(TimerFired("hook_flash"), after=1)
    assert phone.state.held is None and phone.state.on_hook_at is None
    if phone.state.call is not None:
        phone.send(CallEnded(phone.state.call.call_id, 487), after=1)
    if phone.state.mode == "alerting":
        phone.send(TimerFired("click_to_call"), after=60)
    assert phone.state.mode == "idle"


@pytest.mark.parametrize("state_name", STATES)
def test_step_never_mutates_and_is_deterministic_apart_from_event_ids(state_name):
    phone = STATES[state_name]()
    before = phone.state
    first = step(before, PressKey("1"), T0)
    second = step(before, PressKey("1"), T0)
    assert first[0] == second[0] and phone.state is before
    assert [type(e) for e in first[1]] == [type(e) for e in second[1]]


# --- outgoing ---------------------------------------------------------------------------------------


def test_lifting_gives_dial_tone_and_the_first_digit_stops_it():
    phone = registered_phone()
    phone.send(LiftHandset())
    assert phone.event_types() == ["hook.offhook"]
    assert PlayTone("dial") in phone.effects
    phone.send(PressKey("2"))
    assert PlayTone(None) in phone.effects
    assert ShowText("2") in phone.effects
    assert StartTimer("interdigit", 4.0) in phone.effects


def test_outgoing_answered_call_and_its_record():
    phone = in_dialing()
    for key in "5551234#":
        phone.send(PressKey(key), after=0.5)
    assert phone.of(PlaceCall) == [PlaceCall("c1", "5551234")]
    assert CancelTimer("interdigit") in phone.effects
    started = phone.now
    (outgoing,) = phone.events()
    assert outgoing.type == "call.outgoing" and outgoing.call.origin == "manual"
    assert outgoing.call.direction == "outbound" and outgoing.call.remote == Remote("5551234")

    phone.send(OutgoingCallStarted("c1", "sip-abc"), after=0.1)
    phone.send(CallRinging("c1", 180, early_media=False), after=0.9)
    assert phone.event_types() == ["call.ringing"] and PlayTone("ringback") in phone.effects
    assert phone.events()[0].call.sip_call_id == "sip-abc"
    phone.send(CallRinging("c1", 183, early_media=True), after=1)
    assert phone.event_types() == [] and PlayTone(None) in phone.effects
    phone.send(CallAnswered("c1"), after=2)
    assert phone.event_types() == ["call.answered"] and phone.state.mode == "in_call"
    phone.send(PressKey("1"))
    assert phone.effects == [SendDtmf("c1", "1")]
    phone.send(ReplaceHandset(), after=10)
    assert phone.of(EndCall) == [EndCall("c1", None)]
    assert phone.event_types() == ["hook.onhook", "call.ended"]
    record = phone.events()[1].call
    assert record.disposition == "answered" and record.hangup_by == "local"
    assert record.started_at == started
    assert record.answered_at == started + timedelta(seconds=4)
    assert record.ended_at == started + timedelta(seconds=14)
    assert (record.ring_s, record.talk_s) == (4.0, 10.0)
    assert SetLed("line", "off") in phone.effects and phone.state.mode == "idle"


@pytest.mark.parametrize(
    ("code", "disposition", "tone"),
    [
        (486, "busy", "busy"),
        (600, "busy", "busy"),
        (408, "no_answer", "error"),
        (480, "no_answer", "error"),
        (487, "no_answer", "error"),
        (404, "failed", "error"),
        (503, "failed", "error"),
        (None, "failed", "error"),
    ],
)
def test_outgoing_failures(code, disposition, tone):
    phone = in_outgoing()
    phone.send(CallEnded("c1", code, "reason text"), after=3)
    assert PlayTone(tone) in phone.effects and phone.state.mode == "ended"
    (ended,) = phone.events()
    assert ended.call.disposition == disposition and ended.call.sip_code == code
    assert ended.call.reason == "reason text" and ended.call.hangup_by == "remote"
    assert (ended.call.ring_s, ended.call.talk_s) == (3.0, 0.0)
    phone.send(ReplaceHandset())
    assert PlayTone(None) in phone.effects and phone.event_types() == ["hook.onhook"]


def test_outgoing_cancelled_by_putting_the_handset_down():
    phone = in_outgoing()
    phone.send(ReplaceHandset(), after=2)
    assert phone.of(EndCall) == [EndCall("c1", None)]
    ended = phone.events()[-1].call
    assert ended.disposition == "cancelled" and ended.hangup_by == "local"
    phone.send(CallEnded("c1", 487), after=1)  # the stack's late report is ignored
    assert phone.effects == []


def test_remote_hangup_gives_busy_tone_until_the_handset_is_down():
    phone = in_call_outbound()
    phone.send(CallEnded("c1", 200, "BYE", by_remote=True), after=5)
    assert PlayTone("busy") in phone.effects and phone.state.mode == "ended"
    assert phone.events()[0].call.hangup_by == "remote"
    phone.send(PressKey("5"))
    assert phone.effects == []
    phone.send(ReplaceHandset())
    assert phone.state.mode == "idle" and PlayTone(None) in phone.effects


def test_interdigit_timeout_sends_the_number():
    phone = in_dialing()
    phone.send(PressKey("4"))
    phone.send(PressKey("2"), after=1)
    phone.send(TimerFired("interdigit"), after=4)
    assert phone.of(PlaceCall) == [PlaceCall("c1", "42")]


def test_a_stale_interdigit_timer_is_ignored():
    phone = in_dialing()
    phone.send(PressKey("4"))
    phone.send(PressKey("2"), after=3)
    phone.send(TimerFired("interdigit"), after=1)  # the first digit's timer, posted before the restart
    assert phone.of(PlaceCall) == [] and phone.state.digits == "42"


def test_digit_map_completion_dials_at_once():
    phone = registered_phone(dial_plan=DialPlan("112|[2-8]xxx"))
    phone.send(LiftHandset())
    for key in "112":
        phone.send(PressKey(key))
    assert phone.of(PlaceCall) == [PlaceCall("c1", "112")]


def test_a_number_the_digit_map_refuses_gives_error_tone():
    phone = registered_phone(dial_plan=DialPlan("112|[2-8]xxx"))
    phone.send(LiftHandset())
    phone.send(PressKey("9"))
    assert PlayTone("error") in phone.effects and phone.state.mode == "ended"
    assert phone.of(PlaceCall) == []


def test_hash_is_part_of_the_number_when_the_digit_map_wants_it():
    phone = registered_phone(dial_plan=DialPlan("*21*x.#|[2-8]xxx"))
    phone.send(LiftHandset())
    for key in "*21*5#":
        phone.send(PressKey(key))
    assert phone.of(PlaceCall) == [PlaceCall("c1", "*21*5#")]


def test_max_digits_sends_the_number():
    phone = registered_phone(dial_plan=DialPlan("", max_digits=3))
    phone.send(LiftHandset())
    for key in "123":
        phone.send(PressKey(key))
    assert phone.of(PlaceCall) == [PlaceCall("c1", "123")]


def test_redial_with_hash_as_the_first_key():
    phone = in_outgoing()
    phone.send(ReplaceHandset())
    phone.send(LiftHandset())
    phone.send(PressKey("#"))
    assert phone.of(PlaceCall) == [PlaceCall("c2", "55")]


def test_hash_first_without_a_last_number_is_just_a_digit():
    phone = in_dialing()
    phone.send(PressKey("#"))
    assert phone.of(PlaceCall) == [] and phone.state.digits == "#"


# --- incoming ---------------------------------------------------------------------------------------


def test_incoming_answered_by_lifting():
    phone = registered_phone()
    phone.send(IncomingCall("in1", "sip-in1", ALICE))
    assert Ring("normal") in phone.effects and SetLed("line", "blink") in phone.effects
    assert ShowText("Alice") in phone.effects
    (incoming,) = phone.events()
    assert incoming.type == "call.incoming" and incoming.call.direction == "inbound"
    assert incoming.call.origin == "manual" and incoming.call.sip_call_id == "sip-in1"
    phone.send(LiftHandset(), after=6)
    assert phone.of(AnswerCall) == [AnswerCall("in1")]
    assert phone.event_types() == ["hook.offhook", "call.answered"]
    assert Ring(None) in phone.effects and SetLed("line", "on") in phone.effects
    phone.send(CallAnswered("in1"))
    assert phone.effects == []
    phone.send(CallEnded("in1", 200, "BYE"), after=20)
    record = phone.events()[0].call
    assert record.disposition == "answered" and (record.ring_s, record.talk_s) == (6.0, 20.0)


def test_missed_call_lights_the_message_led_until_the_next_lift():
    phone = in_ringing()
    phone.send(CallEnded("in1", 487, "Request Terminated"), after=15)
    record = phone.events()[0].call
    assert record.disposition == "missed" and record.hangup_by == "remote"
    assert record.ring_s == 15.0 and record.talk_s == 0.0
    assert SetLed("message", "on") in phone.effects and Ring(None) in phone.effects
    assert phone.state.mode == "idle" and phone.state.missed_call
    phone.send(LiftHandset())
    assert SetLed("message", "off") in phone.effects


def test_do_not_disturb_rejects_at_once():
    phone = registered_phone()
    phone.send(SetDoNotDisturb(True))
    phone.send(IncomingCall("in1", "sip-in1", ALICE))
    assert phone.of(EndCall) == [EndCall("in1", 486)]
    assert phone.event_types() == ["call.incoming", "call.ended"]
    record = phone.events()[1].call
    assert record.disposition == "rejected" and record.sip_code == 486 and record.hangup_by == "local"
    assert phone.state.mode == "idle" and phone.of(Ring) == []


@pytest.mark.parametrize("busy_state", [in_call_outbound, in_outgoing, in_ringing, in_alerting, in_ended])
def test_incoming_while_busy_is_rejected_with_486(busy_state):
    phone = busy_state()
    mode = phone.state.mode
    phone.send(IncomingCall("in2", "sip-in2", Remote("300")))
    assert phone.of(EndCall) == [EndCall("in2", 486)]
    assert phone.events()[-1].call.disposition == "rejected" and phone.state.mode == mode


def test_hangup_command_declines_a_ringing_call():
    phone = in_ringing()
    phone.send(Hangup("h1"))
    assert phone.of(EndCall) == [EndCall("in1", 603)]
    assert phone.reply() == Reply.success("h1", status="ended", call_id="in1")
    assert phone.events()[0].call.disposition == "rejected"


def test_hangup_command_ends_the_current_call():
    phone = in_call_outbound()
    phone.send(Hangup("h1", call_id="c1"))
    assert phone.of(EndCall) == [EndCall("c1", None)]
    assert phone.reply().ok and phone.state.mode == "ended"
    assert phone.events()[0].call.hangup_by == "local"


def test_hangup_without_a_call_is_not_found():
    phone = in_dialing()
    phone.send(Hangup("h1"))
    assert phone.reply().error_code == "not_found"


# --- click-to-call ----------------------------------------------------------------------------------


def test_click_to_call_alerts_then_lifting_places_the_call():
    phone = registered_phone()
    phone.send(dial_command(display="ACME Ltd", crm={"ticket": 7}))
    assert phone.reply() == Reply.success("r1", status="accepted")
    assert Ring("click_to_call") in phone.effects and ShowText("5551234 ACME Ltd") in phone.effects
    assert StartTimer("click_to_call", 30.0) in phone.effects
    (alerting,) = phone.events()
    assert alerting.type == "click_to_call.alerting"
    assert alerting.data == {
        "request_id": "r1",
        "number": "5551234",
        "display": "ACME Ltd",
        "crm": {"ticket": 7},
    }
    phone.send(LiftHandset(), after=5)
    assert phone.of(PlaceCall) == [PlaceCall("c1", "5551234")]
    assert CancelTimer("click_to_call") in phone.effects and Ring(None) in phone.effects
    outgoing = phone.events()[-1].call
    assert outgoing.origin == "crm" and outgoing.crm == {"ticket": 7}
    phone.send(CallAnswered("c1"))
    assert phone.events()[0].call.crm == {"ticket": 7}


def test_click_to_call_while_lifted_and_idle_dials_at_once():
    phone = in_dialing()
    phone.send(dial_command(crm={"lead": "x"}))
    assert phone.of(PlaceCall) == [PlaceCall("c1", "5551234")]
    assert phone.reply() == Reply.success("r1", status="dialing", call_id="c1")
    assert phone.events()[0].call.crm == {"lead": "x"}


def test_click_to_call_expires():
    phone = in_alerting()
    phone.send(TimerFired("click_to_call"), after=30)
    assert phone.event_types() == ["click_to_call.expired"]
    assert Ring(None) in phone.effects and phone.state.mode == "idle"


def test_click_to_call_expired_when_lifted_too_late_never_dials():
    phone = in_alerting()
    phone.send(LiftHandset(), after=31)
    assert phone.of(PlaceCall) == [] and "click_to_call.expired" in phone.event_types()
    assert phone.state.mode == "dialing"


def test_click_to_call_cancelled():
    phone = in_alerting()
    phone.send(CancelDial("r1"))
    assert phone.reply() == Reply.success("r1", status="cancelled")
    assert phone.event_types() == ["click_to_call.cancelled"]
    assert CancelTimer("click_to_call") in phone.effects and phone.state.mode == "idle"


def test_cancel_of_an_unknown_request_is_not_found():
    phone = in_alerting()
    phone.send(CancelDial("other"))
    assert phone.reply().error_code == "not_found" and phone.state.mode == "alerting"


@pytest.mark.parametrize(
    ("make_phone", "command", "code"),
    [
        (in_call_outbound, dial_command(), "busy"),
        (in_ringing, dial_command(), "busy"),
        (in_alerting, dial_command(request_id="r2"), "busy"),
        (in_dialing_with_digits, dial_command(), "busy"),
        (in_idle, dial_command(ttl=0), "expired"),
        (in_idle, dial_command(ttl=-5), "expired"),
        (lambda: Phone(), dial_command(), "not_registered"),
        (in_idle, dial_command(number="555-1234"), "invalid_number"),
        (in_idle, dial_command(number=""), "invalid_number"),
        (in_idle, dial_command(number="1" * 33), "invalid_number"),
    ],
)
def test_click_to_call_refusals(make_phone, command, code):
    phone = make_phone()
    before = phone.state
    phone.send(command)
    reply = phone.reply()
    assert not reply.ok and reply.error_code == code and reply.error_message
    assert phone.state == before and phone.of(PlaceCall) == []


def test_pbx_click_to_call_alerts_and_lifting_answers():
    phone = in_alerting_pbx()
    assert Ring("click_to_call") in phone.effects and ShowText("Alice") in phone.effects
    assert phone.events()[0].call.origin == "pbx"
    phone.send(LiftHandset(), after=2)
    assert phone.of(AnswerCall) == [AnswerCall("in1")] and phone.state.mode == "in_call"
    assert phone.events()[-1].call.origin == "pbx"


def test_pbx_click_to_call_while_lifted_and_idle_answers_at_once():
    phone = in_dialing()
    phone.send(IncomingCall("in1", "sip-in1", ALICE, auto_answer=True))
    assert phone.of(AnswerCall) == [AnswerCall("in1")]
    assert phone.event_types() == ["call.incoming", "call.answered"]


def test_pbx_click_to_call_withdrawn_is_missed_without_the_message_led():
    phone = in_alerting_pbx()
    phone.send(CallEnded("in1", 487), after=3)
    assert phone.events()[0].call.disposition == "missed"
    assert not phone.state.missed_call and phone.state.mode == "idle"


# --- registration, start-up -------------------------------------------------------------------------


def test_registration_changes_are_reported_once():
    phone = Phone()
    phone.send(RegistrationChanged(True, 200, "OK"))
    assert phone.events()[0].data == {"registered": True, "code": 200, "reason": "OK"}
    phone.send(RegistrationChanged(True, 200, "OK"))
    assert phone.effects == []
    phone.send(RegistrationChanged(False, 503, "Service Unavailable"))
    assert phone.events()[0].data["registered"] is False and not phone.state.registered


def test_initial_effects_set_every_output():
    effects = initial_effects(initial_state())
    assert Ring(None) in effects and PlayTone(None) in effects and ShowText("") in effects
    assert SetLed("line", "off") in effects and SetLed("message", "off") in effects
    assert PlayTone("dial") in initial_effects(initial_state(off_hook=True))


# --- being transferred --------------------------------------------------------------------------------


def test_blind_transfer_the_new_call_takes_over_when_answered():
    phone = in_call_being_transferred()
    (outgoing,) = phone.events()
    assert outgoing.type == "call.outgoing" and outgoing.call.call_id == "x1"
    assert outgoing.call.remote == CAROL and outgoing.call.transferred_from.call_id == "c1"
    assert phone.of(RouteAudio) == [RouteAudio("x1", microphone=False)]
    assert phone.of(ShowText) == [ShowText("> Carol")]
    phone.send(OutgoingCallStarted("x1", "sip-x1"))
    phone.send(CallRinging("x1", 180))
    assert phone.event_types() == ["call.ringing"] and phone.of(PlayTone) == [PlayTone("ringback")]
    phone.send(CallAnswered("x1"), after=2)
    assert phone.of(EndCall) == [EndCall("c1")]
    ended, answered = phone.events()
    assert ended.type == "call.ended" and ended.call.call_id == "c1"
    assert ended.call.disposition == "answered" and ended.call.transferred_to.call_id == "x1"
    assert ended.call.transferred_to.remote == CAROL
    assert answered.type == "call.answered" and answered.call.sip_call_id == "sip-x1"
    assert phone.state.mode == "in_call" and phone.state.call.call_id == "x1"
    assert phone.of(RouteAudio) == [RouteAudio("x1", microphone=True)]
    assert phone.of(ShowText) == [ShowText("Carol")] and phone.of(PlayTone) == [PlayTone(None)]
    phone.send(CallEnded("c1", 200, "BYE"))  # the referrer's BYE comes after: nothing more happens
    assert phone.effects == [] and phone.state.call.call_id == "x1"
    phone.send(ReplaceHandset(), after=5)
    assert phone.effects[0] == RouteAudio(None, microphone=False)
    assert EndCall("x1") in phone.effects
    (ended,) = [e for e in phone.events() if e.type == "call.ended"]
    assert ended.call.call_id == "x1" and ended.call.transferred_from.call_id == "c1"


def test_a_failed_transfer_leaves_the_call_as_it_was():
    phone = in_call_being_transferred()
    phone.send(CallEnded("x1", 404, "Not Found"))
    (ended,) = phone.events()
    assert ended.call.call_id == "x1" and ended.call.disposition == "failed" and ended.call.sip_code == 404
    assert phone.state.mode == "in_call" and phone.state.call.call_id == "c1" and phone.state.transfer is None
    assert phone.of(RouteAudio) == [RouteAudio("c1", microphone=True)]
    assert phone.of(EndCall) == []


def test_the_referrer_hanging_up_first_leaves_the_transfer_call_ringing():
    phone = in_call_being_transferred()
    phone.send(CallRinging("x1", 180))
    phone.send(CallEnded("c1", 200, "BYE"))
    (ended,) = phone.events()
    assert ended.call.call_id == "c1" and ended.call.transferred_to.call_id == "x1"
    assert phone.state.mode == "outgoing" and phone.state.call.call_id == "x1"
    phone.send(CallAnswered("x1"))
    assert phone.event_types() == ["call.answered"] and phone.state.mode == "in_call"


def test_hook_down_during_a_transfer_ends_both_calls_muted_first():
    phone = in_call_being_transferred()
    phone.send(ReplaceHandset())
    assert phone.effects[0] == RouteAudio(None, microphone=False)
    assert set(phone.of(EndCall)) == {EndCall("c1"), EndCall("x1")}
    dispositions = {e.call.call_id: e.call.disposition for e in phone.events() if e.type == "call.ended"}
    assert dispositions == {"c1": "answered", "x1": "cancelled"}


def test_an_invite_with_replaces_takes_the_place_of_the_call():
    phone = in_call_outbound()
    phone.send(CallTransferred("c1", "x1", CAROL, kind="replaces"))
    assert phone.event_types() == ["call.ended", "call.incoming", "call.answered"]
    ended, incoming, _ = phone.events()
    assert ended.call.transferred_to.call_id == "x1" and incoming.call.direction == "inbound"
    assert phone.state.call.call_id == "x1" and phone.state.mode == "in_call"
    assert phone.of(RouteAudio) == [RouteAudio("x1", microphone=True)]


@pytest.mark.parametrize("state_name", ["idle", "ringing_in", "ended", "outgoing"])
def test_a_transfer_of_no_call_we_talk_on_is_hung_up(state_name):
    phone = STATES[state_name]()
    phone.send(CallTransferred("c1", "x9", CAROL))
    assert phone.of(EndCall) == [EndCall("x9")] and phone.state.transfer is None


def test_the_display_says_when_the_far_end_holds_us():
    phone = in_call_outbound()
    phone.send(CallHoldChanged("c1", True))
    assert phone.of(ShowText) == [ShowText("On hold: 55")] and phone.of(SetLed) == [SetLed("line", "blink")]
    assert phone.of(RouteAudio) == []  # still our call: the microphone stays with it
    phone.send(CallHoldChanged("c1", False))
    assert phone.of(ShowText) == [ShowText("55")] and phone.of(SetLed) == [SetLed("line", "on")]
    phone.send(CallHoldChanged("c1", True))
    phone.send(CallEnded("c1", 200, "BYE"))
    assert phone.state.held_by_remote is False


# --- hook flash: hold and back ----------------------------------------------------------------------


def test_hook_flash_holds_the_call_and_gives_dial_tone():
    phone = in_call_with_flash()
    phone.send(ReplaceHandset(), after=1)
    assert phone.of(StartTimer) == [StartTimer("hook_flash", 0.7)]
    assert RouteAudio(None, False) in phone.effects, "the microphone is muted while the handset is down"
    assert not phone.of(EndCall) and not phone.events()
    phone.send(LiftHandset(), after=0.3)
    assert phone.state.mode == "dialing" and phone.state.held.call_id == "c1" and phone.state.call is None
    assert HoldCall("c1") in phone.effects and PlayTone("dial") in phone.effects
    assert CancelTimer("hook_flash") in phone.effects
    assert ShowText("Held: 55") in phone.effects and SetLed("line", "blink") in phone.effects
    assert not phone.events()


def test_a_second_flash_returns_to_the_held_call():
    phone = in_holding()
    flash(phone)
    assert phone.state.mode == "in_call" and phone.state.call.call_id == "c1" and phone.state.held is None
    assert HoldCall("c1", hold=False) in phone.effects and RouteAudio("c1", True) in phone.effects
    assert ShowText("55") in phone.effects and SetLed("line", "on") in phone.effects


def test_flash_with_a_call_held_swaps_the_two():
    phone = in_call_with_one_held()
    assert outputs_of(phone.state).audio_call == "c2" and outputs_of(phone.state).line_led == "blink"
    flash(phone)
    assert HoldCall("c2") in phone.effects and HoldCall("c1", hold=False) in phone.effects
    assert not phone.of(EndCall) and not phone.events()
    assert phone.state.call.call_id == "c1" and phone.state.held.call_id == "c2"
    assert RouteAudio("c1", True) in phone.effects
    flash(phone)
    assert phone.state.call.call_id == "c2" and phone.state.held.call_id == "c1"


def test_flash_while_the_second_call_rings_cancels_it_and_returns_to_the_held_one():
    phone = in_holding()
    for key in "66#":
        phone.send(PressKey(key))
    flash(phone)
    assert EndCall("c2") in phone.effects and HoldCall("c1", hold=False) in phone.effects
    (ended,) = phone.events()
    assert ended.call.call_id == "c2" and ended.call.disposition == "cancelled"
    assert phone.state.call.call_id == "c1" and phone.state.mode == "in_call"


def test_a_bounce_shorter_than_a_flash_changes_nothing():
    phone = in_call_with_flash()
    phone.send(ReplaceHandset(), after=1)
    phone.send(LiftHandset(), after=0.05)
    assert phone.state.mode == "in_call" and phone.state.held is None
    assert RouteAudio("c1", True) in phone.effects and not phone.of(HoldCall)


def test_hanging_up_with_a_call_held_and_a_second_answered_transfers_attended():
    phone = in_call_with_one_held()
    phone.send(ReplaceHandset(), after=1)
    down_at = phone.now
    phone.send(TimerFired("hook_flash"), after=0.7)
    assert phone.of(TransferCall) == [TransferCall("c1", replaces="c2")] and not phone.of(EndCall)
    assert phone.event_types() == ["hook.onhook", "call.ended", "call.ended"]
    held, other = (event.call for event in phone.events()[1:])
    assert (
        held.call_id == "c1"
        and held.transferred_to.call_id == "c2"
        and held.transferred_to.remote.number == "66"
    )
    assert other.transferred_from.call_id == "c1" and other.disposition == "answered"
    assert all(event.call.ended_at == down_at for event in phone.events()[1:]), "talk time ends at hook-down"
    assert phone.state.mode == "idle" and phone.state.held is None


def test_hanging_up_with_a_call_held_and_a_second_ringing_transfers_blind():
    phone = in_holding()
    for key in "66#":
        phone.send(PressKey(key))
    phone.send(ReplaceHandset(), after=1)
    phone.send(TimerFired("hook_flash"), after=0.7)
    assert phone.of(EndCall) == [EndCall("c2")]
    assert phone.of(TransferCall) == [TransferCall("c1", number="66")]
    held, other = (event.call for event in phone.events()[1:])
    assert held.transferred_to.remote.number == "66" and other.disposition == "cancelled"
    assert phone.state.mode == "idle"


def test_hanging_up_with_only_a_call_held_ends_it():
    phone = in_holding()
    phone.send(ReplaceHandset(), after=1)
    phone.send(TimerFired("hook_flash"), after=0.7)
    assert phone.of(EndCall) == [EndCall("c1")] and not phone.of(TransferCall)


def test_lifted_after_the_window_before_the_timer_is_a_hang_up_then_a_new_line():
    phone = in_call_with_flash()
    phone.send(ReplaceHandset(), after=1)
    phone.send(LiftHandset(), after=2)
    assert EndCall("c1") in phone.effects and phone.state.mode == "dialing"
    assert phone.event_types() == ["hook.onhook", "call.ended", "hook.offhook"]


def test_the_held_party_hanging_up_leaves_the_line_dialing():
    phone = in_holding()
    phone.send(CallEnded("c1", 200, "BYE", by_remote=True))
    assert phone.state.mode == "dialing" and phone.state.held is None
    assert phone.event_types() == ["call.ended"] and ShowText("") in phone.effects


def test_without_a_flash_window_the_on_hook_hangs_up_at_once():
    phone = in_call_outbound()
    phone.send(ReplaceHandset())
    assert EndCall("c1") in phone.effects and phone.state.mode == "idle"


# --- call waiting -----------------------------------------------------------------------------------


def test_a_call_during_a_call_waits_with_a_tone_and_the_caller_shown():
    phone = in_call_with_one_waiting()
    assert phone.event_types() == ["call.incoming"] and not phone.of(EndCall)
    assert PlayTone("call_waiting") in phone.effects and ShowText("Waiting: Bob") in phone.effects
    assert SetLed("line", "blink") in phone.effects and not phone.of(Ring)
    assert outputs_of(phone.state).audio_call == "c1" and outputs_of(phone.state).microphone


def test_flash_answers_the_waiting_call_and_holds_the_other_then_swaps():
    phone = in_call_with_one_waiting()
    flash(phone)
    assert [type(e) for e in phone.effects[:4]] == [CancelTimer, HoldCall, AnswerCall, Emit]
    assert HoldCall("c1") in phone.effects and AnswerCall("in2") in phone.effects
    assert phone.event_types() == ["call.answered"] and phone.events()[0].call.call_id == "in2"
    assert phone.state.call.call_id == "in2" and phone.state.held.call_id == "c1"
    assert RouteAudio("in2", True) in phone.effects and outputs_of(phone.state).tone is None
    flash(phone)
    assert phone.state.call.call_id == "c1" and phone.state.held.call_id == "in2"


def test_the_waiting_caller_giving_up_is_a_missed_call():
    phone = in_call_with_one_waiting()
    phone.send(CallEnded("in2", 487, "Request Terminated", by_remote=True))
    (ended,) = phone.events()
    assert ended.call.disposition == "missed" and phone.state.waiting is None
    assert PlayTone(None) in phone.effects and SetLed("message", "on") in phone.effects
    assert phone.state.mode == "in_call" and ShowText("55") in phone.effects


def test_the_crm_declines_the_waiting_call():
    phone = in_call_with_one_waiting()
    phone.send(Hangup("h2", call_id="in2"))
    assert EndCall("in2", DECLINE_CODE) in phone.effects and phone.reply().ok
    (ended,) = phone.events()
    assert ended.call.disposition == "rejected" and phone.state.call.call_id == "c1"


def test_hanging_up_after_taking_a_waiting_call_ends_both_no_transfer():
    phone = in_call_with_one_waiting()
    flash(phone)
    flash(phone)  # swapped back to the first call
    phone.send(ReplaceHandset(), after=1)
    phone.send(TimerFired("hook_flash"), after=1)
    assert {e.call_id for e in phone.of(EndCall)} == {"c1", "in2"} and not phone.of(TransferCall)


def test_hanging_up_with_a_call_waiting_rings_it():
    phone = in_call_with_one_waiting()
    phone.send(ReplaceHandset(), after=1)
    phone.send(TimerFired("hook_flash"), after=1)
    assert EndCall("c1") in phone.effects and phone.state.mode == "ringing_in"
    assert phone.state.call.call_id == "in2" and Ring("normal") in phone.effects
    phone.send(LiftHandset())
    assert AnswerCall("in2") in phone.effects


def test_the_other_call_ending_leaves_the_waiting_one_to_a_flash():
    phone = in_call_with_one_waiting()
    phone.send(CallEnded("c1", 200, "BYE", by_remote=True))
    assert phone.state.mode == "ended" and phone.state.waiting.call_id == "in2"
    flash(phone)
    assert AnswerCall("in2") in phone.effects and not phone.of(HoldCall)
    assert phone.state.mode == "in_call" and phone.state.held is None


def test_flash_with_a_call_waiting_asks_for_a_key_and_the_call_goes_on():
    phone = in_choice_for_a_waiting_call()
    assert phone.of(StartTimer) == [StartTimer("waiting_choice", 2.0)] and not phone.of(HoldCall)
    assert ShowText("0 reject 1 end 2 hold") in phone.effects and outputs_of(phone.state).tone is None
    assert outputs_of(phone.state).audio_call == "c1" and outputs_of(phone.state).microphone
    phone.send(PressKey("5"))  # not a choice, and not a DTMF digit to the call either
    assert phone.effects == [] and phone.state.waiting_choice_at is not None


def test_flash_then_0_declines_the_waiting_call_with_603():
    phone = in_choice_for_a_waiting_call()
    phone.send(PressKey("0"), after=0.5)
    assert phone.effects[0] == CancelTimer("waiting_choice") and EndCall("in2", DECLINE_CODE) in phone.effects
    (ended,) = phone.events()
    assert ended.type == "call.ended" and ended.call.call_id == "in2"
    assert ended.call.disposition == "rejected" and ended.call.hangup_by == "local"
    assert ended.call.sip_code == DECLINE_CODE
    assert phone.state.call.call_id == "c1" and phone.state.waiting is None and not phone.of(HoldCall)
    assert ShowText("55") in phone.effects and SetLed("line", "on") in phone.effects
    phone.send(PressKey("0"))  # the call we talk on gets digits again
    assert phone.effects == [SendDtmf("c1", "0")]


def test_flash_then_1_ends_the_call_and_answers_the_waiting_one():
    phone = in_choice_for_a_waiting_call()
    phone.send(PressKey("1"), after=0.5)
    assert EndCall("c1") in phone.effects and AnswerCall("in2") in phone.effects and not phone.of(HoldCall)
    assert phone.event_types() == ["call.ended", "call.answered"]
    assert phone.events()[0].call.disposition == "answered" and phone.state.held is None
    assert phone.state.call.call_id == "in2" and RouteAudio("in2", True) in phone.effects


@pytest.mark.parametrize("choose", [PressKey("2"), TimerFired("waiting_choice")])
def test_flash_then_2_or_no_key_holds_the_call_and_answers_the_waiting_one(choose):
    phone = in_choice_for_a_waiting_call()
    phone.send(choose, after=2.0)
    assert HoldCall("c1") in phone.effects and AnswerCall("in2") in phone.effects
    assert phone.state.call.call_id == "in2" and phone.state.held.call_id == "c1"
    assert phone.state.waiting_choice_at is None


def test_a_stale_waiting_choice_timer_is_ignored():
    phone = in_choice_for_a_waiting_call()
    phone.send(TimerFired("waiting_choice"), after=0.5)
    assert phone.effects == [] and phone.state.waiting is not None


def test_the_waiting_caller_giving_up_during_the_choice_ends_it():
    phone = in_choice_for_a_waiting_call()
    phone.send(CallEnded("in2", 487, "Request Terminated", by_remote=True))
    assert CancelTimer("waiting_choice") in phone.effects and phone.state.waiting_choice_at is None
    phone.send(PressKey("0"))
    assert phone.effects == [SendDtmf("c1", "0")]


@pytest.mark.parametrize("settings", [{"call_waiting": False}, {"call_waiting": True, "hook_flash_max_s": 0}])
def test_without_call_waiting_a_second_call_gets_486(settings):
    phone = registered_phone(**settings)
    for inp in (LiftHandset(), PressKey("5"), PressKey("#"), CallAnswered("c1")):
        phone.send(inp)
    phone.send(IncomingCall("in2", "sip-in2", BOB))
    if settings["call_waiting"]:  # waiting works without a flash window too (the CRM can decline it)
        assert phone.state.waiting is not None
    else:
        assert EndCall("in2", 486) in phone.effects and phone.state.waiting is None
