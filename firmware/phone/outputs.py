"""What the user sees and hears, derived from the state; ``step`` emits only what changed."""

from __future__ import annotations

from dataclasses import dataclass, replace

from firmware.effects import (
    Effect,
    LedMode,
    PlayTone,
    Ring,
    RingPattern,
    RouteAudio,
    SetLed,
    ShowText,
    ToneKind,
)
from firmware.events import CallRecord
from firmware.phone.state import ClickToCall, PhoneState

WAITING_CHOICE_TEXT = "0 reject 1 end 2 hold"  # after a flash with a call waiting (firmware.phone.step)


@dataclass(frozen=True)
class Outputs:
    tone: ToneKind | None = None
    ring: RingPattern | None = None
    line_led: LedMode = "off"
    message_led: LedMode = "off"
    text: str = ""
    audio_call: str | None = None  # the call the earpiece (and maybe the microphone) is connected to
    microphone: bool = False  # the microphone reaches ``audio_call``


def outputs_of(state: PhoneState) -> Outputs:
    outputs = _sight_and_sound(state)
    call, transfer = state.call, state.transfer
    if state.off_hook and call is not None and state.mode in ("outgoing", "in_call"):
        if transfer is not None:  # hear the transfer target ring; nobody hears us until it answers
            return replace(outputs, audio_call=transfer.call_id)
        return replace(outputs, audio_call=call.call_id, microphone=state.mode == "in_call")
    return outputs


def _remote_text(record: CallRecord | None) -> str:
    remote = record.remote if record else None
    return (remote.name or remote.number) if remote else ""


def _sight_and_sound(state: PhoneState) -> Outputs:
    outputs = _of_the_call(state)
    if state.waiting is not None and state.waiting_choice_at is not None:  # a flash: which key now?
        return replace(outputs, tone=None, line_led="blink", text=WAITING_CHOICE_TEXT)
    if state.waiting is not None:
        tone: ToneKind | None = "call_waiting" if state.off_hook else outputs.tone
        text = f"Waiting: {_remote_text(state.waiting)}"
        return replace(outputs, tone=tone, line_led="blink", text=text)
    if state.held is None:
        return outputs
    text = outputs.text or f"Held: {_remote_text(state.held)}"
    return replace(outputs, line_led="blink", text=text)


def _of_the_call(state: PhoneState) -> Outputs:
    remote_text = _remote_text(state.call)
    message_led: LedMode = "on" if state.missed_call else "off"
    match state.mode:
        case "dialing":
            return Outputs(tone=None if state.digits else "dial", message_led=message_led, text=state.digits)
        case "outgoing":
            tone: ToneKind | None = "ringback" if state.ringback else None
            return Outputs(tone=tone, line_led="on", message_led=message_led, text=remote_text)
        case "in_call" if state.transfer is not None:
            tone = "ringback" if state.ringback else None
            text = f"> {_remote_text(state.transfer)}"
            return Outputs(tone=tone, line_led="on", message_led=message_led, text=text)
        case "in_call" if state.held_by_remote:
            return Outputs(line_led="blink", message_led=message_led, text=f"On hold: {remote_text}")
        case "in_call":
            return Outputs(line_led="on", message_led=message_led, text=remote_text)
        case "ringing_in":
            return Outputs(ring="normal", line_led="blink", message_led=message_led, text=remote_text)
        case "alerting":
            pending = state.click_to_call
            text = _alerting_text(pending) if pending else remote_text
            return Outputs(ring="click_to_call", line_led="blink", message_led=message_led, text=text)
        case "ended":
            return Outputs(tone=state.end_tone, message_led=message_led)
        case _:
            return Outputs(message_led=message_led, text=_idle_text(state))


def _idle_text(state: PhoneState) -> str:
    """At rest a desk phone shows what sends its calls elsewhere: "Fwd -> 1003", "DND"."""
    always = state.forwarding.always
    parts = [f"Fwd -> {always}"] if always else []
    if state.dnd:
        parts.append("DND")
    return " ".join(parts)


def _alerting_text(pending: ClickToCall) -> str:
    """A CRM click-to-call shows the number and the CRM's ``display``; a PBX one the caller."""
    if pending.origin == "pbx":
        return pending.display or pending.number
    return f"{pending.number} {pending.display}" if pending.display else pending.number


def output_effects(before: Outputs | None, after: Outputs) -> list[Effect]:
    """The effects that turn ``before`` into ``after``; every output when ``before`` is None."""
    effects: list[Effect] = []
    if before is None or before.ring != after.ring:
        effects.append(Ring(after.ring))
    if before is None or before.tone != after.tone:
        effects.append(PlayTone(after.tone))
    if before is None or before.line_led != after.line_led:
        effects.append(SetLed("line", after.line_led))
    if before is None or before.message_led != after.message_led:
        effects.append(SetLed("message", after.message_led))
    if before is None or before.text != after.text:
        effects.append(ShowText(after.text))
    if before is None or (before.audio_call, before.microphone) != (after.audio_call, after.microphone):
        effects.append(RouteAudio(after.audio_call, after.microphone))
    return effects


def initial_effects(state: PhoneState) -> list[Effect]:
    """Every output of ``state``: what the daemon applies once at start-up."""
    return output_effects(None, outputs_of(state))
