"""The phone daemon and its CRM over TLS, to a mosquitto that requires client certificates (issue 11).

The broker's only listener is TLS with a certificate of the test CA for 127.0.0.1; phone and CRM
present client certificates whose CN is their broker user (``use_identity_as_username``). A setup the
phone must refuse is logged once with its reason, and the phone goes on as a plain extension.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.servers.certs import CertFiles, TestCa
from lab.servers.mosquitto import Mosquitto
from tests.e2e.crm_support import BASE, DEVICE, CrmView, start_phone
from tests.servers.fixtures import TLS_REFUSALS, BrokerFactory, tls_refusal

pytestmark = pytest.mark.e2e

ACL = f"user crm\ntopic readwrite deskphone/#\n\nuser {DEVICE}\ntopic readwrite {BASE}/#\n"


def tls_options(trust: Path, client: CertFiles | None) -> str:
    options = f'tls = true\nca_file = "{trust}"\n'
    if client is not None:
        options += f'client_cert = "{client.cert}"\nclient_key = "{client.key}"\n'
    return options


@pytest.fixture
def broker(tls_broker_factory: BrokerFactory, test_ca: TestCa) -> Mosquitto:
    return tls_broker_factory(test_ca.issue_server("broker"), acl=ACL)


@pytest.fixture
def crm(broker: Mosquitto, test_ca: TestCa) -> Iterator[CrmView]:
    view = CrmView(broker, tls=test_ca.issue_client("crm", "crm"))
    try:
        yield view
    finally:
        view.close()


def test_click_to_call_and_events_over_tls(phone_factory, baresip_factory, broker, crm, test_ca):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    client = test_ca.issue_client("phone", DEVICE)
    phone = start_phone(phone_factory, broker, mqtt_options=tls_options(test_ca.cert_path, client))
    assert crm.wait_status(lambda s: s["online"] and s["registered"])["extension"] == "1001"
    assert f"u'{DEVICE}'" in broker.log(), "the broker did not take the certificate's CN as the user"

    request_id = crm.dial("1002")
    assert crm.wait_reply(request_id)["ok"] is True
    crm.wait_event("click_to_call.alerting")
    phone.wait_mode("alerting")
    phone.client.hook(True)
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    answered = crm.wait_event("call.answered")
    assert answered["call"]["origin"] == "crm"
    phone.client.hook(False)
    crm.wait_event("call.ended")
    assert "(TLS)" in phone.log_text()


@pytest.mark.parametrize("case", list(TLS_REFUSALS))
def test_refused_broker_is_logged_once_and_calls_still_work(  # type: ignore[no-untyped-def]
    case, phone_factory, baresip_factory, tls_broker_factory, test_ca, tmp_path
):
    far = baresip_factory("1002", auto_answer=True)
    server, trust, client = tls_refusal(case, test_ca, tmp_path, DEVICE)
    broker = tls_broker_factory(server, acl=ACL)
    phone = phone_factory(mqtt_port=broker.port, device_id=DEVICE, mqtt_options=tls_options(trust, client))
    phone.wait_for(
        lambda s: s["registered"] and s["mqtt"]["connect_failures"] >= 2, 30, "registration and retries"
    )

    phone.call_and_hang_up(far, "1002")

    state = phone.wait_for(lambda s: s["mqtt"]["connect_failures"] >= 3, 30, "a third retry")
    assert not state["mqtt"]["connected"]
    lines = [line for line in phone.log_text().splitlines() if f"broker 127.0.0.1:{broker.port}:" in line]
    warnings = [line for line in lines if " WARNING " in line]
    assert len(warnings) == 1, lines
    assert TLS_REFUSALS[case] in warnings[0]
    assert "BEGIN" not in phone.log_text()
