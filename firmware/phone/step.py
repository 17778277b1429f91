"""The transition function: ``step(state, input, now) -> (state, effects)``. Pure: no I/O, no clock."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from firmware.commands import (
    CancelDial,
    Dial,
    Hangup,
    LiftHandset,
    Origin,
    PressKey,
    ReplaceHandset,
    Reply,
    SetDoNotDisturb,
    SetForward,
    ShowCaller,
)
from firmware.effects import (
    AnswerCall,
    CancelTimer,
    Effect,
    EndCall,
    HoldCall,
    PlaceCall,
    RouteAudio,
    SendDtmf,
    SendReply,
    StartTimer,
    TransferCall,
)
from firmware.events import CallRecord, Transfer
from firmware.inputs import (
    CallAnswered,
    CallEnded,
    CallHoldChanged,
    CallRinging,
    CallTransferred,
    IncomingCall,
    Input,
    OutgoingCallStarted,
    RegistrationChanged,
    TimerFired,
)
from firmware.phone import forwarding, records
from firmware.phone.outputs import output_effects, outputs_of
from firmware.phone.state import ClickToCall, PhoneState

INTERDIGIT_TIMER = "interdigit"
CLICK_TO_CALL_TIMER = "click_to_call"
HOOK_FLASH_TIMER = "hook_flash"
WAITING_CHOICE_TIMER = "waiting_choice"
DECLINE = 603
VALID_NUMBER = re.compile(r"[0-9+*#]{1,32}")
# A timer firing this much before its deadline is a stale one (restarted since it was posted).
TIMER_SLACK = timedelta(milliseconds=250)

Result = tuple[PhoneState, list[Effect]]


def step(state: PhoneState, inp: Input, now: datetime) -> Result:
    """Handle one input at ``now``; return the new state and the effects to carry out, in order."""
    new_state, effects = _handle(state, inp, now)
    outputs = output_effects(outputs_of(state), outputs_of(new_state))
    # Muting comes before everything else: a hang-up takes a moment to leave the phone.
    mute = [e for e in outputs if isinstance(e, RouteAudio) and not e.microphone]
    return new_state, mute + effects + [e for e in outputs if e not in mute]


def _handle(state: PhoneState, inp: Input, now: datetime) -> Result:
    match inp:
        case LiftHandset():
            return _lift(state, now)
        case ReplaceHandset():
            return _replace(state, now)
        case PressKey(key=key):
            return _press(state, key, now)
        case Dial():
            return _dial(state, inp, now)
        case CancelDial(request_id=request_id):
            return _cancel_dial(state, request_id, now)
        case Hangup():
            return _hangup(state, inp, now)
        case ShowCaller():
            return _show_caller(state, inp)
        case SetDoNotDisturb():
            return forwarding.set_dnd(state, inp)
        case SetForward():
            return forwarding.set_forward(state, inp)
        case RegistrationChanged():
            return _registration(state, inp, now)
        case IncomingCall():
            return _incoming(state, inp, now)
        case OutgoingCallStarted(call_id=call_id, sip_call_id=sip_call_id):
            if state.mode == "outgoing" and _is_current(state, call_id):
                return _with_call(state, sip_call_id=sip_call_id), []
            if _is_transfer(state, call_id):
                return replace(state, transfer=replace(_transfer(state), sip_call_id=sip_call_id)), []
            return state, []
        case CallRinging():
            return _ringing(state, inp, now)
        case CallAnswered(call_id=call_id):
            if state.mode == "outgoing" and _is_current(state, call_id):
                return _answered(state, now)
            if _is_transfer(state, call_id):
                return _transfer_answered(state, now)
            return state, []
        case CallEnded() if _is_transfer(state, inp.call_id):
            return _transfer_failed(state, inp, now)
        case CallEnded() if _is_held(state, inp.call_id):
            return _held_call_ended(state, inp, now)
        case CallEnded() if _is_waiting(state, inp.call_id):
            return _waiting_call_ended(state, inp, now)
        case CallEnded():
            return _ended(state, inp, now)
        case CallTransferred():
            return _transferred(state, inp, now)
        case CallHoldChanged(call_id=call_id, held=held):
            if state.mode == "in_call" and _is_current(state, call_id):
                return replace(state, held_by_remote=held), []
            return state, []
        case TimerFired(name=name):
            return _timer(state, name, now)
    raise TypeError(f"not a phone input: {inp!r}")


# --- helpers ----------------------------------------------------------------------------------------


def _is_current(state: PhoneState, call_id: str) -> bool:
    return state.call is not None and state.call.call_id == call_id


def _is_transfer(state: PhoneState, call_id: str) -> bool:
    return state.transfer is not None and state.transfer.call_id == call_id


def _is_held(state: PhoneState, call_id: str) -> bool:
    return state.held is not None and state.held.call_id == call_id


def _is_waiting(state: PhoneState, call_id: str) -> bool:
    return state.waiting is not None and state.waiting.call_id == call_id


def _transfer(state: PhoneState) -> CallRecord:
    assert state.transfer is not None
    return state.transfer


def _with_call(state: PhoneState, **changes: Any) -> PhoneState:
    assert state.call is not None
    return replace(state, call=replace(state.call, **changes))


def _current(state: PhoneState) -> CallRecord:
    assert state.call is not None
    return state.call


def _back_to_rest(state: PhoneState, **changes: Any) -> PhoneState:
    """No call, nothing alerting: ``idle`` with the handset down, ``ended`` (with a tone) with it up."""
    rest = {
        "mode": "ended" if state.off_hook else "idle",
        "call": None,
        "transfer": None,
        "consultation": False,
        "held_by_remote": False,
        "click_to_call": None,
        "digits": "",
        "remote_ringing": False,
        "ringback": False,
        "waiting_choice_at": None,
    }
    return replace(state, **(rest | changes))


def _place_call(
    state: PhoneState, number: str, origin: Origin, crm: dict[str, Any] | None, now: datetime
) -> Result:
    effects: list[Effect] = []
    if state.mode == "dialing" and state.digits:
        effects.append(CancelTimer(INTERDIGIT_TIMER))
    seq = state.calls_placed + 1
    call_id = f"{state.settings.call_id_prefix}{seq}"
    record = records.outbound_record(call_id, number, origin, crm, now)
    new_state = replace(
        state,
        mode="outgoing",
        calls_placed=seq,
        call=record,
        digits="",
        last_number=number,
        click_to_call=None,
        remote_ringing=False,
        ringback=False,
        consultation=state.held is not None,
    )
    effects += [PlaceCall(call_id, number), records.call_event("call.outgoing", record, now)]
    return new_state, effects


def _answer(state: PhoneState, now: datetime) -> Result:
    """Answer the inbound call that rings or alerts (the handset is up)."""
    record = replace(_current(state), answered_at=now)
    new_state = replace(state, mode="in_call", call=record, click_to_call=None)
    return new_state, [AnswerCall(record.call_id), records.call_event("call.answered", record, now)]


def _answered(state: PhoneState, now: datetime) -> Result:
    record = replace(_current(state), answered_at=now)
    new_state = replace(state, mode="in_call", call=record, ringback=False)
    return new_state, [records.call_event("call.answered", record, now)]


def _reply(request_id: str, code: str, message: str) -> SendReply:
    return SendReply(Reply.failure(request_id, code, message))


# --- handset and keypad -----------------------------------------------------------------------------


def _lift(state: PhoneState, now: datetime) -> Result:
    if state.off_hook:
        return state, []
    if state.on_hook_at is not None:
        return _lift_after_short_on_hook(state, now)
    lifted = replace(state, off_hook=True, missed_call=False)
    effects: list[Effect] = [records.plain_event("hook.offhook", now)]
    match state.mode:
        case "ringing_in":
            new_state, more = _answer(lifted, now)
        case "alerting":
            new_state, more = _lift_while_alerting(lifted, now)
        case _:
            new_state, more = replace(lifted, mode="dialing", digits="", last_key_at=None), []
    return new_state, effects + more


def _lift_while_alerting(state: PhoneState, now: datetime) -> Result:
    pending = state.click_to_call
    assert pending is not None
    if pending.origin == "pbx":
        return _answer(state, now)
    effects: list[Effect] = [CancelTimer(CLICK_TO_CALL_TIMER)]
    if pending.expires_at is not None and now >= pending.expires_at:
        effects.append(_click_to_call_event("click_to_call.expired", pending, now))
        return replace(state, mode="dialing", click_to_call=None, digits=""), effects
    new_state, more = _place_call(state, pending.number, pending.origin, pending.crm, now)
    return new_state, effects + more


def _replace(state: PhoneState, now: datetime) -> Result:
    if not state.off_hook:
        return state, []
    if _may_flash(state):  # hang up only once the handset stayed down longer than a flash
        seconds = state.settings.hook_flash_max_s
        return replace(state, off_hook=False, on_hook_at=now), [StartTimer(HOOK_FLASH_TIMER, seconds)]
    return _hang_up(replace(state, off_hook=False), now)


def _hang_up(state: PhoneState, now: datetime) -> Result:
    """The handset is down for good: end every call of the line, as of the moment it went down."""
    if state.held is not None and state.consultation and state.mode in ("outgoing", "in_call"):
        return _transfer_held_call(state, now)
    down = replace(state, off_hook=False, on_hook_at=None, held=None)
    at = state.on_hook_at or now
    effects: list[Effect] = [records.plain_event("hook.onhook", now)]
    if state.held is not None:
        effects += _end_locally(state.held, "answered", now, ended_at=at)
    match state.mode:
        case "dialing" if state.digits:
            effects.append(CancelTimer(INTERDIGIT_TIMER))
        case "outgoing":
            effects += _end_locally(_current(state), "cancelled", now)
        case "in_call":
            effects += _end_locally(_current(state), "answered", now, ended_at=at)
            effects += _end_transfer_call(state, now)
    rest = _back_to_rest(down, end_tone=None)
    if state.waiting is not None:  # the waiting call rings now, as any incoming call
        rest = replace(rest, mode="ringing_in", call=state.waiting, waiting=None)
    return rest, effects


def _end_locally(
    record: CallRecord,
    disposition: Any,
    now: datetime,
    code: int | None = None,
    ended_at: datetime | None = None,
) -> list[Effect]:
    """Hang up ``record``'s call and report it; ``ended_at`` (default ``now``) ends its talk time."""
    ended = records.finished(record, ended_at or now, disposition, "local", code)
    return [EndCall(record.call_id, code), records.call_event("call.ended", ended, now)]


