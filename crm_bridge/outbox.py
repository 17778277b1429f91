"""Durable outbox: events wait on disk (SQLite, WAL) until the broker has acknowledged them.

``append`` gives each event the device's next ``seq`` (monotonic, never reused, kept across restarts)
and stores its encoded JSON in the same transaction. ``pending`` reads them back in ``seq`` order;
``ack`` deletes one. All methods are thread-safe.

Group commit: an event is safe once it is on disk or acknowledged by the broker, whichever comes
first, so ``append`` commits without waiting for the disk (``synchronous=NORMAL``: the transaction is
in the WAL file, in the page cache) and the ``outbox-sync`` thread fsyncs the WAL file for every
commit that has arrived since its last fsync; events that arrive together share one fsync. That is
what ``synchronous=FULL`` does after each commit, done once for many. ``durable_seq`` is the highest
seq known to be on disk. The same thread checkpoints the WAL into the database file every
``CHECKPOINT_WRITES`` commits, on a connection of its own: sqlite's automatic checkpoint would run
inside whichever commit crosses its threshold, with two fsyncs (milliseconds, up to tens of them on a
busy disk) in the ``core`` thread's append or paho's ack.

``seq`` is never reused, even after a power cut that loses events which were published (and acked)
but not yet on disk: seqs are reserved on disk in blocks of ``SEQ_BLOCK`` ahead of use, and an event
may be handed to the broker only when its seq is inside the durable reservation
(``publishable_seq``). A store opened after a power cut continues after the reservation (consumers see
a gap of at most ``SEQ_BLOCK``); a clean ``close`` gives the unused part of the block back. A store
opened again in the same boot (the process crashed or was killed; the kernel kept every commit)
continues right after its last seq.

Bound policy, when ``max_events`` are waiting and another arrives: the oldest waiting event that is
not a ``call.ended`` is dropped; only if every waiting event is a ``call.ended`` is the oldest of those
dropped. ``call.ended`` carries the complete call record, so a CRM can still build its call cards and
statistics from what is kept. Every drop is counted in ``dropped`` (persisted, survives restarts) and
shows to consumers as a gap in ``seq``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware.events import Event

from .codec import encode_event

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS device (
    device_id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    dropped INTEGER NOT NULL,
    reserved_seq INTEGER NOT NULL DEFAULT 0,
    boot_id TEXT NOT NULL DEFAULT ''
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
SEQ_BLOCK = 256
"""Seqs reserved on disk ahead of use; renewed when less than half of a block is left."""
CHECKPOINT_WRITES = 100
"""Commits (appends and acks, a few WAL pages each) between two checkpoints by ``outbox-sync``."""


def current_boot_id() -> str:
    """The kernel's id of this boot ('' where there is none): a new one means the page cache is gone."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class PendingEvent:
    seq: int
    type: str
    payload: bytes


