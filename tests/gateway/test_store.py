"""The SQLite store: atomic state + outbox, order, deferral, burial, values, records; 0600 file."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.calls import CallState, CrmRequest
from gateway.sqlite_store import SqliteStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def call(call_id: str, minutes: int = 0) -> CallState:
    return CallState(
        call_id, "desk-1", "ringing", "inbound", "pbx", "+4930", T0 + timedelta(minutes=minutes), "7"
    )


def test_outbox_keeps_order_survives_reopen_and_forgets_only_on_delete(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    a, b = call("c-1"), call("c-2", 1)
    store.record(a, {"b24": [CrmRequest("register", a)], "hook": []})
    store.record(b, {"b24": [CrmRequest("register", b)], "hook": [CrmRequest("register", b)]})
    ended = a.advanced(phase="ended", ended_at=T0 + timedelta(seconds=5), disposition="missed")
    store.record(ended, {"b24": [CrmRequest("finish", ended)]})
    store.close()

    store = SqliteStore(tmp_path)
    pending = store.pending("b24")
    assert [(e.request.kind, e.request.call.call_id) for e in pending] == [
        ("register", "c-1"),
        ("register", "c-2"),
        ("finish", "c-1"),
    ]
    assert pending[2].request.call == ended
    store.defer("b24", pending[0].seq, "connection refused")
    assert store.pending("b24")[0].attempts == 1
    store.delete("b24", pending[0].seq)
    store.bury("b24", pending[1].seq, "Call is not found")
    assert [e.request.kind for e in store.pending("b24")] == ["finish"]
    assert [e.last_error for e in store.buried("b24")] == ["Call is not found"]
    assert len(store.pending("hook")) == 1
    assert store.load_call("c-1") == ended
    assert [c.call_id for c in store.calls(since=T0 + timedelta(seconds=30))] == ["c-2"]
    store.put("b24", "call:c-1", "externalCall.9")
    assert store.get("b24", "call:c-1") == "externalCall.9" and store.get("b24", "nope") is None
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    store.close()
