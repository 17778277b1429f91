"""``GatewayStore`` on PostgreSQL (psycopg 3): one database shared by several gateway instances.

The tables and the SQL are ``gateway.sql_store``'s, shared with the SQLite store. What sharing adds:

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

from contextlib import AbstractContextManager

import psycopg

from .calls import CallState, CrmRequest
from .sql_store import QUEUE, SqlStore, encode_request, schema
from .store import CallChange, Outboxes

_REQUESTS_MADE = """
CREATE TABLE IF NOT EXISTS requests_made (
    adapter TEXT NOT NULL,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (adapter, call_id, kind)
);
"""
_FIRST_TIME = (
    "INSERT INTO requests_made (adapter, call_id, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING 1"
)


class PostgresStore(SqlStore):
    """The store in the database ``dsn`` names (``postgresql://user@host:port/db``)."""

    paramstyle = "format"  # psycopg's %s
    idle_poll_s = 0.2  # other instances queue requests that this one's pump may have to send

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._working: set[str] = set()  # adapters whose outbox this instance works
        self._db = psycopg.connect(dsn, autocommit=True)
        with self._lock, self._db.transaction():
            # Instances starting together would race on CREATE TABLE IF NOT EXISTS.
            self._db.execute("SELECT pg_advisory_xact_lock(20260510)")
            self._db.execute(schema("postgresql") + _REQUESTS_MADE)

    def _transaction(self) -> AbstractContextManager[None]:
        return self._db.transaction()  # type: ignore[no-any-return]

    def update_call(self, call_id: str, change: CallChange) -> tuple[CallState, Outboxes] | None:
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (call_id,))
            result = change(self._load(call_id))
            if result is not None:
                self._save(*result)
        return result

    def _queue(self, adapter: str, request: CrmRequest) -> None:
        if self._run(_FIRST_TIME, (adapter, request.call.call_id, request.kind)).fetchone():
            self._run(QUEUE, (adapter, request.call.call_id, request.kind, encode_request(request)))

    def _may_work(self, adapter: str) -> bool:
        if adapter not in self._working:
            owner = self._db.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 1))", (f"outbox:{adapter}",)
            ).fetchone()
            if not (owner and owner[0]):
                return False
            self._working.add(adapter)
        return True
