"""The phone and its CRM over a real mosquitto: click-to-call, call records, errors (issue 3).

Everything runs for real on 127.0.0.1: the ``deskphone run`` daemon on the sim board, kamailio as
registrar and proxy, baresip 1002 as the far end, mosquitto as the broker, and a paho MQTT 5 client as
the CRM (``CrmView``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.e2e.crm_support import (
    CrmView,
    assert_seq_contiguous,
    call_events,
    kamailio_invites,
    start_phone,
)
from tests.servers.mosquitto import Mosquitto

pytestmark = pytest.mark.e2e

CRM_OBJECT = {"contact_id": 4711, "user": "anna", "tags": ["lead", "q3"], "deal": {"value": 1200.5}}


@pytest.fixture
def crm(mosquitto: Mosquitto) -> Iterator[CrmView]:
    view = CrmView(mosquitto)
    try:
        yield view
    finally:
        view.close()


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_click_to_call_story(phone_factory, baresip_factory, mosquitto, crm, kamailio):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    phone = start_phone(phone_factory, mosquitto)

    request_id = crm.dial("1002", crm=CRM_OBJECT, display="ACME GmbH", ttl_s=30)
    reply = crm.wait_reply(request_id)
    assert reply == {"v": 1, "id": request_id, "ok": True, "result": {"status": "accepted"}}
    alerting = crm.wait_event("click_to_call.alerting")
    assert alerting["data"]["request_id"] == request_id
    assert alerting["data"]["number"] == "1002"
    assert alerting["data"]["crm"] == CRM_OBJECT
    assert alerting["data"]["display"] == "ACME GmbH"
    state = phone.wait_mode("alerting")
    assert state["ringer"] == "click_to_call"
    assert "1002" in state["display"] and "ACME GmbH" in state["display"]
    assert kamailio_invites(kamailio) == [], "the phone dialled before the handset was lifted"

    phone.client.hook(True)
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    answered = crm.wait_event("call.answered")
    answered_at = time.monotonic()
    time.sleep(1.5)  # talk
    phone.client.hook(False)
    hung_up_at = time.monotonic()
    ended = crm.wait_event("call.ended")
    far.wait_for_event("CALL_CLOSED", timeout=10)

    call_id = answered["call"]["call_id"]
    events = crm.events()
    types = [e["type"] for e in events if e["type"] != "registration.changed"]
    assert types == [
        "click_to_call.alerting",
        "hook.offhook",
        "call.outgoing",
        "call.ringing",
        "call.answered",
        "hook.onhook",
        "call.ended",
    ] or types == [
        "click_to_call.alerting",
        "hook.offhook",
        "call.outgoing",
        "call.ringing",
        "call.answered",
        "call.ended",
        "hook.onhook",
    ], types
    assert_seq_contiguous(events)
    calls = call_events(events, call_id)
    assert [e["type"] for e in calls] == ["call.outgoing", "call.ringing", "call.answered", "call.ended"]
    for event in calls:
        assert event["device_id"] == "desk-test"
        assert event["call"]["crm"] == CRM_OBJECT, f"crm not echoed in {event['type']}"
        assert event["call"]["origin"] == "crm"
        assert event["call"]["direction"] == "outbound"
        assert event["call"]["remote"]["number"] == "1002"

    record = ended["call"]
    assert record["disposition"] == "answered"
    assert record["hangup_by"] == "local"
    assert record["sip_call_id"]
    assert abs(record["talk_s"] - (hung_up_at - answered_at)) < 0.5, (
        record["talk_s"],
        hung_up_at - answered_at,
    )
    assert record["ring_s"] >= 0
    started, answered_ts, ended_ts = (parse_ts(record[k]) for k in ("started_at", "answered_at", "ended_at"))
    assert started <= answered_ts <= ended_ts
    assert abs((ended_ts - answered_ts).total_seconds() - record["talk_s"]) < 0.002
    assert abs((answered_ts - started).total_seconds() - record["ring_s"]) < 0.002
    assert crm.replies(request_id) == [reply], "more than one reply"
    phone.wait_mode("idle")
