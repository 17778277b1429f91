"""Durable outbox: events wait on disk (SQLite, WAL) until the broker has acknowledged them.

``append`` gives each event the device's next ``seq`` (monotonic, never reused, kept across restarts)
and stores its encoded JSON in the same transaction. ``pending`` reads them back in ``seq`` order;
``ack`` deletes one. All methods are thread-safe.

Bound policy, when ``max_events`` are waiting and another arrives: the oldest waiting event that is
not a ``call.ended`` is dropped; only if every waiting event is a ``call.ended`` is the oldest of those
dropped. ``call.ended`` carries the complete call record, so a CRM can still build its call cards and
statistics from what is kept. Every drop is counted in ``dropped`` (persisted, survives restarts) and
shows to consumers as a gap in ``seq``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from firmware.events import Event

from .codec import encode_event

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS device (
    device_id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    dropped INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (device_id, seq)
);
"""
_PROTECTED_TYPE = "call.ended"
_DROP_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True)
class PendingEvent:
    seq: int
    type: str
    payload: bytes


class Outbox:
    """The on-disk queue of one device's events."""

    def __init__(self, path: str | Path, device_id: str, max_events: int = 10_000) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.device_id = device_id
        self.max_events = max_events
        self._lock = threading.Lock()
        self._last_drop_log = 0.0
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO device (device_id, last_seq, dropped) VALUES (?, 0, 0)", (device_id,)
        )

    def append(self, event: Event) -> int:
        """Store ``event`` under the next ``seq`` and return that seq."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            (seq,) = self._db.execute(
                "UPDATE device SET last_seq = last_seq + 1 WHERE device_id = ? RETURNING last_seq",
                (self.device_id,),
            ).fetchone()
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE device_id = ?", (self.device_id,)
            ).fetchone()
            if count >= self.max_events:
                self._drop_one(count - self.max_events + 1)
            self._db.execute(
                "INSERT INTO outbox (device_id, seq, type, payload) VALUES (?, ?, ?, ?)",
                (self.device_id, seq, event.type, encode_event(event, seq, self.device_id)),
            )
            return int(seq)

    def _drop_one(self, how_many: int) -> None:
        victims = [
            row[0]
            for row in self._db.execute(
                "SELECT seq FROM outbox WHERE device_id = ? ORDER BY type = ?, seq LIMIT ?",
                (self.device_id, _PROTECTED_TYPE, how_many),
            )
        ]
        self._db.executemany(
            "DELETE FROM outbox WHERE device_id = ? AND seq = ?", [(self.device_id, s) for s in victims]
        )
        self._db.execute(
            "UPDATE device SET dropped = dropped + ? WHERE device_id = ?", (len(victims), self.device_id)
        )
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            logger.warning(
                "outbox full (%d events): dropped event seq %s; %d dropped in all",
                self.max_events,
                ",".join(map(str, victims)),
                self._dropped_locked(),
            )

    def pending(self, after_seq: int = 0, limit: int | None = None) -> list[PendingEvent]:
        """Waiting events with ``seq > after_seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, type, payload FROM outbox WHERE device_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (self.device_id, after_seq, -1 if limit is None else limit),
            ).fetchall()
        return [PendingEvent(int(s), str(t), bytes(p)) for s, t, p in rows]

    def ack(self, seq: int) -> None:
        """The broker has the event: forget it. Unknown seqs are ignored."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM outbox WHERE device_id = ? AND seq = ?", (self.device_id, seq))

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE device_id = ?", (self.device_id,)
            ).fetchone()
        return int(count)

    @property
    def last_seq(self) -> int:
        with self._lock:
            (seq,) = self._db.execute(
                "SELECT last_seq FROM device WHERE device_id = ?", (self.device_id,)
            ).fetchone()
        return int(seq)

    @property
    def dropped(self) -> int:
        """Events dropped because the outbox was full, since the store was created."""
        with self._lock:
            return self._dropped_locked()

    def _dropped_locked(self) -> int:
        (dropped,) = self._db.execute(
            "SELECT dropped FROM device WHERE device_id = ?", (self.device_id,)
        ).fetchone()
        return int(dropped)

    def close(self) -> None:
        with self._lock:
            self._db.close()
