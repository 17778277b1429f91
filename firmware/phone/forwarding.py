"""Forwarding and do-not-disturb: the situations of ``step`` that send a call elsewhere or refuse it.

situation                                          what the line does
a call comes in, forward ``always`` set            302 to the target (Diversion: unconditional); it never
                                                   rings; call.incoming, then call.ended ``forwarded``
  (``always`` comes before do-not-disturb: a forwarded call disturbs nobody)
a call comes in, do-not-disturb on                 486 Busy Here, reason "Do Not Disturb" (``rejected``)
a call the line cannot take, forward ``busy`` set  302 (user-busy) instead of 486: in a call with call
                                                   waiting off, or with a call already waiting or held,
                                                   or the handset up (dialing, after a call)
a call rings, forward ``no_answer`` set            it rings; still ringing after ``no_answer_s``: 302
                                                   (no-answer); not a missed call (it went somewhere)
a PBX click-to-call (auto-answer)                  never forwarded, never refused for do-not-disturb
cmd/forward, cmd/dnd                               the setting changes; the reply carries every setting
  a forward to the phone's own extension           refused (``invalid_number``): it would loop
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

from firmware.commands import Origin, Reply, SetDoNotDisturb, SetForward
from firmware.effects import Effect, EndCall, RedirectCall, SendReply, StartTimer
from firmware.events import CallRecord, Forwarded, ForwardReason
from firmware.inputs import IncomingCall
from firmware.line_settings import Forwarding, LineSettings
from firmware.phone import records
from firmware.phone.state import PhoneState

FORWARD_NO_ANSWER_TIMER = "forward_no_answer"
BUSY_HERE = 486
VALID_TARGET = re.compile(r"[0-9+*#]{1,32}")
MAX_NO_ANSWER_S = 120
# A timer firing this much before its deadline is a stale one (restarted since it was posted).
TIMER_SLACK = timedelta(milliseconds=250)

Result = tuple[PhoneState, list[Effect]]


def settings_view(state: PhoneState) -> dict[str, object]:
    """Forwarding and do-not-disturb as the CRM sees them (replies, status)."""
    return LineSettings.of(state).as_dict()


def forward_always(state: PhoneState, inp: IncomingCall, now: datetime) -> list[Effect] | None:
    """The effects of forwarding a new call unconditionally, or None when it is not forwarded."""
    target = state.forwarding.always
    if target is None or inp.auto_answer:
        return None
    return _redirect(inp, "manual", target, "unconditional", now)


def refuse_for_dnd(state: PhoneState, inp: IncomingCall, now: datetime) -> list[Effect] | None:
    if not state.dnd or inp.auto_answer:
        return None
    return _refuse(inp, "manual", now, "Do Not Disturb")


def refuse_busy(state: PhoneState, inp: IncomingCall, origin: Origin, now: datetime) -> list[Effect]:
    """A call the line cannot take: forwarded when ``busy`` is set, else 486 Busy Here."""
    target = state.forwarding.busy
    if target is not None and not inp.auto_answer:
        return _redirect(inp, origin, target, "user-busy", now)
    return _refuse(inp, origin, now, "Busy Here")


def ring_timer(state: PhoneState) -> list[Effect]:
    """What a call that starts ringing needs: the no-answer timer when forwarding on no answer."""
    if state.forwarding.no_answer is None:
        return []
    return [StartTimer(FORWARD_NO_ANSWER_TIMER, state.forwarding.no_answer_s)]


def no_answer_timer_fired(state: PhoneState, now: datetime) -> Result | None:
    """The no-answer time of the ringing call is up: redirect it (None: the timer is stale)."""
    call, target = state.call, state.forwarding.no_answer
    if state.mode != "ringing_in" or call is None or target is None:
        return None
    if now < call.started_at + timedelta(seconds=state.forwarding.no_answer_s) - TIMER_SLACK:
        return None
    ended = _forwarded(call, now, target, "no-answer")
    rest = replace(state, mode="idle", call=None, click_to_call=None)
    effects: list[Effect] = [RedirectCall(call.call_id, target, "no-answer")]
    return rest, [*effects, records.call_event("call.ended", ended, now)]


def set_forward(state: PhoneState, command: SetForward) -> Result:
    number = command.number
    refusal = None
    if number is not None and not VALID_TARGET.fullmatch(number):
        refusal = ("invalid_number", f"not a number to forward to: {number!r}")
    elif number is not None and number == state.settings.own_number:
        refusal = ("invalid_number", "forwarding to the phone's own extension would loop")
    elif command.no_answer_s is not None and not 1 <= command.no_answer_s <= MAX_NO_ANSWER_S:
        refusal = ("invalid_payload", f"'no_answer_s' must be 1 to {MAX_NO_ANSWER_S} seconds")
    if refusal:
        return state, [SendReply(Reply.failure(command.request_id, *refusal))]
    forwarding: Forwarding = replace(state.forwarding, **{command.mode: number})
    if command.no_answer_s is not None:
        forwarding = replace(forwarding, no_answer_s=command.no_answer_s)
    new_state = replace(state, forwarding=forwarding)
    reply = Reply.success(command.request_id, status="set", **settings_view(new_state))
    return new_state, [SendReply(reply)]


def set_dnd(state: PhoneState, command: SetDoNotDisturb) -> Result:
    new_state = replace(state, dnd=command.enabled)
    if command.request_id is None:
        return new_state, []
    reply = Reply.success(command.request_id, status="set", **settings_view(new_state))
    return new_state, [SendReply(reply)]


def _redirect(
    inp: IncomingCall, origin: Origin, target: str, reason: ForwardReason, now: datetime
) -> list[Effect]:
    record = records.inbound_record(inp.call_id, inp.sip_call_id, inp.remote, origin, now)
    ended = _forwarded(record, now, target, reason)
    return [
        RedirectCall(inp.call_id, target, reason),
        records.call_event("call.incoming", record, now),
        records.call_event("call.ended", ended, now),
    ]


def _forwarded(record: CallRecord, now: datetime, target: str, reason: ForwardReason) -> CallRecord:
    """The record of a call sent to ``target``; its ``reason`` says so in words, for a CRM that shows
    only the reason (the gateway's Bitrix24 card: "Forwarded to 1003 (no-answer); SIP 302")."""
    ended = records.finished(record, now, "forwarded", "local", 302, f"Forwarded to {target} ({reason})")
    return replace(ended, forwarded_to=Forwarded(target, reason))


def _refuse(inp: IncomingCall, origin: Origin, now: datetime, reason: str) -> list[Effect]:
    """Refuse a new incoming call with 486 Busy Here and report it as rejected, saying why."""
    record = records.inbound_record(inp.call_id, inp.sip_call_id, inp.remote, origin, now)
    ended = records.finished(record, now, "rejected", "local", BUSY_HERE, reason)
    return [
        EndCall(inp.call_id, BUSY_HERE),
        records.call_event("call.incoming", record, now),
        records.call_event("call.ended", ended, now),
    ]
