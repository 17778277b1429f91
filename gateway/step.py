"""Which CRM requests an event causes: a pure function over one call, written as a table.

``step(state, fact) -> (state, requests)``. ``state`` is None for a call the gateway has not seen.
Redelivered and late events (QoS 1 is at least once) never move a call backwards, so they cause
nothing. A desk without a CRM user and a call between two of our extensions are recorded as
``skipped`` and never reach a CRM; a call the CRM started itself is always finished there (its card
exists already), whoever sits at the desk.

| fact                       | call unknown                      | ringing        | answered | ended |
|----------------------------|-----------------------------------|----------------|----------|-------|
| call.incoming              | ringing: register, lookup_caller  | -              | -        | -     |
| call.outgoing              | ringing: register                 | -              | -        | -     |
| call.ringing               | ringing: register                 | -              | -        | -     |
| call.answered              | answered: register, answered      | answered: answered | -    | -     |
| call.ended                 | ended: register, finish           | ended: finish  | ended: finish | - |
| click_to_call.expired/cancelled, dial.refused | ended: finish  | -              | -        | -     |

``register`` is left out for calls that the CRM started itself (origin ``crm``): the CRM already
has its call (Bitrix24 registered it before posting ``ONEXTERNALCALLSTART``).
"""

from __future__ import annotations

from .calls import PHASE_ORDER, CallFact, CallState, CrmRequest, Phase

_PHASE_OF_FACT: dict[str, Phase] = {
    "call.incoming": "ringing",
    "call.outgoing": "ringing",
    "call.ringing": "ringing",
    "call.answered": "answered",
    "call.ended": "ended",
    "click_to_call.expired": "ended",
    "click_to_call.cancelled": "ended",
    "dial.refused": "ended",
}

# Facts about a click-to-call that never became a call: the CRM only needs its own card finished.
_DIAL_ONLY = ("click_to_call.expired", "click_to_call.cancelled", "dial.refused")

# The requests for a call moving from one phase to another (None: the gateway had not seen it).
_TRANSITIONS: dict[tuple[Phase | None, Phase], tuple[str, ...]] = {
    (None, "ringing"): ("register",),
    (None, "answered"): ("register", "answered"),
    (None, "ended"): ("register", "finish"),
    ("ringing", "answered"): ("answered",),
    ("ringing", "ended"): ("finish",),
    ("answered", "ended"): ("finish",),
}


def step(state: CallState | None, fact: CallFact) -> tuple[CallState | None, list[CrmRequest]]:
    target = _PHASE_OF_FACT[fact.type]
    current: Phase | None = state.phase if state is not None else None
    if current is not None and PHASE_ORDER[target] <= PHASE_ORDER[current]:
        return state, []  # a redelivered or late event
    new = _merge(state, fact, target)
    if new.skipped:
        return new, []
    kinds = list(_TRANSITIONS[(current, target)])
    if new.origin == "crm" and "register" in kinds:
        kinds.remove("register")
    data = {"dial_only": True, "refused": fact.type == "dial.refused"} if fact.type in _DIAL_ONLY else {}
    requests = [CrmRequest(kind, new, data) for kind in kinds]  # type: ignore[arg-type]
    if fact.type == "call.incoming" and state is None:
        requests.append(CrmRequest("lookup_caller", new))
    return new, requests


def _merge(state: CallState | None, fact: CallFact, phase: Phase) -> CallState:
    """The call with what the fact adds; the first fact decides whether the call is skipped."""
    reported = fact.call
    if state is None:
        return reported.advanced(
            phase=phase,
            crm_user=fact.desk.crm_user if fact.desk else "",
            extension=fact.desk.extension if fact.desk else "",
            skipped=_skip_reason(fact),
        )
    return state.advanced(
        phase=phase,
        answered_at=reported.answered_at or state.answered_at,
        ended_at=reported.ended_at or state.ended_at,
        disposition=reported.disposition or state.disposition,
        sip_code=reported.sip_code if reported.sip_code is not None else state.sip_code,
        reason=reported.reason or state.reason,
        hangup_by=reported.hangup_by or state.hangup_by,
        crm=reported.crm if reported.crm is not None else state.crm,
    )


def _skip_reason(fact: CallFact) -> str | None:
    if fact.call.origin == "crm":
        return None
    if fact.desk is None:
        return "desk not in the inventory"
    if not fact.desk.crm_user:
        return "desk without a CRM user"
    if fact.internal:
        return "internal call"
    return None
