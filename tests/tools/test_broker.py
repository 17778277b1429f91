"""Broker credentials: mosquitto's $7$ hash, and a real mosquitto enforcing the generated ACL."""

from __future__ import annotations

import contextlib
import csv
import os
import pwd
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tools.provisioning.broker import check_password, hash_password

from .conftest import REPO, SITE_ARGS, flash


def test_hash_format_and_check() -> None:
    encoded = hash_password("s3cret", salt=b"0123456789ab")
    _, kind, iterations, salt, digest = encoded.split("$")
    assert (kind, iterations, salt) == ("7", "101", "MDEyMzQ1Njc4OWFi")
    assert len(digest) == 88  # 64 bytes of SHA-512, base64
    assert check_password("s3cret", encoded) and not check_password("s3cres", encoded)


def test_hash_made_by_mosquitto_passwd_checks(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd not installed")
    passwd = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(passwd), "u", "pässword"], check=True)
    encoded = passwd.read_text().strip().split(":", 1)[1]
    assert encoded.startswith("$7$") and check_password("pässword", encoded)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _broker_files(tmp_path: Path, *site_args: str) -> tuple[Path, dict[str, str]]:
    """``flash.py broker`` for phones a and b: its output dir and the passwords of the secrets store."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto not installed")
    inventory = tmp_path / "office.csv"
    inventory.write_text("device_id,extension\na,101\nb,102\n")
    out, secrets = tmp_path / "broker", tmp_path / "secrets.csv"
    proc = flash(
        "broker", "--inventory", str(inventory), "--secrets", str(secrets), "--out-dir", str(out),
        *site_args,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((out / "passwd").stat().st_mode) == 0o600
    passwords = {r["account"]: r["mqtt_password"] for r in csv.DictReader(secrets.open())}
    assert set(passwords) == {"a", "b", "crm"}
    assert not any(p in proc.stdout + proc.stderr for p in passwords.values())
    return out, passwords


@contextlib.contextmanager
def _serve(tmp_path: Path, out: Path, port: int) -> Iterator[None]:
    """mosquitto with the generated files only: the snippet, its paths moved to ``out``, is the whole
    configuration but for running as this user and logging to the scratch dir."""
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        f"log_dest file {tmp_path / 'mosquitto.log'}\n"
        + (out / "mosquitto-deskphone.conf").read_text().replace("/etc/mosquitto/deskphone/", f"{out}/")
    )
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert broker.poll() is None, broker.stderr.read() if broker.stderr else ""
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.05)
        yield
    finally:
        broker.terminate()
        broker.wait(10)


@pytest.fixture
def office(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Broker files from ``flash.py broker`` for phones a and b, served by a real mosquitto."""
    port = _free_port()
    out, passwords = _broker_files(
        tmp_path, *SITE_ARGS, "--broker-port", str(port), "--listen-address", "127.0.0.1"
    )
    with _serve(tmp_path, out, port):
        yield port, passwords


