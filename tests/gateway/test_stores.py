"""The store interface on both implementations: the same tests on SQLite and on PostgreSQL, and what
only a shared PostgreSQL store must do (several instances: one request per call and kind, one instance
working an adapter's outbox at a time, taken over when its connection ends)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from gateway.calls import CallFact, CallState, CrmRequest, Desk
from gateway.config import StatsConfig
from gateway.desks import Desks
from gateway.postgres_store import PostgresStore
from gateway.sqlite_store import SqliteStore
from gateway.stats import compute, to_json
from gateway.stats.source import report_from_store
from gateway.step import step
from gateway.store import GatewayStore
from lab.stats_month import fill_store, month_of_calls

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
Opener = Callable[[], GatewayStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the store anew (a restart sees what was saved)."""
    opened: list[GatewayStore] = []

    def open_sqlite() -> GatewayStore:
        opened.append(SqliteStore(tmp_path))
        return opened[-1]

    if request.param == "sqlite":
        yield open_sqlite
    else:
        dsn = request.getfixturevalue("postgres_dsn")

        def open_postgres() -> GatewayStore:
            opened.append(PostgresStore(dsn))
            return opened[-1]

        yield open_postgres
    for store in opened:
        with contextlib.suppress(Exception):
            store.close()


def call(call_id: str, minutes: int = 0) -> CallState:
    return CallState(
        call_id, "desk-1", "ringing", "inbound", "pbx", "+4930", T0 + timedelta(minutes=minutes), "7"
    )


def test_outbox_order_deferral_burial_values_and_records(opener: Opener) -> None:
    store = opener()
    a, b = call("c-1"), call("c-2", 1)
    store.record(a, {"b24": [CrmRequest("register", a)], "hook": []})
    store.record(b, {"b24": [CrmRequest("register", b)], "hook": [CrmRequest("register", b)]})
    ended = a.advanced(phase="ended", ended_at=T0 + timedelta(seconds=5), disposition="missed")
    store.record(ended, {"b24": [CrmRequest("finish", ended)]})
    store.close()

    store = opener()
    pending = store.pending("b24")
    assert [(e.request.kind, e.request.call.call_id) for e in pending] == [
        ("register", "c-1"),
        ("register", "c-2"),
        ("finish", "c-1"),
    ]
    assert pending[2].request.call == ended
    store.defer("b24", pending[0].seq, "connection refused")
    assert store.pending("b24")[0].attempts == 1
    assert store.pending("b24")[0].last_error == "connection refused"
    store.delete("b24", pending[0].seq)
    store.bury("b24", pending[1].seq, "Call is not found")
    assert [e.request.kind for e in store.pending("b24")] == ["finish"]
    assert [e.last_error for e in store.buried("b24")] == ["Call is not found"]
    assert len(store.pending("hook")) == 1
    assert store.load_call("c-1") == ended and store.load_call("nope") is None
    assert [c.call_id for c in store.calls(since=T0 + timedelta(seconds=30))] == ["c-2"]
    assert [c.call_id for c in store.calls(until=T0 + timedelta(seconds=30))] == ["c-1"]
    store.put("b24", "call:c-1", "externalCall.9")
    store.put("b24", "call:c-1", "externalCall.10")
    assert store.get("b24", "call:c-1") == "externalCall.10" and store.get("b24", "nope") is None


def test_update_call_saves_what_the_change_computes(opener: Opener) -> None:
    store = opener()
    desk = Desk("desk-1", "201", "7")
    fact = CallFact("call.incoming", call("c-9"), desk)

    def change(state: CallState | None):  # type: ignore[no-untyped-def]
        new, requests = step(state, fact)
        if new is None or new is state:
            return None
        return new, {"b24": [r for r in requests if r.queued]}

    assert store.update_call("c-9", change) is not None
    assert store.update_call("c-9", change) is None  # the redelivered event changes nothing
    assert [e.request.kind for e in store.pending("b24")] == ["register"]
    assert store.load_call("c-9").crm_user == "7"  # type: ignore[union-attr]


def test_the_month_reports_the_same_on_both_stores(opener: Opener, tmp_path: Path) -> None:
    store = opener()
    _, records = month_of_calls()
    fill_store(store, records)
    desks = Desks(())
    stats = StatsConfig(time_zone="Europe/Berlin", accountants="apart")
    got = to_json(report_from_store(store, desks, stats, date(2026, 5, 4), date(2026, 5, 17), "week"))
    expected = to_json(
        compute(records, date(2026, 5, 4), date(2026, 5, 17), "Europe/Berlin", "week", "apart")
    )
    assert got == expected and len(got["rows"]) == 12


# --- several instances on one PostgreSQL store -----------------------------------------------------


def test_two_instances_racing_on_one_call_queue_each_request_once(postgres_dsn: str) -> None:
    instances = [PostgresStore(postgres_dsn) for _ in range(4)]
    desk = Desk("desk-1", "201", "7")
    start = call("race")
    facts = [
        CallFact("call.incoming", start, desk),
        CallFact("call.answered", start.advanced(answered_at=T0 + timedelta(seconds=3)), desk),
        CallFact(
            "call.ended",
            start.advanced(
                answered_at=T0 + timedelta(seconds=3),
                ended_at=T0 + timedelta(seconds=9),
                disposition="answered",
            ),
            desk,
        ),
    ]
    barrier = threading.Barrier(len(instances))

    def deliver(store: PostgresStore) -> None:
        # Every instance gets every event (a redelivery after a failover, at worst), all at once.
        barrier.wait(10)
        for fact in facts:

            def change(state: CallState | None, fact: CallFact = fact):  # type: ignore[no-untyped-def]
                new, requests = step(state, fact)
                if new is None or new is state:
                    return None
                return new, {"b24": [r for r in requests if r.queued]}

            store.update_call("race", change)

    threads = [threading.Thread(target=deliver, args=(s,)) for s in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    kinds = sorted(e.request.kind for e in instances[0].pending("b24"))
    assert kinds == ["answered", "finish", "register"]
    assert instances[1].load_call("race").phase == "ended"  # type: ignore[union-attr]
    # Even a plain record() of an old request cannot queue it again.
    instances[2].record(start, {"b24": [CrmRequest("register", start)]})
    assert sorted(e.request.kind for e in instances[0].pending("b24")) == kinds
    for store in instances:
        store.close()


def test_one_instance_works_an_outbox_until_its_connection_ends(postgres_dsn: str) -> None:
    first, second = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    a = call("c-1")
    first.record(a, {"b24": [CrmRequest("register", a)]})
    assert [e.request.call.call_id for e in first.pending("b24")] == ["c-1"]
    assert second.pending("b24") == []  # first works b24's outbox
    assert [e.request.call.call_id for e in second.pending("hook")] == []
    first.close()  # as its process dying closes the connection
    # The server ends the closed session (and frees its lock) a moment after close() returns; the
    # pump asks again on its next round, so does the test.
    deadline = time.monotonic() + 10
    while not (taken := second.pending("b24")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e.request.call.call_id for e in taken] == ["c-1"]
    second.close()