def _end_transfer_call(state: PhoneState, now: datetime) -> list[Effect]:
    """Cancel the call a transfer is setting up, if there is one."""
    return [] if state.transfer is None else _end_locally(state.transfer, "cancelled", now)


def _press(state: PhoneState, key: str, now: datetime) -> Result:
    if state.waiting_choice_at is not None:
        return _choose_for_waiting_call(state, key, now)
    if state.mode == "in_call":
        return state, [SendDtmf(_current(state).call_id, key)]
    if state.mode != "dialing":
        return state, []
    settings = state.settings
    if not state.digits and key == settings.redial_key and state.last_number:
        return _place_call(state, state.last_number, "manual", None, now)
    if key == "#" and state.digits and _hash_ends_number(state):
        return _place_call(state, state.digits, "manual", None, now)
    digits = state.digits + key
    dialing = replace(state, digits=digits, last_key_at=now)
    match settings.dial_plan.classify(digits):
        case "complete":
            return _place_call(dialing, digits, "manual", None, now)
        case "invalid":
            return replace(dialing, mode="ended", digits="", end_tone="error"), [
                CancelTimer(INTERDIGIT_TIMER)
            ]
        case _:
            return dialing, [StartTimer(INTERDIGIT_TIMER, settings.interdigit_timeout_s)]


