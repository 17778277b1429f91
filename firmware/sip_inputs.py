"""SIP stack events in the phone's own words, and the trust decision for PBX click-to-call.

A PBX places a click-to-call by calling the phone with a header that asks it to answer by itself
(``Call-Info: <...>;answer-after=0``, ``Alert-Info: ...auto-answer...`` or ``Answer-Mode: Auto``).
Only a PBX in ``sip.trusted_pbx`` may do that; the same headers from anyone else ring as a normal call
(when ``sip.only_from_pbx`` is off: with it on, the default, the user agent refuses INVITEs from
anyone but the registrar and the trusted PBXs before they ring).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import sip_stack
from firmware import inputs
from firmware.events import Remote
from sip_stack.admission import host_matches

_ANSWER_AFTER = re.compile(r"answer-after\s*=\s*\d+", re.IGNORECASE)
_AUTO_ANSWER = re.compile(r"auto[-_ ]?answer", re.IGNORECASE)
_ANSWER_MODE_AUTO = re.compile(r"^\s*auto\b", re.IGNORECASE)


def asks_auto_answer(headers: dict[str, str]) -> bool:
    """True when the INVITE's headers ask the phone to answer (or alert) by itself."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return bool(
        _ANSWER_AFTER.search(lowered.get("call-info", ""))
        or _AUTO_ANSWER.search(lowered.get("alert-info", ""))
        or _ANSWER_MODE_AUTO.search(lowered.get("answer-mode", ""))
    )


def is_trusted(source_host: str, trusted_pbx: Iterable[str]) -> bool:
    """Whether ``source_host`` (the address the INVITE came from) is one of the trusted PBXs."""
    return host_matches(source_host, trusted_pbx)


def to_input(event: sip_stack.SipEvent, trusted_pbx: Iterable[str]) -> inputs.SipInput:
    match event:
        case sip_stack.RegistrationChanged(registered=registered, code=code, reason=reason):
            return inputs.RegistrationChanged(registered, code, reason)
        case sip_stack.IncomingCall():
            auto = asks_auto_answer(event.headers) and is_trusted(event.source_host, trusted_pbx)
            remote = Remote(number=event.remote_number, name=event.remote_name or None)
            return inputs.IncomingCall(event.call_id, event.sip_call_id or None, remote, auto_answer=auto)
        case sip_stack.OutgoingCallStarted(call_id=call_id, sip_call_id=sip_call_id):
            return inputs.OutgoingCallStarted(call_id, sip_call_id or None)
        case sip_stack.CallRinging(call_id=call_id, code=code, early_media=early):
            return inputs.CallRinging(call_id, code, early)
        case sip_stack.CallAnswered(call_id=call_id):
            return inputs.CallAnswered(call_id)
        case sip_stack.CallEnded(call_id=call_id, code=code, reason=reason, by_remote=by_remote):
            return inputs.CallEnded(call_id, code or None, reason or None, by_remote)
        case sip_stack.CallTransferred():
            remote = Remote(number=event.remote_number, name=event.remote_name or None)
            return inputs.CallTransferred(event.call_id, event.new_call_id, remote, event.kind)
        case sip_stack.CallHoldChanged(call_id=call_id, held=held):
            return inputs.CallHoldChanged(call_id, held)
    raise TypeError(f"unknown SIP event {event!r}")
