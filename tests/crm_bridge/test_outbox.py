"""The durable outbox: order, ack, restarts, the bound and its counter, threads."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from crm_bridge.outbox import CHECKPOINT_WRITES, SEQ_BLOCK, Outbox
from firmware.events import Event


def types(box: Outbox) -> list[str]:
    return [p.type for p in box.pending()]


def test_append_gives_monotonic_seq_and_pending_is_in_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", "dev1")
    seqs = [box.append(Event(type=t)) for t in ("hook.offhook", "call.outgoing", "hook.onhook")]
    assert seqs == [1, 2, 3]
    pending = box.pending()
    assert [p.seq for p in pending] == [1, 2, 3]
    assert [json.loads(p.payload)["seq"] for p in pending] == [1, 2, 3]
    assert json.loads(pending[0].payload)["device_id"] == "dev1"
    assert [p.seq for p in box.pending(after_seq=1, limit=1)] == [2]


def test_ack_deletes_only_that_event(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", "dev1")
    for _ in range(3):
        box.append(Event(type="hook.offhook"))
    box.ack(2)
    box.ack(99)
    assert [p.seq for p in box.pending()] == [1, 3] and len(box) == 2


def test_restart_keeps_seq_and_pending(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", "dev1")
    for _ in range(3):
        box.append(Event(type="hook.offhook"))
    box.ack(1)
    box.ack(2)
    box.ack(3)
    box.append(Event(type="hook.onhook"))
    box.close()
    again = Outbox(tmp_path / "o.db", "dev1")
    assert [p.seq for p in again.pending()] == [4]
    assert again.append(Event(type="hook.offhook")) == 5
    assert again.last_seq == 5


def test_wal_mode(tmp_path: Path) -> None:
    Outbox(tmp_path / "o.db", "dev1").append(Event(type="hook.offhook"))
    assert (tmp_path / "o.db-wal").exists()


def test_seq_is_per_device(tmp_path: Path) -> None:
    a = Outbox(tmp_path / "o.db", "a")
    b = Outbox(tmp_path / "o.db", "b")
    assert [a.append(Event(type="hook.offhook")) for _ in range(2)] == [1, 2]
    assert b.append(Event(type="hook.offhook")) == 1
    assert len(a) == 2 and len(b) == 1


def test_full_outbox_drops_oldest_non_call_ended_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", "dev1", max_events=3)
    box.append(Event(type="call.ended"))  # 1
    box.append(Event(type="hook.offhook"))  # 2
    box.append(Event(type="hook.onhook"))  # 3
    box.append(Event(type="call.ended"))  # 4: drops 2
    assert [p.seq for p in box.pending()] == [1, 3, 4] and box.dropped == 1
    box.append(Event(type="call.ended"))  # 5: drops 3
    assert [p.seq for p in box.pending()] == [1, 4, 5] and box.dropped == 2
    box.append(Event(type="hook.offhook"))  # 6: only call.ended left: drops the oldest, 1
    assert [p.seq for p in box.pending()] == [4, 5, 6] and box.dropped == 3
    box.close()
    assert Outbox(tmp_path / "o.db", "dev1", max_events=3).dropped == 3


def test_bound_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Outbox(tmp_path / "o.db", "dev1", max_events=0)


def test_concurrent_appends_and_acks(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", "dev1")
    seqs: list[int] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(50):
            seq = box.append(Event(type="hook.offhook"))
            with lock:
                seqs.append(seq)

    def acker() -> None:
        for _ in range(100):
            for item in box.pending(limit=5):
                box.ack(item.seq)

    threads = [threading.Thread(target=writer) for _ in range(4)] + [threading.Thread(target=acker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(1, 201))
    assert box.last_seq == 200


def _power_cut_image(src: Path, dst: Path) -> Path:
    """What a power cut can leave at the worst: the files as they were at the last fsync."""
    dst.mkdir()
    for name in ("o.db", "o.db-wal"):
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)
    return dst / "o.db"


def test_a_power_cut_after_publish_before_fsync_never_reuses_a_seq(tmp_path: Path) -> None:
    """Events published and PUBACKed before their fsync, then the power goes: a new event after the
    restart gets a seq beyond every seq that may have reached the broker, never one of theirs."""
    (tmp_path / "live").mkdir()
    stall, end_of_test = threading.Event(), threading.Event()

    def stalled_fsync(fd: int) -> None:
        if stall.is_set():
            end_of_test.wait(60)  # the disk does not get these commits before the power cut
        os.fsync(fd)

    box = Outbox(tmp_path / "live" / "o.db", "dev1", fsync=stalled_fsync)
    image = _power_cut_image(tmp_path / "live", tmp_path / "after-cut")  # state at the last fsync
    stall.set()
    handed = box.pending(up_to=box.publishable_seq)
    assert handed == []
    published = [box.append(Event(type="hook.offhook")) for _ in range(3)]
    assert [p.seq for p in box.pending(up_to=box.publishable_seq)] == published  # no fsync needed
    for seq in published:
        box.ack(seq)  # PUBACK before the fsync
    assert box.durable_seq == 0

    try:
        again = Outbox(image, "dev1", boot_id="the boot after the power cut")
        assert again.pending() == []
        assert again.append(Event(type="hook.onhook")) > max(published)
    finally:
        end_of_test.set()


def test_events_arriving_together_share_an_fsync(tmp_path: Path) -> None:
    first_sync_entered, disk_free = threading.Event(), threading.Event()
    calls = 0

    def slow_fsync(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # after the two of opening: the fsync of the first event is slow
            first_sync_entered.set()
            disk_free.wait(30)
        os.fsync(fd)

    box = Outbox(tmp_path / "o.db", "dev1", fsync=slow_fsync)
    box.append(Event(type="hook.offhook"))
    assert first_sync_entered.wait(30)
    last = [box.append(Event(type="hook.offhook")) for _ in range(20)][-1]
    assert box.durable_seq == 0
    disk_free.set()
    assert box.wait_durable(last, 30)
    assert box.syncs == 2


def test_a_publishable_seq_is_reserved_on_disk(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", "dev1")
    seqs = [box.append(Event(type="hook.offhook")) for _ in range(SEQ_BLOCK)]
    assert box.wait_durable(seqs[-1], 30)
    assert box.publishable_seq > seqs[-1]
    assert [p.seq for p in box.pending(up_to=box.publishable_seq)] == seqs
    box.close()
    after_reboot = Outbox(tmp_path / "o.db", "dev1", boot_id="next boot")
    assert after_reboot.append(Event(type="hook.onhook")) == SEQ_BLOCK + 1  # closed cleanly: no gap


def test_the_wal_is_checkpointed_into_the_database_file(tmp_path: Path) -> None:
    """sqlite's autocheckpoint is off (it would run inside a commit); the outbox-sync thread
    checkpoints: the database file alone, without its WAL, soon holds the recent commits."""
    box = Outbox(tmp_path / "live" / "o.db", "dev1")
    for _ in range(CHECKPOINT_WRITES):
        seq = box.append(Event(type="hook.offhook"))
        box.ack(seq)
        assert box.wait_durable(seq, 30)

    def seq_in_the_database_file() -> int:
        copy = tmp_path / "copy.db"
        shutil.copyfile(tmp_path / "live" / "o.db", copy)  # may catch a checkpoint half-way: retried
        try:
            db = sqlite3.connect(f"file:{copy}?immutable=1", uri=True)
            try:
                return int(db.execute("SELECT last_seq FROM device").fetchone()[0])
            finally:
                db.close()
        except (sqlite3.Error, TypeError):
            return 0

    deadline = time.monotonic() + 30
    while seq_in_the_database_file() < CHECKPOINT_WRITES // 2 and time.monotonic() < deadline:
        box.wait_durable(box.append(Event(type="hook.offhook")), 30)
    assert seq_in_the_database_file() >= CHECKPOINT_WRITES // 2
    box.close()


def test_a_store_from_before_group_commit_opens(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "o.db")
    db.executescript(
        "CREATE TABLE device (device_id TEXT PRIMARY KEY, last_seq INTEGER, dropped INTEGER);"
        "INSERT INTO device VALUES ('dev1', 7, 0);"
    )
    db.close()
    assert Outbox(tmp_path / "o.db", "dev1").append(Event(type="hook.offhook")) == 8
