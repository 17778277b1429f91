"""The bridge against a real mosquitto: status and last will, commands and replies, outages, restarts."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_bridge import CrmBridge, MqttSettings, PhoneStatus
from crm_bridge.codec import format_time
from firmware.commands import Command, Dial, Reply
from firmware.events import Event
from lab.servers.mosquitto import Mosquitto
from lab.waiting import wait_until
from tests.crm_bridge.crm import CrmClient, Received

pytestmark = pytest.mark.e2e

DEVICE = "dev1"
BASE = f"deskphone/{DEVICE}"
ROOT = Path(__file__).resolve().parents[2]


class Submitted:
    """The ``submit`` callable of the tests: records commands and lets a test wait for them."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.arrived = threading.Event()

    def __call__(self, command: Command) -> None:
        self.commands.append(command)
        self.arrived.set()


def settings_for(broker: Mosquitto, tmp_path: Path, **overrides: object) -> MqttSettings:
    values: dict[str, object] = {
        "host": broker.host,
        "port": broker.port,
        "outbox_path": str(tmp_path / "outbox.sqlite3"),
        "keepalive_s": 5,
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
        "firmware_version": "9.9.9",
    }
    values.update(overrides)
    return MqttSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def submitted() -> Submitted:
    return Submitted()


@pytest.fixture
def bridge(mosquitto: Mosquitto, tmp_path: Path, submitted: Submitted) -> Iterator[CrmBridge]:
    b = CrmBridge(
        settings_for(mosquitto, tmp_path), DEVICE, submitted, lambda: PhoneStatus(True, "idle", "1001")
    )
    b.start()
    wait_until(lambda: b.connected)
    try:
        yield b
    finally:
        b.stop()


def events_of(messages: list[Received]) -> list[dict[str, object]]:
    """Events in arrival order, duplicates (same event_id, allowed by the contract) removed."""
    seen: set[object] = set()
    out = []
    for m in messages:
        if m.topic == f"{BASE}/events":
            event = m.json
            if event["event_id"] not in seen:
                seen.add(event["event_id"])
                out.append(event)
    return out


def event_count(n: int) -> object:
    return lambda msgs: len(events_of(msgs)) >= n


class BridgeProcess:
    """``tests.crm_bridge.bridge_process`` in a child process, to be killed for real."""

    def __init__(self, broker: Mosquitto, outbox: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.crm_bridge.bridge_process",
                broker.host,
                str(broker.port),
                DEVICE,
                str(outbox),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(outbox.with_suffix(".log"), "ab"),  # noqa: SIM115
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.expect("ready") == "ready"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def expect(self, prefix: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def test_status_is_retained_and_current(bridge: CrmBridge, mosquitto: Mosquitto) -> None:
    late = CrmClient(mosquitto.host, mosquitto.port)
    try:
        late.subscribe(f"{BASE}/status")
        (first,) = late.wait_on(f"{BASE}/status")
        assert first.retain
        status = first.json
        assert status["v"] == 1 and status["online"] is True and status["registered"] is True
        assert (status["state"], status["extension"], status["firmware"]) == ("idle", "1001", "9.9.9")
        datetime.fromisoformat(status["since"].replace("Z", "+00:00"))
        bridge.update_status(True, "in_call", "1001")
        second = late.wait_on(f"{BASE}/status", 2)[1].json
        assert second["state"] == "in_call" and second["since"] >= status["since"]
    finally:
        late.close()


def test_last_will_when_the_process_dies(mosquitto: Mosquitto, crm: CrmClient, tmp_path: Path) -> None:
    proc = BridgeProcess(mosquitto, tmp_path / "outbox.sqlite3")
    crm.subscribe(f"{BASE}/status")
    crm.wait_for(lambda msgs: any(m.json.get("online") for m in msgs))
    proc.kill()
    crm.wait_for(lambda msgs: msgs[-1].json == {"v": 1, "online": False})
    late = CrmClient(mosquitto.host, mosquitto.port)
    try:
        late.subscribe(f"{BASE}/status")
        (retained,) = late.wait_on(f"{BASE}/status")
        assert retained.retain and retained.json == {"v": 1, "online": False}
    finally:
        late.close()


def test_dial_is_submitted_and_reply_goes_to_reply_topic(
    bridge: CrmBridge, crm: CrmClient, submitted: Submitted
) -> None:
    crm.subscribe(f"{BASE}/reply/+")
    crm.publish(f"{BASE}/cmd/dial", {"v": 1, "id": "r1", "number": "1002", "ttl_s": 30, "crm": {"lead": 5}})
    assert submitted.arrived.wait(5)
    (command,) = submitted.commands
    assert isinstance(command, Dial)
    assert (command.request_id, command.number, command.crm, command.origin) == (
        "r1",
        "1002",
        {"lead": 5},
        "crm",
    )
    assert command.expires_at > datetime.now(UTC) + timedelta(seconds=20)
    bridge.send_reply(Reply.success("r1", status="accepted"))
    (reply,) = crm.wait_on(f"{BASE}/reply/r1")
    assert reply.json == {"v": 1, "id": "r1", "ok": True, "result": {"status": "accepted"}}


def test_reply_goes_to_the_mqtt5_response_topic_with_correlation(
    bridge: CrmBridge, crm: CrmClient, submitted: Submitted
) -> None:
    crm.subscribe("crm/responses/#")
    crm.subscribe(f"{BASE}/reply/+")
    crm.publish(
        f"{BASE}/cmd/hangup",
        {"id": "h1"},
        response_topic="crm/responses/42",
        correlation=b"\x00corr-42",
    )
    assert submitted.arrived.wait(5)
    bridge.send_reply(Reply.failure("h1", "not_found", "no call"))
    (reply,) = crm.wait_on("crm/responses/42")
    assert reply.correlation == b"\x00corr-42"
    assert reply.json["error"] == {"code": "not_found", "message": "no call"}
    # A malformed command with a response topic is answered there as well.
    crm.publish(f"{BASE}/cmd/dial", b"{oops", response_topic="crm/responses/43", correlation=b"c43")
    (bad,) = crm.wait_on("crm/responses/43")
    assert bad.correlation == b"c43" and bad.json["error"]["code"] == "invalid_payload"
    assert crm.on(f"{BASE}/reply/h1") == []


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("cmd/dial", {"id": "m1", "number": "sip:1002@evil.example", "ttl_s": 30}, "invalid_number"),
        ("cmd/dial", {"id": "m1", "number": 1002, "ttl_s": 30}, "invalid_payload"),
        ("cmd/dial", {"id": "m1", "number": "1002", "expires_at": "2000-01-01T00:00:00Z"}, "expired"),
        ("cmd/reboot", {"id": "m1"}, "unknown_command"),
    ],
)
def test_malformed_command_gets_an_error_reply_and_is_never_submitted(
    bridge: CrmBridge, crm: CrmClient, submitted: Submitted, topic: str, payload: object, code: str
) -> None:
    crm.subscribe(f"{BASE}/reply/+")
    crm.publish(f"{BASE}/{topic}", payload)
    (reply,) = crm.wait_on(f"{BASE}/reply/m1")
    assert reply.json["ok"] is False and reply.json["error"]["code"] == code
    assert submitted.commands == []
    assert bridge.counters()["commands_rejected"] == 1


