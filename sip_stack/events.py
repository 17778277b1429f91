"""Events the user agent reports (past facts, frozen). Delivered on the ``sip`` thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class RegistrationChanged:
    registered: bool
    code: int
    reason: str


@dataclass(frozen=True)
class IncomingCall:
    call_id: str
    sip_call_id: str
    remote_number: str
    remote_name: str
    remote_uri: str
    source_host: str
    headers: dict[str, str] = field(default_factory=dict)  # Call-Info, Alert-Info, Answer-Mode


@dataclass(frozen=True)
class OutgoingCallStarted:
    call_id: str
    sip_call_id: str


@dataclass(frozen=True)
class CallRinging:
    call_id: str
    code: int
    early_media: bool


@dataclass(frozen=True)
class CallAnswered:
    call_id: str


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    code: int
    reason: str
    by_remote: bool


@dataclass(frozen=True)
class CallTransferred:
    """The far end of ``call_id`` transferred us: ``new_call_id`` is our call to the target (a REFER,
    blind or attended) or the call that replaced it (an INVITE with Replaces, already answered).
    The remote is the target (REFER) or the new caller (Replaces)."""

    call_id: str
    new_call_id: str
    remote_number: str
    remote_name: str
    remote_uri: str
    kind: Literal["refer", "replaces"]


@dataclass(frozen=True)
class CallHoldChanged:
    """The far end put ``call_id`` on hold (``held``) or took it off hold (a re-INVITE or UPDATE)."""

    call_id: str
    held: bool


SipEvent = (
    RegistrationChanged
    | IncomingCall
    | OutgoingCallStarted
    | CallRinging
    | CallAnswered
    | CallEnded
    | CallTransferred
    | CallHoldChanged
)
