"""``GatewayStore`` on SQLite (WAL, synchronous FULL): the default, one file in ``[storage] dir``."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

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
    started_at TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at);
CREATE TABLE IF NOT EXISTS outbox (
    adapter TEXT NOT NULL,
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_adapter ON outbox (adapter, seq);
CREATE TABLE IF NOT EXISTS buried (
    adapter TEXT NOT NULL,
    seq INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
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

FILE_NAME = "gateway.sqlite3"


def _encode(request: CrmRequest) -> str:
    return json.dumps({"kind": request.kind, "call": request.call.to_json(), "data": request.data})


def _decode(text: str) -> CrmRequest:
    obj = json.loads(text)
    return CrmRequest(obj["kind"], CallState.from_json(obj["call"]), obj.get("data") or {})


class SqliteStore(GatewayStore):
    """The store in ``<dir>/gateway.sqlite3``; the file is created 0600 (it holds OAuth tokens)."""

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILE_NAME
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def load_call(self, call_id: str) -> CallState | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return CallState.from_json(json.loads(row[0])) if row else None

    def record(self, state: CallState, outboxes: Mapping[str, Sequence[CrmRequest]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO calls (call_id, device_id, crm_user, direction, phase,"
                    " disposition, started_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        state.call_id,
                        state.device_id,
                        state.crm_user,
                        state.direction,
                        state.phase,
                        state.disposition,
                        state.started_at.isoformat(),
                        json.dumps(state.to_json()),
                    ),
                )
                self._db.executemany(
                    "INSERT INTO outbox (adapter, call_id, kind, request) VALUES (?, ?, ?, ?)",
                    [
                        (adapter, request.call.call_id, request.kind, _encode(request))
                        for adapter, requests in outboxes.items()
                        for request in requests
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def pending(self, adapter: str, limit: int = 50) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, request, attempts, last_error FROM outbox WHERE adapter = ?"
                " ORDER BY seq LIMIT ?",
                (adapter, limit),
            ).fetchall()
        return [OutboxEntry(adapter, int(s), _decode(r), int(a), str(e)) for s, r, a, e in rows]

    def delete(self, adapter: str, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE adapter = ? AND seq = ?", (adapter, seq))

    def defer(self, adapter: str, seq: int, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE adapter = ? AND seq = ?",
                (error[:500], adapter, seq),
            )

    def bury(self, adapter: str, seq: int, error: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO buried SELECT adapter, seq, call_id, kind, request, attempts + 1, ?"
                " FROM outbox WHERE adapter = ? AND seq = ?",
                (error[:500], adapter, seq),
            )
            self._db.execute("DELETE FROM outbox WHERE adapter = ? AND seq = ?", (adapter, seq))
            self._db.execute("COMMIT")

    def buried(self, adapter: str) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, request, attempts, last_error FROM buried WHERE adapter = ? ORDER BY seq",
                (adapter,),
            ).fetchall()
        return [OutboxEntry(adapter, int(s), _decode(r), int(a), str(e)) for s, r, a, e in rows]

    def get(self, scope: str, key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM adapter_values WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
        return str(row[0]) if row else None

    def put(self, scope: str, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO adapter_values (scope, key, value) VALUES (?, ?, ?)",
                (scope, key, value),
            )

    def calls(self, since: datetime | None = None, until: datetime | None = None) -> list[CallState]:
        query, args = "SELECT state FROM calls WHERE 1=1", []
        if since is not None:
            query += " AND started_at >= ?"
            args.append(since.isoformat())
        if until is not None:
            query += " AND started_at < ?"
            args.append(until.isoformat())
        with self._lock:
            rows = self._db.execute(query + " ORDER BY started_at", args).fetchall()
        return [CallState.from_json(json.loads(r[0])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
