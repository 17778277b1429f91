"""``GatewayStore`` on PostgreSQL (psycopg 3): one database shared by several gateway instances.

The tables are those of the SQLite store. What sharing adds:

- ``update_call`` takes a transaction-scoped advisory lock on the call id, then loads, changes and saves
  the call: two instances handling events of one call (a redelivery after a failover, or two events of
  one call given to two members of the shared subscription) run one after the other;
- ``requests_made`` keeps a unique key (adapter, call, kind) for every request ever queued, so a
  request is queued at most once per call even if two instances decide on it: the second insert
  conflicts and queues nothing;
- one adapter's outbox is worked by one instance at a time, so a request is never sent by two: the
  first ``pending`` of an instance takes a session advisory lock on the adapter, and an instance
  without it sees an empty outbox. The lock ends with its connection, so when that instance dies (or
  is SIGKILLed) the next instance whose pump looks (within its idle poll of 5 s) takes the work over,
  in ``seq`` order.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime

import psycopg

from .calls import CallState, CrmRequest
from .store import CallChange, GatewayStore, OutboxEntry, Outboxes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    crm_user TEXT NOT NULL,
    direction TEXT NOT NULL,
    phase TEXT NOT NULL,
    disposition TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    state JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at);
CREATE TABLE IF NOT EXISTS outbox (
    adapter TEXT NOT NULL,
    seq BIGSERIAL PRIMARY KEY,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    request JSONB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_adapter ON outbox (adapter, seq);
CREATE TABLE IF NOT EXISTS requests_made (
    adapter TEXT NOT NULL,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (adapter, call_id, kind)
);
CREATE TABLE IF NOT EXISTS buried (
    adapter TEXT NOT NULL,
    seq BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    request JSONB NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    PRIMARY KEY (adapter, seq)
);
CREATE TABLE IF NOT EXISTS adapter_values (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
"""


def _encode(request: CrmRequest) -> str:
    return json.dumps({"kind": request.kind, "call": request.call.to_json(), "data": request.data})


def _decode(obj: dict) -> CrmRequest:  # type: ignore[type-arg]
    return CrmRequest(obj["kind"], CallState.from_json(obj["call"]), obj.get("data") or {})


class PostgresStore(GatewayStore):
    """The store in the database ``dsn`` names (``postgresql://user@host:port/db``)."""

    idle_poll_s = 0.2  # other instances queue requests that this one's pump may have to send

    def __init__(self, dsn: str) -> None:
        self._lock = threading.Lock()
        self._working: set[str] = set()  # adapters whose outbox this instance works
        self._db = psycopg.connect(dsn, autocommit=True)
        with self._lock, self._db.transaction():
            # Instances starting together would race on CREATE TABLE IF NOT EXISTS.
            self._db.execute("SELECT pg_advisory_xact_lock(20260510)")
            self._db.execute(_SCHEMA)

    def load_call(self, call_id: str) -> CallState | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM calls WHERE call_id = %s", (call_id,)).fetchone()
        return CallState.from_json(row[0]) if row else None

    def update_call(self, call_id: str, change: CallChange) -> tuple[CallState, Outboxes] | None:
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (call_id,))
            row = self._db.execute("SELECT state FROM calls WHERE call_id = %s", (call_id,)).fetchone()
            result = change(CallState.from_json(row[0]) if row else None)
            if result is not None:
                self._write(*result)
        return result

    def record(self, state: CallState, outboxes: Mapping[str, Sequence[CrmRequest]]) -> None:
        with self._lock, self._db.transaction():
            self._write(state, outboxes)

    def _write(self, state: CallState, outboxes: Mapping[str, Sequence[CrmRequest]]) -> None:
        self._db.execute(
            "INSERT INTO calls (call_id, device_id, crm_user, direction, phase, disposition, started_at,"
            " state) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (call_id) DO UPDATE SET"
            " device_id = EXCLUDED.device_id, crm_user = EXCLUDED.crm_user, direction = EXCLUDED.direction,"
            " phase = EXCLUDED.phase, disposition = EXCLUDED.disposition, started_at = EXCLUDED.started_at,"
            " state = EXCLUDED.state",
            (
                state.call_id,
                state.device_id,
                state.crm_user,
                state.direction,
                state.phase,
                state.disposition,
                state.started_at,
                json.dumps(state.to_json()),
            ),
        )
        for adapter, requests in outboxes.items():
            for request in requests:
                first = self._db.execute(
                    "INSERT INTO requests_made (adapter, call_id, kind) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    (adapter, request.call.call_id, request.kind),
                ).fetchone()
                if first:
                    self._db.execute(
                        "INSERT INTO outbox (adapter, call_id, kind, request) VALUES (%s, %s, %s, %s)",
                        (adapter, request.call.call_id, request.kind, _encode(request)),
                    )

    def pending(self, adapter: str, limit: int = 50) -> list[OutboxEntry]:
        with self._lock:
            if adapter not in self._working:
                owner = self._db.execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 1))", (f"outbox:{adapter}",)
                ).fetchone()
                if not (owner and owner[0]):
                    return []
                self._working.add(adapter)
            rows = self._db.execute(
                "SELECT seq, request, attempts, last_error FROM outbox WHERE adapter = %s"
                " ORDER BY seq LIMIT %s",
                (adapter, limit),
            ).fetchall()
        return [OutboxEntry(adapter, int(s), _decode(r), int(a), str(e)) for s, r, a, e in rows]

    def delete(self, adapter: str, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE adapter = %s AND seq = %s", (adapter, seq))

    def defer(self, adapter: str, seq: int, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = %s WHERE adapter = %s AND seq = %s",
                (error[:500], adapter, seq),
            )

    def bury(self, adapter: str, seq: int, error: str) -> None:
        with self._lock, self._db.transaction():
            self._db.execute(
                "INSERT INTO buried SELECT adapter, seq, call_id, kind, request, attempts + 1, %s"
                " FROM outbox WHERE adapter = %s AND seq = %s ON CONFLICT DO NOTHING",
                (error[:500], adapter, seq),
            )
            self._db.execute("DELETE FROM outbox WHERE adapter = %s AND seq = %s", (adapter, seq))

    def buried(self, adapter: str) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, request, attempts, last_error FROM buried WHERE adapter = %s ORDER BY seq",
                (adapter,),
            ).fetchall()
        return [OutboxEntry(adapter, int(s), _decode(r), int(a), str(e)) for s, r, a, e in rows]

    def get(self, scope: str, key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM adapter_values WHERE scope = %s AND key = %s", (scope, key)
            ).fetchone()
        return str(row[0]) if row else None

    def put(self, scope: str, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO adapter_values (scope, key, value) VALUES (%s, %s, %s)"
                " ON CONFLICT (scope, key) DO UPDATE SET value = EXCLUDED.value",
                (scope, key, value),
            )

    def calls(self, since: datetime | None = None, until: datetime | None = None) -> list[CallState]:
        query, args = "SELECT state FROM calls WHERE TRUE", []
        if since is not None:
            query += " AND started_at >= %s"
            args.append(since)
        if until is not None:
            query += " AND started_at < %s"
            args.append(until)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY started_at", args).fetchall()
        return [CallState.from_json(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