def _hash_ends_number(state: PhoneState) -> bool:
    """'#' sends the number, unless the digit map has numbers that go on with a '#'."""
    plan = state.settings.dial_plan
    return not plan.digit_map.strip() or plan.classify(state.digits + "#") == "invalid"


def _timer(state: PhoneState, name: str, now: datetime) -> Result:
    if name == forwarding.FORWARD_NO_ANSWER_TIMER:
        return forwarding.no_answer_timer_fired(state, now) or (state, [])
    flash_ends = state.on_hook_at and state.on_hook_at + timedelta(seconds=state.settings.hook_flash_max_s)
    if name == HOOK_FLASH_TIMER and flash_ends and now >= flash_ends - TIMER_SLACK:
        return _hang_up(state, now)
    choice_ends = state.waiting_choice_at and state.waiting_choice_at + timedelta(
        seconds=state.settings.waiting_choice_s
    )
    if name == WAITING_CHOICE_TIMER and choice_ends and now >= choice_ends - TIMER_SLACK:
        return _take_waiting_call(state, now)
    if name == INTERDIGIT_TIMER and state.mode == "dialing" and state.digits and state.last_key_at:
        deadline = state.last_key_at + timedelta(seconds=state.settings.interdigit_timeout_s)
        if now >= deadline - TIMER_SLACK:
            return _place_call(state, state.digits, "manual", None, now)
    pending = state.click_to_call
    expired = pending and pending.expires_at and now >= pending.expires_at - TIMER_SLACK
    if name == CLICK_TO_CALL_TIMER and state.mode == "alerting" and pending and expired:
        return _back_to_rest(state), [_click_to_call_event("click_to_call.expired", pending, now)]
    return state, []