def test_command_without_id_is_answered_on_the_no_id_topic(bridge: CrmBridge, crm: CrmClient) -> None:
    crm.subscribe(f"{BASE}/reply/+")
    crm.publish(f"{BASE}/cmd/dial", b"[]")
    (reply,) = crm.wait_on(f"{BASE}/reply/_")
    assert reply.json["id"] is None and reply.json["error"]["code"] == "invalid_payload"


def test_broker_outage_loses_nothing_and_keeps_order(
    mosquitto: Mosquitto, tmp_path: Path, submitted: Submitted
) -> None:
    crm = CrmClient(mosquitto.host, mosquitto.port, client_id="crm-outage", persistent=True)
    crm.subscribe(f"{BASE}/events")
    b = CrmBridge(settings_for(mosquitto, tmp_path), DEVICE, submitted)
    b.start()
    try:
        wait_until(lambda: b.connected)
        for _ in range(3):
            b.publish_event(Event(type="hook.offhook"))
        crm.wait_for(event_count(3))
        mosquitto.stop()
        wait_until(lambda: not b.connected)
        for t in ("call.outgoing", "call.ringing", "call.answered", "call.ended", "hook.onhook"):
            b.publish_event(Event(type=t))  # type: ignore[arg-type]
        assert b.counters()["outbox_pending"] == 5
        mosquitto.start()
        messages = crm.wait_for(event_count(8), timeout=20)
        events = events_of(messages)
        assert [e["seq"] for e in events] == list(range(1, 9))
        assert [e["type"] for e in events[3:]] == [
            "call.outgoing",
            "call.ringing",
            "call.answered",
            "call.ended",
            "hook.onhook",
        ]
        wait_until(lambda: b.counters()["outbox_pending"] == 0)
    finally:
        b.stop()
        crm.close()


