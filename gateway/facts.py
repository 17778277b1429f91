"""Contract events (and refused dials) turned into the gateway's ``CallFact``s."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from firmware.events import CallRecord, Event

from .calls import CallFact, CallState, Desk
from .desks import Desks

CALL_FACTS = ("call.incoming", "call.outgoing", "call.ringing", "call.answered", "call.ended")
CLICK_FACTS = ("click_to_call.expired", "click_to_call.cancelled")


def fact_from_event(event: Event, device_id: str, desks: Desks) -> CallFact | None:
    """The fact an event stands for, or None for events that concern no call (hook, registration)."""
    desk = desks.by_device(device_id)
    if event.type in CALL_FACTS and event.call is not None:
        call = _state_of(event.call, device_id)
        internal = desks.is_extension(call.remote_number)
        return CallFact(event.type, call, desk, internal, event.event_id)  # type: ignore[arg-type]
    if event.type in CLICK_FACTS:
        data = event.data
        request_id = data.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            return None
        why = (
            "not picked up at the desk in time" if event.type.endswith("expired") else "cancelled by the CRM"
        )
        call = unanswered_dial(
            request_id,
            device_id,
            str(data.get("number") or ""),
            data.get("crm") if isinstance(data.get("crm"), dict) else None,
            event.ts,
            "cancelled",
            why,
        )
        return CallFact(event.type, call, desk, False, event.event_id)  # type: ignore[arg-type]
    return None


def refused_dial_fact(
    request_id: str,
    desk: Desk | None,
    number: str,
    crm: dict[str, Any] | None,
    at: datetime,
    code: str,
    message: str,
) -> CallFact:
    """A click-to-call that never rang: the phone refused it (``code`` from the contract) or there is
    no phone for that CRM user (``code`` ``no_desk``)."""
    call = unanswered_dial(request_id, desk.device_id if desk else "", number, crm, at, "failed", code)
    return CallFact("dial.refused", call.advanced(reason=f"{code}: {message}" if message else code), desk)


def unanswered_dial(
    request_id: str,
    device_id: str,
    number: str,
    crm: dict[str, Any] | None,
    at: datetime,
    disposition: str,
    reason: str,
) -> CallState:
    return CallState(
        call_id=request_id,
        device_id=device_id,
        phase="ended",
        direction="outbound",
        origin="crm",
        remote_number=number,
        started_at=at,
        crm=crm,
        ended_at=at,
        disposition=disposition,
        reason=reason,
    )


def _state_of(record: CallRecord, device_id: str) -> CallState:
    return CallState(
        call_id=record.call_id,
        device_id=device_id,
        phase="ringing",
        direction=record.direction,
        origin=record.origin,
        remote_number=record.remote.number,
        remote_name=record.remote.name,
        started_at=record.started_at,
        crm=record.crm,
        answered_at=record.answered_at,
        ended_at=record.ended_at,
        disposition=record.disposition,
        sip_code=record.sip_code,
        reason=record.reason,
        hangup_by=record.hangup_by,
    )
