"""Events: typed, versioned facts the phone reports (MQTT contract version 1).

Events are named as past facts. The MQTT JSON is one encoding of these objects, produced in
``crm_bridge``'s codec; nothing else formats events. ``event_id`` is fixed when the event is made,
``seq`` is given by the durable outbox when the event is stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

SCHEMA_VERSION = 1

EventType = Literal[
    "hook.offhook",
    "hook.onhook",
    "registration.changed",
    "click_to_call.alerting",
    "click_to_call.expired",
    "click_to_call.cancelled",
    "call.incoming",
    "call.outgoing",
    "call.ringing",
    "call.answered",
    "call.ended",
]

Direction = Literal["inbound", "outbound"]
Disposition = Literal[
    "answered", "missed", "busy", "rejected", "cancelled", "no_answer", "failed", "forwarded"
]
ForwardReason = Literal["unconditional", "user-busy", "no-answer"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Remote:
    number: str
    name: str | None = None


@dataclass(frozen=True)
class Transfer:
    """The other call of a transfer: the one this call took over from, or was handed over to."""

    call_id: str
    remote: Remote


@dataclass(frozen=True)
class Forwarded:
    """Where the phone sent a call it did not take (a 302 the PBX follows), and why (RFC 5806)."""

    number: str
    reason: ForwardReason


@dataclass(frozen=True)
class CallRecord:
    """Everything a CRM needs for its call card; complete in ``call.ended``."""

    call_id: str
    direction: Direction
    origin: Literal["manual", "crm", "pbx"]
    remote: Remote
    started_at: datetime
    sip_call_id: str | None = None
    crm: dict[str, Any] | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    disposition: Disposition | None = None
    sip_code: int | None = None
    reason: str | None = None
    hangup_by: Literal["local", "remote"] | None = None
    transferred_from: Transfer | None = None  # this call replaced that one (the far end transferred us)
    transferred_to: Transfer | None = None  # the far end transferred this call: our call to the target
    forwarded_to: Forwarded | None = None  # the phone redirected this incoming call (disposition forwarded)

    @property
    def ring_s(self) -> float | None:
        end = self.answered_at or self.ended_at
        return None if end is None else round((end - self.started_at).total_seconds(), 3)

    @property
    def talk_s(self) -> float | None:
        if self.answered_at is None:
            return 0.0 if self.ended_at is not None else None
        if self.ended_at is None:
            return None
        return round((self.ended_at - self.answered_at).total_seconds(), 3)


@dataclass(frozen=True)
class Event:
    type: EventType
    ts: datetime = field(default_factory=utc_now)
    call: CallRecord | None = None
    data: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    v: int = SCHEMA_VERSION
