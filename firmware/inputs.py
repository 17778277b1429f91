"""Inputs of the phone state machine that are not commands: SIP facts and timer firings.

These mirror ``sip_stack.events`` in the phone's own words (``firmware`` must not depend on the SIP
stack's types): the daemon translates one into the other. An ``IncomingCall`` carries ``auto_answer``
already judged by the daemon, which alone knows which PBX is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from firmware.commands import Command
from firmware.events import Remote


@dataclass(frozen=True)
class RegistrationChanged:
    """The SIP account's registration state changed (or was refreshed with another code)."""

    registered: bool
    code: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class IncomingCall:
    """A call arrived. ``auto_answer`` is True only for a click-to-call from a trusted PBX."""

    call_id: str
    sip_call_id: str | None
    remote: Remote
    auto_answer: bool = False


@dataclass(frozen=True)
class OutgoingCallStarted:
    """The SIP stack sent the INVITE of a call we placed; ``sip_call_id`` is its Call-ID header."""

    call_id: str
    sip_call_id: str | None


@dataclass(frozen=True)
class CallRinging:
    """The far end rings (180) or sends early media (183)."""

    call_id: str
    code: int
    early_media: bool = False


@dataclass(frozen=True)
class CallAnswered:
    """The call is confirmed: the far end answered ours, or our answer to theirs was acknowledged."""

    call_id: str


@dataclass(frozen=True)
class CallEnded:
    """The call is over, for whatever reason; ``code`` is the final SIP status when there is one."""

    call_id: str
    code: int | None = None
    reason: str | None = None
    by_remote: bool = True


@dataclass(frozen=True)
class CallTransferred:
    """The far end of ``call_id`` transferred us. ``new_call_id`` is the SIP stack's call to ``remote``
    (``kind`` "refer": a REFER, blind or attended, being set up) or the call from ``remote`` that
    already took its place (``kind`` "replaces": an INVITE with Replaces, answered)."""

    call_id: str
    new_call_id: str
    remote: Remote
    kind: Literal["refer", "replaces"] = "refer"


@dataclass(frozen=True)
class CallHoldChanged:
    """The far end put ``call_id`` on hold (``held``), or took it off hold."""

    call_id: str
    held: bool


@dataclass(frozen=True)
class TimerFired:
    """A timer started by a ``StartTimer`` effect ran out."""

    name: str


SipInput = (
    RegistrationChanged
    | IncomingCall
    | OutgoingCallStarted
    | CallRinging
    | CallAnswered
    | CallEnded
    | CallTransferred
    | CallHoldChanged
)

Input = Command | SipInput | TimerFired