# --- hook flash: hold, and back to the held call -----------------------------------------------------
#
# situation                                        what the line does
# handset down in a call, or with a call held       nothing yet: a hook flash if it is up again in time
#   up again sooner than hook_flash_min_s           a bounce of the switch: as if it never went down
#   up again within the window                      a hook flash (below)
#   still down at hook_flash_max_s                  hang-up: every call of the line ends
# flash in a call                                   the call is held (hold tone to it); dial tone
# flash while dialing, calling or after a failure   the other call (if any) is dropped; back to the held one
# hang-up with one held and a call dialled from it  transfer: blind (REFER to the number) while it rings,
#                                                   attended (REFER with Replaces) once it answered
# hang-up with one held and a waiting call taken    every call ends
# the held party hangs up                           its call ends; the line goes on (dial tone, or the call)


def _may_flash(state: PhoneState) -> bool:
    in_a_call = state.mode == "in_call" and state.transfer is None
    other_call = state.held is not None or state.waiting is not None
    return state.settings.hook_flash_max_s > 0 and (in_a_call or other_call)


def _lift_after_short_on_hook(state: PhoneState, now: datetime) -> Result:
    assert state.on_hook_at is not None
    down_for = (now - state.on_hook_at).total_seconds()
    settings = state.settings
    if down_for > settings.hook_flash_max_s or not _may_flash(state):  # too late, or the call is gone
        hung_up, effects = _hang_up(state, now)
        lifted, more = _lift(hung_up, now)
        return lifted, effects + more
    up = replace(state, off_hook=True, on_hook_at=None)
    effects: list[Effect] = [CancelTimer(HOOK_FLASH_TIMER)]
    if down_for < settings.hook_flash_min_s:
        return up, effects
    new_state, more = _flash(up, now)
    return new_state, effects + more


def _flash(state: PhoneState, now: datetime) -> Result:
    if state.waiting is not None and state.settings.waiting_choice_s > 0:
        return _await_waiting_choice(state, now)
    if state.waiting is not None:
        return _take_waiting_call(state, now)
    held = state.held
    if held is not None and state.mode == "in_call":  # swap
        current = _current(state)
        swapped = replace(state, call=held, held=current, held_by_remote=False)
        return swapped, [HoldCall(current.call_id), HoldCall(held.call_id, hold=False)]
    if held is None:
        if state.mode != "in_call":
            return state, []
        call = _current(state)
        dialing = replace(state, mode="dialing", call=None, held=call, digits="", held_by_remote=False)
        return dialing, [HoldCall(call.call_id)]
    effects: list[Effect] = []
    match state.mode:
        case "dialing" if state.digits:
            effects.append(CancelTimer(INTERDIGIT_TIMER))
        case "outgoing":
            effects += _end_locally(_current(state), "cancelled", now)
    back = replace(state, mode="in_call", call=held, held=None, digits="", end_tone=None)
    back = replace(back, remote_ringing=False, ringback=False, held_by_remote=False, consultation=False)
    return back, [*effects, HoldCall(held.call_id, hold=False)]


