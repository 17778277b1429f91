"""The gateway's vocabulary: what it knows about a call, the facts it reacts to, what it asks a CRM.

``CallState`` is also the call record kept for statistics: desk, CRM user, direction, disposition,
times and the remote number, complete once the call has ended.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

Phase = Literal["ringing", "answered", "ended"]
PHASE_ORDER: dict[str, int] = {"ringing": 1, "answered": 2, "ended": 3}

FactType = Literal[
    "call.incoming",
    "call.outgoing",
    "call.ringing",
    "call.answered",
    "call.ended",
    "click_to_call.expired",
    "click_to_call.cancelled",
    "dial.refused",
]

# What a CRM adapter is asked to do. ``lookup_caller`` is answered at once and never queued; the rest
# wait in the adapter's durable outbox until the CRM has accepted them.
RequestKind = Literal["register", "answered", "finish", "lookup_caller"]
QUEUED_KINDS: frozenset[str] = frozenset({"register", "answered", "finish"})


@dataclass(frozen=True)
class Desk:
    """One phone of the office inventory: its device id, extension and the CRM user sitting there."""

    device_id: str
    extension: str
    crm_user: str = ""
    name: str = ""


@dataclass(frozen=True)
class CallState:
    """One call as the gateway knows it; ``skipped`` says why the CRMs never hear of it."""

    call_id: str
    device_id: str
    phase: Phase
    direction: Literal["inbound", "outbound"]
    origin: Literal["manual", "crm", "pbx"]
    remote_number: str
    started_at: datetime
    crm_user: str = ""
    extension: str = ""
    remote_name: str | None = None
    crm: dict[str, Any] | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    disposition: str | None = None
    sip_code: int | None = None
    reason: str | None = None
    hangup_by: str | None = None
    skipped: str | None = None

    @property
    def ring_s(self) -> float | None:
        end = self.answered_at or self.ended_at
        return None if end is None else round((end - self.started_at).total_seconds(), 3)

    @property
    def talk_s(self) -> float:
        if self.answered_at is None or self.ended_at is None:
            return 0.0
        return round((self.ended_at - self.answered_at).total_seconds(), 3)

    def advanced(self, **changes: Any) -> CallState:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallState:
        values = dict(data)
        for key in ("started_at", "answered_at", "ended_at"):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)


@dataclass(frozen=True)
class CallFact:
    """Something that happened to a call, in the gateway's words.

    ``call`` is the call as the event reports it (a fresh ``CallState`` without history); ``desk`` is
    the phone's inventory row (None: not in the inventory); ``internal`` says the remote number is
    one of our own extensions.
    """

    type: FactType
    call: CallState
    desk: Desk | None
    internal: bool = False
    event_id: str = ""


@dataclass(frozen=True)
class CrmRequest:
    """One request for every CRM adapter; ``call`` is the call as it was when the request was made."""

    kind: RequestKind
    call: CallState
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def queued(self) -> bool:
        return self.kind in QUEUED_KINDS
