"""The outbox pump (order, retry at the head, burial) and Bitrix24's STATUS_CODE mapping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.adapters.base import CrmAdapter, Delivered, Outcome, Refused, RetryLater
from gateway.adapters.bitrix24 import failed_reason, status_code
from gateway.calls import CallState, CrmRequest
from gateway.pump import OutboxPump
from gateway.sqlite_store import SqliteStore
from gateway.store import OutboxEntry

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def call(call_id: str, **changes: object) -> CallState:
    return CallState(call_id, "desk-1", "ended", "inbound", "pbx", "+4930", T0, "7").advanced(**changes)


class ScriptedCrm(CrmAdapter):
    """Answers from a script per (kind, call id); records what it was sent, in order."""

    name = "scripted"

    def __init__(self, script: dict[tuple[str, str], list[Outcome]]) -> None:
        self.script = script
        self.sent: list[tuple[str, str]] = []

    def deliver_one(self, entry: OutboxEntry) -> Outcome:
        key = (entry.request.kind, entry.request.call.call_id)
        self.sent.append(key)
        answers = self.script.get(key) or [Delivered()]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def test_pops_go_first_a_failing_head_blocks_and_refusals_are_buried(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    a, b = call("a"), call("b")
    store.record(a, {"scripted": [CrmRequest("register", a), CrmRequest("finish", a)]})
    store.record(b, {"scripted": [CrmRequest("register", b), CrmRequest("finish", b)]})
    crm = ScriptedCrm(
        {
            ("register", "b"): [RetryLater("down"), RetryLater("down"), Delivered()],
            ("finish", "a"): [Refused("Call is not found")],
        }
    )
    pump = OutboxPump(store, crm, min_backoff_s=0.01, max_backoff_s=0.02)
    pump.start()
    try:
        for _ in range(500):
            if not store.pending("scripted"):
                break
            threading.Event().wait(0.01)
    finally:
        pump.stop()
    assert crm.sent == [
        ("register", "a"),
        ("register", "b"),
        ("register", "b"),
        ("register", "b"),
        ("finish", "a"),
        ("finish", "b"),
    ]
    assert store.pending("scripted") == []
    assert [(e.request.kind, e.request.call.call_id, e.last_error) for e in store.buried("scripted")] == [
        ("finish", "a", "Call is not found")
    ]
    assert pump.retries == 2 and pump.refused == 1 and pump.delivered == 3


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"disposition": "answered", "answered_at": T0, "ended_at": T0 + timedelta(seconds=5)}, "200"),
        ({"disposition": "missed"}, "304"),
        ({"disposition": "busy", "sip_code": 486}, "486"),
        ({"disposition": "rejected", "sip_code": 603}, "603"),
        ({"disposition": "cancelled"}, "603-S"),
        ({"disposition": "no_answer", "direction": "outbound", "sip_code": 480}, "480"),
        ({"disposition": "no_answer", "direction": "inbound"}, "304"),
        ({"disposition": "failed", "sip_code": 404}, "404"),
        ({"disposition": "failed", "sip_code": 500}, "OTHER"),
        ({"disposition": "failed", "reason": "busy: the phone is in a call"}, "486"),
        ({"disposition": "failed", "reason": "not_registered: SIP is down"}, "480"),
        ({"disposition": "failed", "reason": "no_desk: no desk phone for Bitrix24 user 9"}, "480"),
        # forwarded by the phone (302): rang elsewhere, never a missed (304) card
        ({"disposition": "forwarded", "sip_code": 302, "reason": "Forwarded to 1003 (no-answer)"}, "OTHER"),
    ],
)
def test_status_code_is_explicit_and_bare(changes: dict[str, object], expected: str) -> None:
    assert status_code(call("c", **changes)) == expected


def test_failed_reason_says_why_and_is_empty_for_answered_calls() -> None:
    assert failed_reason(call("c", disposition="answered")) == ""
    reason = failed_reason(
        call("c", disposition="busy", sip_code=486, hangup_by="remote", reason="Busy Here")
    )
    assert reason == "Busy Here; SIP 486; hung up by remote"
    forwarded = call("c", disposition="forwarded", sip_code=302, hangup_by="local",
                     reason="Forwarded to 0170123456 (user-busy)")  # fmt: skip
    assert failed_reason(forwarded) == "Forwarded to 0170123456 (user-busy); SIP 302; hung up by local"