def _transfer_held_call(state: PhoneState, now: datetime) -> Result:
    """Hang-up with a call held and a second one up: the held party is put through to the second."""
    assert state.held is not None
    held, other = _handover(state.held, _current(state))
    at = state.on_hook_at or now
    effects: list[Effect] = [records.plain_event("hook.onhook", now)]
    if state.mode == "in_call":  # attended: the third party answered
        effects.append(TransferCall(held.call_id, replaces=other.call_id))
        other_end = records.finished(other, at, "answered", "local")
    else:  # blind: the third party still rings
        effects += [EndCall(other.call_id), TransferCall(held.call_id, number=other.remote.number)]
        other_end = records.finished(other, at, "cancelled", "local")
    held_end = records.finished(held, at, "answered", "local")
    effects += [
        records.call_event("call.ended", held_end, now),
        records.call_event("call.ended", other_end, now),
    ]
    rest = _back_to_rest(replace(state, off_hook=False, on_hook_at=None, held=None), end_tone=None)
    if state.waiting is not None:
        rest = replace(rest, mode="ringing_in", call=state.waiting, waiting=None)
    return rest, effects


def _held_call_ended(state: PhoneState, inp: CallEnded, now: datetime) -> Result:
    held = state.held
    assert held is not None
    hangup_by = "remote" if inp.by_remote else "local"
    ended = records.finished(held, now, "answered", hangup_by, inp.code, inp.reason)
    new_state = replace(state, held=None, consultation=False)
    if not new_state.off_hook and new_state.call is None:  # down for a flash with only the held call
        new_state = _back_to_rest(new_state, on_hook_at=None)
        return new_state, [CancelTimer(HOOK_FLASH_TIMER), records.plain_event("hook.onhook", now),
                           records.call_event("call.ended", ended, now)]  # fmt: skip
    return new_state, [records.call_event("call.ended", ended, now)]


# --- call waiting ------------------------------------------------------------------------------------
#
# situation                                        what the line does
# a call comes in while we talk (call_waiting on)   it waits: call-waiting tone, "Waiting: <caller>"
#   (off, do-not-disturb, or a call already held)   486 Busy Here, as without call waiting
# flash (waiting_choice_s > 0)                      the line waits for a key, the call goes on (no DTMF):
#   0                                               the waiting call is declined (603): the CRM sees it
#                                                   rejected; the call we talk on goes on
#   1                                               the call we talk on ends, the waiting one is answered
#   2, or no key within waiting_choice_s            as a flash with waiting_choice_s = 0 (below)
#   another key                                     ignored
# flash (waiting_choice_s = 0)                      the call we talk on is held, the waiting one answered
# flash with one call held                          swap: the other call is held, the held one back
# the waiting caller gives up                       a missed call (message LED)
# the CRM hangs up the waiting call                 declined with 603
# the call we talk on ends                          the waiting call still waits (a choice is dropped);
#                                                   a flash (and 1 or 2, or none) answers it
# hang-up                                           the calls end; the waiting call rings as a new one


def _may_wait(state: PhoneState, inp: IncomingCall) -> bool:
    line_busy = state.waiting is not None or state.held is not None or state.transfer is not None
    talking = state.mode == "in_call" and state.off_hook and not line_busy
    return state.settings.call_waiting and talking and not state.dnd and not inp.auto_answer


def _call_waits(state: PhoneState, inp: IncomingCall, now: datetime) -> Result:
    record = records.inbound_record(inp.call_id, inp.sip_call_id, inp.remote, "manual", now)
    return replace(state, waiting=record), [records.call_event("call.incoming", record, now)]


def _await_waiting_choice(state: PhoneState, now: datetime) -> Result:
    seconds = state.settings.waiting_choice_s
    return replace(state, waiting_choice_at=now), [StartTimer(WAITING_CHOICE_TIMER, seconds)]


def _choose_for_waiting_call(state: PhoneState, key: str, now: datetime) -> Result:
    """The key after a flash with a call waiting (the Bellcore / ATA convention: 0, 1, 2)."""
    match key:
        case "0":
            new_state, effects = _decline_waiting_call(state, now)
        case "1":
            new_state, effects = _end_call_and_take_waiting(state, now)
        case "2":
            new_state, effects = _take_waiting_call(state, now)
        case _:
            return state, []
    return new_state, [CancelTimer(WAITING_CHOICE_TIMER), *effects]


