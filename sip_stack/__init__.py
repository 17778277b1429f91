"""SIP user agent on pjsua2: endpoint thread, account, calls, DTMF, tones, audio bridge."""

from sip_stack.events import (
    CallAnswered,
    CallEnded,
    CallHoldChanged,
    CallRinging,
    CallTransferred,
    IncomingCall,
    OutgoingCallStarted,
    RegistrationChanged,
    SipEvent,
)
from sip_stack.settings import SipSettings

__all__ = [
    "CallAnswered",
    "CallEnded",
    "CallHoldChanged",
    "CallRinging",
    "CallTransferred",
    "IncomingCall",
    "OutgoingCallStarted",
    "RegistrationChanged",
    "SipEvent",
    "SipSettings",
    "UserAgent",
]


def __getattr__(name: str) -> object:
    # Import pjsua2 only when the agent is used, so settings/events stay importable without it.
    if name == "UserAgent":
        from sip_stack.agent import UserAgent

        return UserAgent
    raise AttributeError(name)
