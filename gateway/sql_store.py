"""``GatewayStore`` in SQL, written once for SQLite and PostgreSQL.

Every statement is written here with ``?`` placeholders (``qmark``) and handed to the database in its
own parameter style (``format`` is ``%s`` for psycopg). Both run the same SQL: upserts are
``INSERT ... ON CONFLICT`` (SQLite 3.24+), and the tables differ only in column types (``DIALECTS``).

A subclass opens the connection (``_db``, with autocommit: every statement outside ``_transaction``
is its own) and says how a transaction begins and ends, how a time and a JSON column travel, and may
change how a request is queued (``_queue``) and which outbox it may work (``_may_work``).
"""

from __future__ import annotations

import json
import threading
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from .calls import CallState, CrmRequest
from .store import GatewayStore, OutboxEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    crm_user TEXT NOT NULL,
    direction TEXT NOT NULL,
    phase TEXT NOT NULL,
    disposition TEXT,
    started_at {time} NOT NULL,
    state {json} NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at);
CREATE TABLE IF NOT EXISTS outbox (
    adapter TEXT NOT NULL,
    seq {serial},
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    request {json} NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_adapter ON outbox (adapter, seq);
CREATE TABLE IF NOT EXISTS buried (
    adapter TEXT NOT NULL,
    seq {bigint} NOT NULL,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    request {json} NOT NULL,
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

DIALECTS = {
    "sqlite": {
        "time": "TEXT",
        "json": "TEXT",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "bigint": "INTEGER",
    },
    "postgresql": {
        "time": "TIMESTAMPTZ",
        "json": "JSONB",
        "serial": "BIGSERIAL PRIMARY KEY",
        "bigint": "BIGINT",
    },
}


def schema(dialect: str) -> str:
    return _SCHEMA.format(**DIALECTS[dialect])


SAVE_CALL = (
    "INSERT INTO calls (call_id, device_id, crm_user, direction, phase, disposition, started_at, state)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO UPDATE SET device_id = excluded.device_id,"
    " crm_user = excluded.crm_user, direction = excluded.direction, phase = excluded.phase,"
    " disposition = excluded.disposition, started_at = excluded.started_at, state = excluded.state"
)
LOAD_CALL = "SELECT state FROM calls WHERE call_id = ?"
QUEUE = "INSERT INTO outbox (adapter, call_id, kind, request) VALUES (?, ?, ?, ?)"
PENDING = "SELECT seq, request, attempts, last_error FROM outbox WHERE adapter = ? ORDER BY seq LIMIT ?"
DELETE = "DELETE FROM outbox WHERE adapter = ? AND seq = ?"
DEFER = "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE adapter = ? AND seq = ?"
BURY = (
    "INSERT INTO buried SELECT adapter, seq, call_id, kind, request, attempts + 1, ?"
    " FROM outbox WHERE adapter = ? AND seq = ? ON CONFLICT DO NOTHING"
)
BURIED = "SELECT seq, request, attempts, last_error FROM buried WHERE adapter = ? ORDER BY seq"
GET = "SELECT value FROM adapter_values WHERE scope = ? AND key = ?"
PUT = (
    "INSERT INTO adapter_values (scope, key, value) VALUES (?, ?, ?)"
    " ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value"
)
CALLS = "SELECT state FROM calls WHERE TRUE"
CALLS_SINCE = " AND started_at >= ?"
CALLS_UNTIL = " AND started_at < ?"
CALLS_ORDER = " ORDER BY started_at"


def in_paramstyle(sql: str, paramstyle: str) -> str:
    """``sql`` with its ``?`` placeholders in the DB-API ``paramstyle`` (``qmark`` or ``format``)."""
    if paramstyle == "qmark":
        return sql
    if paramstyle == "format":
        return sql.replace("%", "%%").replace("?", "%s")
    raise ValueError(f"unsupported paramstyle {paramstyle!r}")


def encode_request(request: CrmRequest) -> str:
    return json.dumps({"kind": request.kind, "call": request.call.to_json(), "data": request.data})


def decode_request(obj: dict[str, Any]) -> CrmRequest:
    return CrmRequest(obj["kind"], CallState.from_json(obj["call"]), obj.get("data") or {})


class SqlStore(GatewayStore):
    """The store's methods over one DB-API connection; see the module's docstring for the hooks."""

    paramstyle = "qmark"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db: Any = None

    # --- what a database does its own way ------------------------------------------------------

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """One transaction (the caller holds ``_lock``)."""

    def _time(self, value: datetime) -> Any:
        return value

    def _json(self, value: Any) -> Any:
        """A JSON column's value as read: text (SQLite) or already decoded (PostgreSQL's JSONB)."""
        return json.loads(value) if isinstance(value, str | bytes) else value

    def _queue(self, adapter: str, request: CrmRequest) -> None:
        self._run(QUEUE, (adapter, request.call.call_id, request.kind, encode_request(request)))

    def _may_work(self, adapter: str) -> bool:
        """Whether this instance works ``adapter``'s outbox (the caller holds ``_lock``)."""
        return True

    # --- the interface ---------------------------------------------------------------------------

    def _run(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._db.execute(in_paramstyle(sql, self.paramstyle), args)

    def _save(self, state: CallState, outboxes: Mapping[str, Sequence[CrmRequest]]) -> None:
        self._run(
            SAVE_CALL,
            (
                state.call_id,
                state.device_id,
                state.crm_user,
                state.direction,
                state.phase,
                state.disposition,
                self._time(state.started_at),
                json.dumps(state.to_json()),
            ),
        )
        for adapter, requests in outboxes.items():
            for request in requests:
                self._queue(adapter, request)

    def _load(self, call_id: str) -> CallState | None:
        row = self._run(LOAD_CALL, (call_id,)).fetchone()
        return CallState.from_json(self._json(row[0])) if row else None

    def load_call(self, call_id: str) -> CallState | None:
        with self._lock:
            return self._load(call_id)

    def record(self, state: CallState, outboxes: Mapping[str, Sequence[CrmRequest]]) -> None:
        with self._lock, self._transaction():
            self._save(state, outboxes)

    def _entries(self, adapter: str, rows: Iterator[Any]) -> list[OutboxEntry]:
        return [
            OutboxEntry(adapter, int(s), decode_request(self._json(r)), int(a), str(e)) for s, r, a, e in rows
        ]

    def pending(self, adapter: str, limit: int = 50) -> list[OutboxEntry]:
        with self._lock:
            if not self._may_work(adapter):
                return []
            rows = self._run(PENDING, (adapter, limit)).fetchall()
        return self._entries(adapter, rows)

    def delete(self, adapter: str, seq: int) -> None:
        with self._lock:
            self._run(DELETE, (adapter, seq))

    def defer(self, adapter: str, seq: int, error: str) -> None:
        with self._lock:
            self._run(DEFER, (error[:500], adapter, seq))

    def bury(self, adapter: str, seq: int, error: str) -> None:
        with self._lock, self._transaction():
            self._run(BURY, (error[:500], adapter, seq))
            self._run(DELETE, (adapter, seq))

    def settle(
        self,
        adapter: str,
        delivered: Sequence[int] = (),
        deferred: Sequence[tuple[int, str]] = (),
        buried: Sequence[tuple[int, str]] = (),
    ) -> None:
        with self._lock, self._transaction():
            for seq in delivered:
                self._run(DELETE, (adapter, seq))
            for seq, error in deferred:
                self._run(DEFER, (error[:500], adapter, seq))
            for seq, error in buried:
                self._run(BURY, (error[:500], adapter, seq))
                self._run(DELETE, (adapter, seq))

    def put_many(self, scope: str, values: Mapping[str, str]) -> None:
        with self._lock, self._transaction():
            for key, value in values.items():
                self._run(PUT, (scope, key, value))

    def buried(self, adapter: str) -> list[OutboxEntry]:
        with self._lock:
            rows = self._run(BURIED, (adapter,)).fetchall()
        return self._entries(adapter, rows)

    def get(self, scope: str, key: str) -> str | None:
        with self._lock:
            row = self._run(GET, (scope, key)).fetchone()
        return str(row[0]) if row else None

    def put(self, scope: str, key: str, value: str) -> None:
        with self._lock:
            self._run(PUT, (scope, key, value))

    def calls(self, since: datetime | None = None, until: datetime | None = None) -> list[CallState]:
        query, args = CALLS, []
        if since is not None:
            query += CALLS_SINCE
            args.append(self._time(since))
        if until is not None:
            query += CALLS_UNTIL
            args.append(self._time(until))
        with self._lock:
            rows = self._run(query + CALLS_ORDER, args).fetchall()
        return [CallState.from_json(self._json(r[0])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