def _decline_waiting_call(state: PhoneState, now: datetime) -> Result:
    waiting = state.waiting
    assert waiting is not None
    effects = _end_locally(waiting, "rejected", now, code=DECLINE)
    return replace(state, waiting=None, waiting_choice_at=None), effects


def _end_call_and_take_waiting(state: PhoneState, now: datetime) -> Result:
    effects: list[Effect] = []
    if state.mode == "in_call":
        effects = _end_locally(_current(state), "answered", now) + _end_transfer_call(state, now)
        state = replace(state, mode="ended", call=None, transfer=None, remote_ringing=False, ringback=False)
    new_state, more = _take_waiting_call(state, now)
    return new_state, effects + more


def _take_waiting_call(state: PhoneState, now: datetime) -> Result:
    waiting = state.waiting
    assert waiting is not None
    record = replace(waiting, answered_at=now)
    effects: list[Effect] = []
    held = state.held
    if state.mode == "in_call":
        held = _current(state)
        effects.append(HoldCall(held.call_id))
    new_state = replace(state, mode="in_call", call=record, held=held, waiting=None, held_by_remote=False)
    new_state = replace(new_state, end_tone=None, digits="", consultation=False, waiting_choice_at=None)
    return new_state, [*effects, AnswerCall(record.call_id), records.call_event("call.answered", record, now)]


def _waiting_call_ended(state: PhoneState, inp: CallEnded, now: datetime) -> Result:
    waiting = state.waiting
    assert waiting is not None
    ended = records.finished(waiting, now, "missed", "remote", inp.code, inp.reason)
    new_state = replace(state, waiting=None, missed_call=True, waiting_choice_at=None)
    effects: list[Effect] = [CancelTimer(WAITING_CHOICE_TIMER)] if state.waiting_choice_at else []
    return new_state, [*effects, records.call_event("call.ended", ended, now)]


# --- remote commands --------------------------------------------------------------------------------


def _click_to_call_event(event_type: Any, pending: ClickToCall, now: datetime) -> Effect:
    return records.plain_event(
        event_type,
        now,
        request_id=pending.request_id,
        number=pending.number,
        display=pending.display,
        crm=pending.crm,
    )


def _dial(state: PhoneState, command: Dial, now: datetime) -> Result:
    request_id = command.request_id
    ready_to_dial = state.mode == "dialing" and not state.digits
    refusal = None
    if not VALID_NUMBER.fullmatch(command.number):
        refusal = ("invalid_number", f"not a dialable number: {command.number!r}")
    elif now >= command.expires_at:
        refusal = ("expired", f"the request expired at {command.expires_at.isoformat()}")
    elif not (state.mode == "idle" or ready_to_dial):
        refusal = ("busy", f"the phone is busy ({state.mode})")
    elif not state.registered:
        refusal = ("not_registered", "the phone is not registered with the PBX")
    if refusal:
        return state, [_reply(request_id, *refusal)]
    if ready_to_dial:
        new_state, effects = _place_call(state, command.number, command.origin, command.crm, now)
        call_id = _current(new_state).call_id
        return new_state, [*effects, SendReply(Reply.success(request_id, status="dialing", call_id=call_id))]
    pending = ClickToCall(
        origin=command.origin,
        number=command.number,
        request_id=request_id,
        expires_at=command.expires_at,
        display=command.display,
        crm=command.crm,
    )
    seconds = (command.expires_at - now).total_seconds()
    effects = [
        StartTimer(CLICK_TO_CALL_TIMER, seconds),
        _click_to_call_event("click_to_call.alerting", pending, now),
        SendReply(Reply.success(request_id, status="accepted")),
    ]
    return replace(state, mode="alerting", click_to_call=pending), effects


def _cancel_dial(state: PhoneState, request_id: str, now: datetime) -> Result:
    pending = state.click_to_call
    if state.mode != "alerting" or pending is None or pending.request_id != request_id:
        return state, [_reply(request_id, "not_found", "no click-to-call with this id is alerting")]
    effects: list[Effect] = [
        CancelTimer(CLICK_TO_CALL_TIMER),
        _click_to_call_event("click_to_call.cancelled", pending, now),
        SendReply(Reply.success(request_id, status="cancelled")),
    ]
    return _back_to_rest(state), effects