class Client:
    """A paho client that records what it receives; waits use events, never sleeps."""

    def __init__(
        self, port: int, user: str, password: str, ca: Path | None = None, host: str = "127.0.0.1"
    ) -> None:
        import paho.mqtt.client as mqtt

        self.received: list[tuple[str, bytes]] = []
        self.arrived = threading.Condition()
        self.connected = threading.Event()
        self.reason: object = None
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{user}-{time.monotonic_ns()}"
        )
        self.client.username_pw_set(user, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_connect(
        self, client: object, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self.reason = reason
        self.connected.set()

    def _on_message(self, client: object, userdata: object, message: object) -> None:
        with self.arrived:
            self.received.append((message.topic, message.payload))  # type: ignore[attr-defined]
            self.arrived.notify_all()

    def subscribe(self, *topics: str) -> None:
        for topic in topics:
            self.subscribed.clear()
            self.client.subscribe(topic, qos=1)
            assert self.subscribed.wait(5)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def wait_for(self, topic: str, timeout: float = 5) -> list[str]:
        with self.arrived:
            self.arrived.wait_for(lambda: any(t == topic for t, _ in self.received), timeout)
            return [t for t, _ in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.e2e
def test_generated_acl_on_a_real_mosquitto(office: tuple[int, dict[str, str]]) -> None:
    port, passwords = office
    a, b, crm = (Client(port, name, passwords[name]) for name in ("a", "b", "crm"))
    try:
        for c in (a, b, crm):
            assert c.connected.wait(5) and not c.reason.is_failure  # type: ignore[attr-defined]
        a.subscribe("deskphone/a/cmd/#", "deskphone/b/cmd/#")  # the second is denied by the ACL
        b.subscribe("deskphone/b/cmd/#")
        crm.subscribe("deskphone/+/events", "deskphone/+/status")

        # The CRM commands both; a gets only its own. Messages from one publisher arrive in order,
        # so once a has its own command, b's would have arrived before it if it were allowed.
        crm.publish("deskphone/b/cmd/dial", b'{"v":1,"id":"r2"}')
        crm.publish("deskphone/a/cmd/dial", b'{"v":1,"id":"r1"}')
        assert "deskphone/a/cmd/dial" in a.wait_for("deskphone/a/cmd/dial")
        assert "deskphone/b/cmd/dial" in b.wait_for("deskphone/b/cmd/dial")
        assert [t for t, _ in a.received] == ["deskphone/a/cmd/dial"]

        # a publishes its events and status; it cannot publish b's status.
        a.publish("deskphone/b/status", b'{"v":1,"online":true}')
        a.publish("deskphone/a/events", b'{"v":1,"type":"hook.offhook"}')
        a.publish("deskphone/a/status", b'{"v":1,"online":true}')
        topics = crm.wait_for("deskphone/a/status")
        assert topics == ["deskphone/a/events", "deskphone/a/status"]
    finally:
        for c in (a, b, crm):
            c.close()


@pytest.mark.e2e
def test_wrong_password_is_refused(office: tuple[int, dict[str, str]]) -> None:
    port, passwords = office
    intruder = Client(port, "a", passwords["a"] + "x")
    try:
        assert intruder.connected.wait(5)
        assert intruder.reason.is_failure  # type: ignore[attr-defined]
    finally:
        intruder.close()


def _guide_certificates(workdir: Path, host: str) -> tuple[Path, Path, Path]:
    """Run the certificate commands of INSTALLING.md (section 3) for ``host``: CA, certificate, key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    guide = (REPO / "docs" / "INSTALLING.md").read_text()
    section = guide[guide.index("## 3. The broker") :]
    commands = section[section.index("```sh\n") + 6 : section.index("```\n", section.index("```sh\n") + 6)]
    workdir.mkdir()
    script = commands.replace("crm-broker.office.example", host)
    proc = subprocess.run(["bash", "-euc", script], cwd=workdir, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "broker.crt: OK" in proc.stdout, proc.stdout + proc.stderr
    return workdir / "office-ca.pem", workdir / "broker.crt", workdir / "broker.key"


@pytest.mark.e2e
def test_generated_snippet_opens_a_tls_listener_the_phones_use(tmp_path: Path) -> None:
    """The site's port with TLS and the certificate made as INSTALLING.md says: phones (the firmware's
    own bridge) log in with their generated passwords and reach the CRM; plain MQTT is not served."""
    from crm_bridge import CrmBridge, MqttSettings
    from firmware.events import Event

    ca, cert, key = _guide_certificates(tmp_path / "certs", host="localhost")
    port = _free_port()
    out, passwords = _broker_files(
        tmp_path, *SITE_ARGS, "--broker-tls", "--broker-port", str(port), "--listen-address", "127.0.0.1",
        "--certfile", str(cert), "--keyfile", str(key),
    )  # fmt: skip
    snippet = (out / "mosquitto-deskphone.conf").read_text()
    assert f"listener {port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n" in snippet
    with _serve(tmp_path, out, port):
        crm = Client(port, "crm", passwords["crm"], ca=ca, host="localhost")
        settings = MqttSettings(host="localhost", port=port, tls=True, ca_file=str(ca))
        bridges = [
            CrmBridge(
                replace(
                    settings,
                    username=name,
                    password=passwords[name],
                    outbox_path=str(tmp_path / f"outbox-{name}.sqlite3"),
                ),
                name,
                lambda command: None,
            )
            for name in ("a", "b")
        ]
        plain = Client(port, "a", passwords["a"])
        try:
            assert crm.connected.wait(5) and not crm.reason.is_failure  # type: ignore[attr-defined]
            crm.subscribe("deskphone/+/events")
            for bridge in bridges:
                bridge.start()
            for bridge in bridges:
                bridge.publish_event(Event(type="hook.offhook"))
            crm.wait_for("deskphone/a/events", timeout=15)
            crm.wait_for("deskphone/b/events", timeout=15)
            assert {t for t, _ in crm.received} == {"deskphone/a/events", "deskphone/b/events"}
            assert all(b.connected for b in bridges)
            assert not plain.connected.wait(2), "a plain MQTT connection was served on the TLS port"
        finally:
            for bridge in bridges:
                bridge.stop()
            crm.close()
            plain.close()
