"""Call records and the events that carry them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from firmware.commands import Origin
from firmware.effects import Emit
from firmware.events import CallRecord, Disposition, Event, EventType, Remote

BUSY_CODES = frozenset({486, 600})
NO_ANSWER_CODES = frozenset({408, 480, 487})


def outbound_record(
    call_id: str, number: str, origin: Origin, crm: dict[str, Any] | None, now: datetime
) -> CallRecord:
    return CallRecord(
        call_id=call_id, direction="outbound", origin=origin, remote=Remote(number), started_at=now, crm=crm
    )


def inbound_record(
    call_id: str, sip_call_id: str | None, remote: Remote, origin: Origin, now: datetime
) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        direction="inbound",
        origin=origin,
        remote=remote,
        started_at=now,
        sip_call_id=sip_call_id,
    )


def finished(
    record: CallRecord,
    now: datetime,
    disposition: Disposition,
    hangup_by: Literal["local", "remote"],
    code: int | None = None,
    reason: str | None = None,
) -> CallRecord:
    return replace(
        record, ended_at=now, disposition=disposition, hangup_by=hangup_by, sip_code=code, reason=reason
    )


def outbound_failure(code: int | None) -> Disposition:
    """The disposition of an outbound call that ended before it was answered."""
    if code in BUSY_CODES:
        return "busy"
    if code in NO_ANSWER_CODES:
        return "no_answer"
    return "failed"


def call_event(event_type: EventType, record: CallRecord, now: datetime) -> Emit:
    return Emit(Event(type=event_type, ts=now, call=record))


def plain_event(event_type: EventType, now: datetime, **data: Any) -> Emit:
    return Emit(Event(type=event_type, ts=now, data=data))