def _hangup(state: PhoneState, command: Hangup, now: datetime) -> Result:
    waiting = state.waiting
    if waiting is not None and command.call_id == waiting.call_id:  # decline the waiting call
        new_state, effects = _decline_waiting_call(state, now)
        if state.waiting_choice_at is not None:
            effects.insert(0, CancelTimer(WAITING_CHOICE_TIMER))
        effects.append(SendReply(Reply.success(command.request_id, status="ended", call_id=waiting.call_id)))
        return new_state, effects
    call = state.call
    if call is None or command.call_id not in (None, call.call_id):
        return state, [_reply(command.request_id, "not_found", "no such call")]
    if state.mode == "outgoing":
        effects = _end_locally(call, "cancelled", now)
    elif state.mode == "in_call":
        effects = _end_locally(call, "answered", now) + _end_transfer_call(state, now)
    else:  # ringing_in, or a PBX click-to-call alerting: decline it
        effects = _end_locally(call, "rejected", now, code=DECLINE)
    effects.append(SendReply(Reply.success(command.request_id, status="ended", call_id=call.call_id)))
    return _back_to_rest(state, end_tone="busy"), effects


def _show_caller(state: PhoneState, command: ShowCaller) -> Result:
    """The CRM's name for the caller replaces the SIP display name of a call still in progress."""
    call = state.call
    if call is None or call.call_id != command.call_id or state.mode not in ("ringing_in", "in_call"):
        return state, [_reply(command.request_id, "not_found", "no such call in progress")]
    new_state = _with_call(state, remote=replace(call.remote, name=command.name))
    return new_state, [SendReply(Reply.success(command.request_id, status="shown", call_id=call.call_id))]


# --- SIP --------------------------------------------------------------------------------------------


def _registration(state: PhoneState, inp: RegistrationChanged, now: datetime) -> Result:
    if (inp.registered, inp.code) == (state.registered, state.registration_code):
        return state, []
    new_state = replace(state, registered=inp.registered, registration_code=inp.code)
    event = records.plain_event(
        "registration.changed", now, registered=inp.registered, code=inp.code, reason=inp.reason
    )
    return new_state, [event]


def _incoming(state: PhoneState, inp: IncomingCall, now: datetime) -> Result:
    origin: Origin = "pbx" if inp.auto_answer else "manual"
    elsewhere = forwarding.forward_always(state, inp, now) or forwarding.refuse_for_dnd(state, inp, now)
    if elsewhere is not None:
        return state, elsewhere
    if _may_wait(state, inp):
        return _call_waits(state, inp, now)
    ready_to_dial = state.mode == "dialing" and not state.digits
    if not (state.mode == "idle" or (ready_to_dial and inp.auto_answer)):
        return state, forwarding.refuse_busy(state, inp, origin, now)
    record = records.inbound_record(inp.call_id, inp.sip_call_id, inp.remote, origin, now)
    effects: list[Effect] = [records.call_event("call.incoming", record, now)]
    if ready_to_dial:
        new_state, more = _answer(replace(state, call=record), now)
        return new_state, effects + more
    if inp.auto_answer:
        pending = ClickToCall(origin="pbx", number=inp.remote.number, display=inp.remote.name)
        return replace(state, mode="alerting", call=record, click_to_call=pending), effects
    return replace(state, mode="ringing_in", call=record), effects + forwarding.ring_timer(state)


def _ringing(state: PhoneState, inp: CallRinging, now: datetime) -> Result:
    if _is_transfer(state, inp.call_id):
        record = _transfer(state)
    elif state.mode == "outgoing" and _is_current(state, inp.call_id):
        record = _current(state)
    else:
        return state, []
    new_state = replace(state, remote_ringing=True, ringback=not inp.early_media)
    if state.remote_ringing:
        return new_state, []
    return new_state, [records.call_event("call.ringing", record, now)]


