"""Effects: what the phone state machine asks the rest of the firmware to do.

``firmware.phone.step`` returns them as data; the daemon carries them out, in order, by posting to the
part that owns the hardware, the SIP stack, the timers or the MQTT outbox. None of them blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from firmware.commands import Reply
from firmware.events import Event

ToneKind = Literal["dial", "ringback", "busy", "error", "call_waiting"]
RingPattern = Literal["normal", "click_to_call"]
LedName = Literal["line", "message"]
LedMode = Literal["off", "on", "blink"]


@dataclass(frozen=True)
class PlayTone:
    """Play ``kind`` in the earpiece, replacing any tone playing; None stops the tone."""

    kind: ToneKind | None


@dataclass(frozen=True)
class Ring:
    """Ring the ringer with ``pattern``; None silences it."""

    pattern: RingPattern | None


@dataclass(frozen=True)
class SetLed:
    led: LedName
    mode: LedMode


@dataclass(frozen=True)
class ShowText:
    """Show ``text`` on the display line; an empty text clears it."""

    text: str


@dataclass(frozen=True)
class PlaceCall:
    """Call ``number``; the SIP stack reports on this call under ``call_id``."""

    call_id: str
    number: str


@dataclass(frozen=True)
class AnswerCall:
    call_id: str


@dataclass(frozen=True)
class EndCall:
    """Hang up, cancel or reject ``call_id``; ``code`` is the SIP status of a rejection (e.g. 486)."""

    call_id: str
    code: int | None = None


@dataclass(frozen=True)
class RedirectCall:
    """Answer the ringing ``call_id`` with 302 to ``number`` at the PBX, a Diversion header saying
    ``reason`` (RFC 5806: ``unconditional``, ``user-busy``, ``no-answer``)."""

    call_id: str
    number: str
    reason: str


@dataclass(frozen=True)
class HoldCall:
    """Put ``call_id`` on hold (re-INVITE, ``a=sendonly``) with the hold tone to it; False resumes it."""

    call_id: str
    hold: bool = True


@dataclass(frozen=True)
class TransferCall:
    """Transfer ``call_id``'s far end (REFER): to ``number`` (blind), or to the far end of our call
    ``replaces`` (attended, Refer-To with Replaces). The SIP stack ends both calls once it is done."""

    call_id: str
    number: str | None = None
    replaces: str | None = None


@dataclass(frozen=True)
class SendDtmf:
    call_id: str
    digit: str


@dataclass(frozen=True)
class RouteAudio:
    """Connect the earpiece to ``call_id`` only (None: to no call); the microphone too if ``microphone``.

    The microphone reaches a call only while the handset is up and that call is connected.
    """

    call_id: str | None
    microphone: bool = False


@dataclass(frozen=True)
class StartTimer:
    """Post ``TimerFired(name)`` after ``seconds``; replaces a pending timer of the same name."""

    name: str
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    """Forget the pending timer ``name``, if any (a firing already posted may still arrive)."""

    name: str


@dataclass(frozen=True)
class Emit:
    """Store ``event`` in the outbox for the CRM."""

    event: Event


@dataclass(frozen=True)
class SendReply:
    """Answer the remote command that carried ``reply.request_id``."""

    reply: Reply


Effect = (
    PlayTone
    | Ring
    | SetLed
    | ShowText
    | PlaceCall
    | AnswerCall
    | EndCall
    | RedirectCall
    | HoldCall
    | TransferCall
    | SendDtmf
    | RouteAudio
    | StartTimer
    | CancelTimer
    | Emit
    | SendReply
)