class Outbox:
    """The on-disk queue of one device's events."""

    def __init__(
        self,
        path: str | Path,
        device_id: str,
        max_events: int = 10_000,
        *,
        fsync: Callable[[int], None] = os.fsync,
        boot_id: str | None = None,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.device_id = device_id
        self.max_events = max_events
        self.on_durable: Callable[[], None] | None = None
        """Called on the ``outbox-sync`` thread when ``publishable_seq`` has grown (wakes the pump)."""
        self.syncs = 0
        self._fsync = fsync
        self._lock = threading.Lock()
        self._sync_wanted = threading.Condition(self._lock)
        self._closing = False
        self._last_drop_log = 0.0
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA wal_autocheckpoint=0")  # the outbox-sync thread checkpoints
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(device)")}
        if "reserved_seq" not in columns:  # a store written before group commit
            self._db.execute("ALTER TABLE device ADD COLUMN reserved_seq INTEGER NOT NULL DEFAULT 0")
            self._db.execute("ALTER TABLE device ADD COLUMN boot_id TEXT NOT NULL DEFAULT ''")
        boot = current_boot_id() if boot_id is None else boot_id
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR IGNORE INTO device (device_id, last_seq, dropped, boot_id) VALUES (?, 0, 0, ?)",
                (device_id, boot),
            )
            # A new boot may follow a power cut that lost commits (last_seq too) whose events had reached
            # the broker: continue after the reservation. In the same boot (a crash or kill of the
            # process) the page cache kept every commit, and last_seq is exact.
            (last,) = self._db.execute(
                "UPDATE device SET last_seq = CASE WHEN boot_id = ? AND boot_id != '' THEN last_seq "
                "ELSE MAX(last_seq, reserved_seq) END, boot_id = ? WHERE device_id = ? RETURNING last_seq",
                (boot, boot, device_id),
            ).fetchone()
            self._db.execute(
                "UPDATE device SET reserved_seq = MAX(reserved_seq, last_seq + ?) WHERE device_id = ?",
                (SEQ_BLOCK, device_id),
            )
            (reserved,) = self._db.execute(
                "SELECT reserved_seq FROM device WHERE device_id = ?", (device_id,)
            ).fetchone()
        self._last_seq = int(last)
        self._wal = os.open(f"{path}-wal", os.O_RDONLY)
        self._fsync(self._wal)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            self._fsync(dir_fd)  # the WAL file may be new
        finally:
            os.close(dir_fd)
        self._synced_seq = self._last_seq
        self._reserved_seq = self._publishable_seq = int(reserved)
        self._dirty = False
        self._writes = 0  # commits since the last checkpoint
        self._checkpointer = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._sync_thread = threading.Thread(target=self._sync_loop, name="outbox-sync", daemon=True)
        self._sync_thread.start()

    def append(self, event: Event) -> int:
        """Store ``event`` under the next ``seq`` and return that seq."""
        return self.add(event).seq

    def add(self, event: Event) -> PendingEvent:
        """Store ``event`` under the next ``seq``; the stored event (its seq, its encoded JSON)."""
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
            payload = encode_event(event, seq, self.device_id)
            self._db.execute(
                "INSERT INTO outbox (device_id, seq, type, payload) VALUES (?, ?, ?, ?)",
                (self.device_id, seq, event.type, payload),
            )
            if seq > self._reserved_seq - SEQ_BLOCK // 2:
                self._reserved_seq = seq + SEQ_BLOCK
                self._db.execute(
                    "UPDATE device SET reserved_seq = ? WHERE device_id = ?",
                    (self._reserved_seq, self.device_id),
                )
            self._last_seq = int(seq)
            self._writes += 1
            self._dirty = True
            self._sync_wanted.notify()
            return PendingEvent(int(seq), event.type, payload)

    # --- group commit -------------------------------------------------------------------------------

    @property
    def durable_seq(self) -> int:
        """Every event appended with a seq up to this one is on disk."""
        with self._lock:
            return self._synced_seq

    @property
    def publishable_seq(self) -> int:
        """Events up to this seq may be handed to the broker (their seq is reserved on disk)."""
        with self._lock:
            return self._publishable_seq

    def wait_durable(self, seq: int, timeout: float) -> bool:
        """Block until the event ``seq`` is on disk (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._synced_seq < seq:
                left = deadline - time.monotonic()
                if left <= 0 or self._closing:
                    return self._synced_seq >= seq
                self._sync_wanted.wait(left)
            return True

    def _sync_loop(self) -> None:
        while True:
            with self._lock:
                while not self._dirty and not self._closing:
                    self._sync_wanted.wait()
                if self._closing:
                    return
                self._dirty = False
                upto, reserved = self._last_seq, self._reserved_seq
            try:
                self._fsync(self._wal)  # outside the lock: appends go on meanwhile
            except OSError:
                logger.exception("fsync of the outbox failed; will retry")
                with self._lock:
                    self._dirty = True
                time.sleep(1.0)
                continue
            with self._lock:
                self.syncs += 1
                self._synced_seq = max(self._synced_seq, upto)
                more_publishable = reserved > self._publishable_seq
                self._publishable_seq = max(self._publishable_seq, reserved)
                self._sync_wanted.notify_all()
                checkpoint_due = self._writes >= CHECKPOINT_WRITES
                if checkpoint_due:
                    self._writes = 0
            callback = self.on_durable
            if callback is not None and more_publishable:
                try:
                    callback()
                except Exception:
                    logger.exception("outbox on_durable callback failed")
            if checkpoint_due:
                self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file (``outbox-sync`` thread; commits go on meanwhile)."""
        try:
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            logger.warning("checkpoint of the outbox failed (will retry): %s", exc)

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

    def pending(
        self, after_seq: int = 0, limit: int | None = None, up_to: int | None = None
    ) -> list[PendingEvent]:
        """Waiting events with ``after_seq < seq <= up_to``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, type, payload FROM outbox WHERE device_id = ? AND seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (
                    self.device_id,
                    after_seq,
                    self._last_seq if up_to is None else up_to,
                    -1 if limit is None else limit,
                ),
            ).fetchall()
        return [PendingEvent(int(s), str(t), bytes(p)) for s, t, p in rows]

    def ack(self, seq: int) -> None:
        """The broker has the event: forget it. Unknown seqs are ignored."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM outbox WHERE device_id = ? AND seq = ?", (self.device_id, seq))
            self._writes += 1

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE device_id = ?", (self.device_id,)
            ).fetchone()
        return int(count)

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

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
        """Give the unused reserved seqs back, put everything on disk, and close."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._sync_wanted.notify_all()
        self._sync_thread.join(timeout=5)
        with contextlib.suppress(sqlite3.Error):
            self._checkpointer.close()
        with self._lock:
            try:
                with self._db:
                    self._db.execute(
                        "UPDATE device SET reserved_seq = last_seq WHERE device_id = ?", (self.device_id,)
                    )
                self._fsync(self._wal)
                self._synced_seq = self._last_seq
            except (sqlite3.Error, OSError) as exc:
                logger.warning("closing the outbox: %s", exc)
            finally:
                self._db.close()
                with contextlib.suppress(OSError):
                    os.close(self._wal)