def _ended(state: PhoneState, inp: CallEnded, now: datetime) -> Result:
    if not _is_current(state, inp.call_id):
        return state, []
    if state.transfer is not None and state.mode == "in_call":
        return _transferred_away(state, inp, now)
    record = _current(state)
    hangup_by = "remote" if inp.by_remote else "local"
    missed_call = state.missed_call
    match state.mode:
        case "outgoing":
            disposition = records.outbound_failure(inp.code)
            end_tone = "busy" if disposition == "busy" else "error"
        case "in_call":
            disposition, end_tone = "answered", "busy"
        case "ringing_in":
            disposition, end_tone, missed_call = "missed", None, True
        case _:  # a PBX click-to-call the PBX withdrew
            disposition, end_tone = "missed", None
    ended = records.finished(record, now, disposition, hangup_by, inp.code, inp.reason)
    new_state = _back_to_rest(state, end_tone=end_tone, missed_call=missed_call)
    return new_state, [records.call_event("call.ended", ended, now)]


# --- being transferred --------------------------------------------------------------------------------
#
# situation                                    what the line does
# REFER on the call we talk on                 the SIP stack calls the target: that call is ``transfer``
#                                              (ringback, display "> target", earpiece on it, mic muted)
# transfer call answered                       it becomes the call; the transferred call ends (BYE)
# the far end hangs up the transferred call    the transfer call becomes the call, still being set up
# transfer call fails                          forgotten; the transferred call goes on as it was
# INVITE with Replaces of the call we talk on  the new (answered) call takes its place at once
# the far end holds / resumes the call          "On hold: <remote>" and a blinking line LED / as before
# anything else (handset down, no such call)   the new call is hung up


def _handover(old: CallRecord, new: CallRecord) -> tuple[CallRecord, CallRecord]:
    """The two records linked: ``old`` was transferred to ``new``."""
    return (
        replace(old, transferred_to=Transfer(new.call_id, new.remote)),
        replace(new, transferred_from=Transfer(old.call_id, old.remote)),
    )


def _transferred(state: PhoneState, inp: CallTransferred, now: datetime) -> Result:
    if not (state.off_hook and state.mode == "in_call" and _is_current(state, inp.call_id)):
        return state, [EndCall(inp.new_call_id)]
    old = _current(state)
    effects = _end_transfer_call(state, now)  # a second REFER replaces the first
    if inp.kind == "replaces":
        new = records.inbound_record(inp.new_call_id, None, inp.remote, old.origin, now)
        old, new = _handover(old, replace(new, answered_at=now))
        ended = records.finished(old, now, "answered", "remote")
        effects += [
            records.call_event("call.ended", ended, now),
            records.call_event("call.incoming", new, now),
            records.call_event("call.answered", new, now),
        ]
        new_state = replace(state, call=new, transfer=None, held_by_remote=False, remote_ringing=False)
        return replace(new_state, ringback=False), effects
    new = records.outbound_record(inp.new_call_id, inp.remote.number, old.origin, None, now)
    new = replace(new, remote=inp.remote, transferred_from=Transfer(old.call_id, old.remote))
    effects.append(records.call_event("call.outgoing", new, now))
    return replace(state, transfer=new, remote_ringing=False, ringback=False), effects


def _transfer_answered(state: PhoneState, now: datetime) -> Result:
    old, new = _handover(_current(state), replace(_transfer(state), answered_at=now))
    ended = records.finished(old, now, "answered", "remote")
    effects: list[Effect] = [
        EndCall(old.call_id),
        records.call_event("call.ended", ended, now),
        records.call_event("call.answered", new, now),
    ]
    new_state = replace(state, call=new, transfer=None, held_by_remote=False, remote_ringing=False)
    return replace(new_state, ringback=False), effects


def _transferred_away(state: PhoneState, inp: CallEnded, now: datetime) -> Result:
    """The far end hung up the call it transferred: the transfer call, still ringing, is the call now."""
    old, new = _handover(_current(state), _transfer(state))
    ended = records.finished(old, now, "answered", "remote", inp.code, inp.reason)
    new_state = replace(state, mode="outgoing", call=new, transfer=None, held_by_remote=False)
    return new_state, [records.call_event("call.ended", ended, now)]


def _transfer_failed(state: PhoneState, inp: CallEnded, now: datetime) -> Result:
    record = _transfer(state)
    hangup_by = "remote" if inp.by_remote else "local"
    disposition = records.outbound_failure(inp.code)
    ended = records.finished(record, now, disposition, hangup_by, inp.code, inp.reason)
    new_state = replace(state, transfer=None, remote_ringing=False, ringback=False)
    return new_state, [records.call_event("call.ended", ended, now)]
