"""The bridge over TLS to a real mosquitto that requires client certificates (identity as user name).

Each refusal (wrong CA, expired or wrong-host broker certificate, no client certificate) is logged
once with its reason while the bridge goes on retrying.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest

from crm_bridge import CrmBridge, MqttSettings
from crm_bridge.diagnosis import describe, describe_dropped_handshake, describe_tls_text
from firmware.commands import Dial
from firmware.events import Event
from lab.servers.certs import CertFiles, TestCa
from lab.servers.mosquitto import Mosquitto
from lab.waiting import wait_until
from tests.crm_bridge.crm import CrmClient
from tests.crm_bridge.test_bridge_e2e import BASE, DEVICE, Submitted, settings_for
from tests.servers.fixtures import TLS_REFUSALS, BrokerFactory, tls_refusal

ACL = f"user crm\ntopic readwrite deskphone/#\n\nuser {DEVICE}\ntopic readwrite {BASE}/#\n"


def tls_settings(broker: Mosquitto, tmp_path: Path, trust: Path, client: CertFiles | None) -> MqttSettings:
    return settings_for(
        broker,
        tmp_path,
        tls=True,
        ca_file=str(trust),
        client_cert=str(client.cert) if client else None,
        client_key=str(client.key) if client else None,
    )


@pytest.mark.e2e
def test_events_and_commands_over_tls_with_client_certificates(
    tls_broker_factory: BrokerFactory, test_ca: TestCa, tmp_path: Path
) -> None:
    ca = test_ca
    broker = tls_broker_factory(ca.issue_server("broker"), acl=ACL)
    crm = CrmClient(broker.host, broker.port, tls=ca.issue_client("crm", "crm"))
    crm.subscribe(f"{BASE}/#")
    submitted = Submitted()
    bridge = CrmBridge(
        tls_settings(broker, tmp_path, ca.cert_path, ca.issue_client("phone", DEVICE)), DEVICE, submitted
    )
    bridge.start()
    try:
        wait_until(lambda: bridge.connected)
        bridge.publish_event(Event(type="hook.offhook"))
        events = crm.wait_on(f"{BASE}/events")
        assert events[0].json["type"] == "hook.offhook"
        crm.publish(f"{BASE}/cmd/dial", {"v": 1, "id": "tls-1", "number": "1002", "ttl_s": 60})
        assert submitted.arrived.wait(10)
        assert isinstance(submitted.commands[0], Dial) and submitted.commands[0].number == "1002"
        assert f"as deskphone-{DEVICE} (p5, c0, k5, u'{DEVICE}')" in broker.log()  # the CN is the user
    finally:
        bridge.stop()
        crm.close()


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(TLS_REFUSALS))
def test_each_refusal_is_logged_once_with_its_reason(
    case: str,
    tls_broker_factory: BrokerFactory,
    test_ca: TestCa,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, trust, client = tls_refusal(case, test_ca, tmp_path, DEVICE)
    broker = tls_broker_factory(server, acl=ACL)
    bridge = CrmBridge(tls_settings(broker, tmp_path, trust, client), DEVICE, Submitted())
    caplog.set_level(logging.DEBUG, logger="crm_bridge")
    bridge.start()
    try:
        wait_until(lambda: bridge.connect_failures >= 3, timeout=30)
        assert not bridge.connected
    finally:
        bridge.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert TLS_REFUSALS[case] in warnings[0]
    assert warnings[0].startswith(f"broker 127.0.0.1:{broker.port}: TLS: ")
    assert "BEGIN" not in caplog.text  # no certificate or key material


def test_unreadable_tls_files_leave_the_bridge_offline_with_one_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = MqttSettings(
        host="127.0.0.1", port=1, tls=True, ca_file=str(tmp_path / "missing-ca.pem"),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
    )  # fmt: skip
    bridge = CrmBridge(settings, DEVICE, Submitted())
    bridge.start()
    bridge.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        f"TLS: cannot load mqtt.ca_file {tmp_path / 'missing-ca.pem'}: No such file or directory; "
        "the phone stays without the CRM broker until restarted"
    ]


def test_reasons_name_what_to_fix() -> None:
    settings = MqttSettings(host="broker.office", tls=True, ca_file="/etc/deskphone/ca.pem")
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_code = 20
    assert describe(untrusted, settings) == (
        "TLS: the broker's certificate is not signed by a CA the phone trusts "
        "(mqtt.ca_file /etc/deskphone/ca.pem)"
    )
    assert "connection refused" in describe(ConnectionRefusedError(111, "refused"), settings)
    assert "client certificate /c.pem (unknown ca)" in describe_tls_text(
        "failed to receive on socket: [SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca",
        MqttSettings(tls=True, client_cert="/c.pem", client_key="/c.key"),
    )


def test_a_tls_link_dropped_before_connack_without_a_certificate_is_the_missing_certificate() -> None:
    # The broker closed the socket before paho read its alert: the same reason as the alert would give.
    alert = "failed to receive on socket: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] certificate required"
    without = MqttSettings(tls=True)
    assert describe_dropped_handshake(without) == describe_tls_text(alert, without)
    assert "requires a client certificate" in (describe_dropped_handshake(without) or "")
    with_certificate = MqttSettings(tls=True, client_cert="/c.pem", client_key="/c.key")
    assert describe_dropped_handshake(with_certificate) is None
    assert describe_dropped_handshake(MqttSettings()) is None


@pytest.mark.e2e
def test_a_long_outage_is_recalled_now_and_then(
    tls_broker_factory: BrokerFactory,
    test_ca: TestCa,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import crm_bridge.bridge

    monkeypatch.setattr(crm_bridge.bridge, "REMIND_AFTER_S", 0.0)  # every retry is "an hour later"
    broker = tls_broker_factory(test_ca.issue_server("expired", expired=True))
    bridge = CrmBridge(tls_settings(broker, tmp_path, test_ca.cert_path, None), DEVICE, Submitted())
    bridge.start()
    try:
        wait_until(lambda: bridge.connect_failures >= 3, timeout=30)
    finally:
        bridge.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "retrying with backoff" in warnings[0]
    assert len(warnings) >= 3 and all(
        "still TLS: the broker's certificate has expired" in w for w in warnings[1:]
    )