def test_events_committed_while_the_outbox_catches_up_keep_their_order(
    mosquitto: Mosquitto, tmp_path: Path, submitted: Submitted
) -> None:
    """Events left on disk go out first; the ones committed meanwhile (handed to paho by the committing
    thread when next in order, else by the pump thread) follow in seq order, each once."""
    mosquitto.stop()
    offline = CrmBridge(settings_for(mosquitto, tmp_path), DEVICE, submitted)
    for _ in range(120):
        offline.publish_event(Event(type="hook.offhook"))
    offline.stop()
    mosquitto.start()
    crm = CrmClient(mosquitto.host, mosquitto.port)
    crm.subscribe(f"{BASE}/events")
    b = CrmBridge(settings_for(mosquitto, tmp_path), DEVICE, submitted)
    b.start()
    try:
        for _ in range(80):
            b.publish_event(Event(type="hook.onhook"))
        wait_until(lambda: b.connected)
        for _ in range(80):
            b.publish_event(Event(type="hook.offhook"))
        messages = crm.wait_for(event_count(280), timeout=30)
        events = events_of(messages)
        assert [e["seq"] for e in events] == list(range(1, 281))
        assert [e["type"] for e in events[120:200]] == ["hook.onhook"] * 80
        wait_until(lambda: b.counters()["outbox_pending"] == 0)
        assert b.counters()["events_published"] == 280
    finally:
        b.stop()
        crm.close()


def test_undelivered_events_survive_sigkill(mosquitto: Mosquitto, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    mosquitto.stop()
    first = BridgeProcess(mosquitto, outbox)
    seqs = []
    for t in ("hook.offhook", "call.outgoing", "call.ended", "hook.onhook"):
        first.send(f"event {t}")
        seqs.append(first.expect("seq"))
    assert seqs == ["seq 1", "seq 2", "seq 3", "seq 4"]
    first.kill()
    mosquitto.start()
    crm = CrmClient(mosquitto.host, mosquitto.port)
    try:
        crm.subscribe(f"{BASE}/events")
        second = BridgeProcess(mosquitto, outbox)
        try:
            events = events_of(crm.wait_for(event_count(4), timeout=15))
            assert [(e["seq"], e["type"]) for e in events] == [
                (1, "hook.offhook"),
                (2, "call.outgoing"),
                (3, "call.ended"),
                (4, "hook.onhook"),
            ]
            second.send("event hook.offhook")
            assert second.expect("seq") == "seq 5"
            crm.wait_for(event_count(5))
        finally:
            second.kill()
    finally:
        crm.close()


def test_stale_dial_queued_at_the_broker_is_never_submitted(
    mosquitto: Mosquitto, tmp_path: Path, submitted: Submitted, crm: CrmClient
) -> None:
    settings = settings_for(mosquitto, tmp_path)
    b = CrmBridge(settings, DEVICE, submitted)
    b.start()
    wait_until(lambda: b.connected)
    b.stop()  # the session and its subscription stay at the broker: commands queue while we are away
    crm.subscribe(f"{BASE}/reply/+")
    crm.publish(f"{BASE}/cmd/dial", {"id": "old-expiry", "number": "1002", "ttl_s": 60}, expiry_s=1)
    soon = format_time(datetime.now(UTC) + timedelta(seconds=1))
    crm.publish(f"{BASE}/cmd/dial", {"id": "old-expires-at", "number": "1002", "expires_at": soon})
    crm.publish(f"{BASE}/cmd/dial", {"id": "fresh", "number": "1003", "ttl_s": 60}, expiry_s=60)
    time.sleep(2.2)
    again = CrmBridge(settings, DEVICE, submitted)
    again.start()
    try:
        (expired,) = crm.wait_on(f"{BASE}/reply/old-expires-at")
        assert expired.json["error"]["code"] == "expired"
        assert submitted.arrived.wait(5)
        time.sleep(0.3)
        assert [c.request_id for c in submitted.commands] == ["fresh"]  # type: ignore[union-attr]
        fresh = submitted.commands[0]
        assert isinstance(fresh, Dial) and fresh.expires_at < datetime.now(UTC) + timedelta(seconds=59)
        assert crm.on(f"{BASE}/reply/old-expiry") == []  # the broker discarded it unseen
    finally:
        again.stop()


def test_credentials_and_a_refusing_broker_are_logged_once_without_secrets(
    tmp_path: Path, submitted: Submitted, caplog: pytest.LogCaptureFixture
) -> None:
    password = "s3cret-Pa55"
    broker = Mosquitto(
        tmp_path / "auth-broker",
        users={"dev1": password},
        acl="user dev1\ntopic readwrite deskphone/dev1/#\n",
    )
    broker.start()
    caplog.set_level(logging.DEBUG)
    try:
        wrong = CrmBridge(
            settings_for(broker, tmp_path / "a", username="dev1", password="wrong-" + password),
            DEVICE,
            submitted,
        )
        wrong.start()
        time.sleep(2.5)  # at least two retries
        assert not wrong.connected
        wrong.stop()
        warnings = [
            r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("crm_bridge")
        ]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]

        good = CrmBridge(
            settings_for(broker, tmp_path / "b", username="dev1", password=password), DEVICE, submitted
        )
        good.start()
        wait_until(lambda: good.connected)
        good.publish_event(Event(type="hook.offhook"))
        wait_until(lambda: good.counters()["outbox_pending"] == 0)
        assert password not in repr(good.settings)
        good.stop()
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert password not in text
    finally:
        broker.stop()
