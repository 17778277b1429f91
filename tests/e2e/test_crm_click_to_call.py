"""The phone and its CRM over a real mosquitto: click-to-call, call records, errors (issue 3).

Everything runs for real on 127.0.0.1: the ``deskphone run`` daemon on the sim board, kamailio as
registrar and proxy, baresip 1002 as the far end, mosquitto as the broker, and a paho MQTT 5 client as
the CRM (``CrmView``).
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime

import pytest

from tests.e2e.crm_support import (
    RefusingCallee,
    assert_seq_contiguous,
    call_events,
    kamailio_invites,
    new_id,
    start_phone,
)

pytestmark = pytest.mark.e2e

CRM_OBJECT = {"contact_id": 4711, "user": "anna", "tags": ["lead", "q3"], "deal": {"value": 1200.5}}


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


def test_handset_already_up_and_idle_dials_at_once_and_cmd_hangup_ends_it(
    phone_factory, baresip_factory, mosquitto, crm
):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    phone = start_phone(phone_factory, mosquitto)
    phone.client.hook(True)
    phone.wait_mode("dialing")

    request_id = crm.dial("1002", crm={"lead": 17})
    reply = crm.wait_reply(request_id)
    assert reply["ok"] is True and reply["result"]["status"] == "dialing"
    call_id = reply["result"]["call_id"]
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    answered = crm.wait_event("call.answered")
    assert answered["call"]["call_id"] == call_id
    assert not [e for e in crm.events() if e["type"] == "click_to_call.alerting"], "it alerted instead"
    answered_at = time.monotonic()
    time.sleep(1.0)

    hangup_id = new_id("h")
    crm.command("hangup", {"v": 1, "id": hangup_id, "call_id": call_id})
    hung_up_at = time.monotonic()
    assert crm.wait_reply(hangup_id)["result"] == {"status": "ended", "call_id": call_id}
    ended = crm.wait_event("call.ended")
    far.wait_for_event("CALL_CLOSED", timeout=10)
    calls = call_events(crm.events(), call_id)
    assert [e["type"] for e in calls] == ["call.outgoing", "call.ringing", "call.answered", "call.ended"]
    assert all(e["call"]["crm"] == {"lead": 17} and e["call"]["origin"] == "crm" for e in calls)
    assert ended["call"]["disposition"] == "answered"
    assert ended["call"]["hangup_by"] == "local"
    assert abs(ended["call"]["talk_s"] - (hung_up_at - answered_at)) < 0.5
    phone.wait_mode("ended")  # handset still up: busy tone until it is put down
    phone.client.hook(False)
    phone.wait_mode("idle")


def test_incoming_call_answered(phone_factory, baresip_factory, mosquitto, crm, kamailio):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)
    phone = start_phone(phone_factory, mosquitto)
    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    incoming = crm.wait_event("call.incoming")
    rang_at = time.monotonic()
    phone.wait_mode("ringing_in")
    time.sleep(0.5)
    phone.client.hook(True)
    lifted_at = time.monotonic()
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    crm.wait_event("call.answered")
    time.sleep(1.0)
    far.hangup()
    hung_up_at = time.monotonic()
    ended = crm.wait_event("call.ended")

    call_id = incoming["call"]["call_id"]
    calls = call_events(crm.events(), call_id)
    assert [e["type"] for e in calls] == ["call.incoming", "call.answered", "call.ended"]
    for event in calls:
        assert event["call"]["direction"] == "inbound"
        assert event["call"]["origin"] == "manual"
        assert event["call"]["remote"]["number"] == "1002"
        assert event["call"]["crm"] is None
    record = ended["call"]
    assert record["disposition"] == "answered"
    assert record["hangup_by"] == "remote"
    assert abs(record["ring_s"] - (lifted_at - rang_at)) < 0.5, record
    assert abs(record["talk_s"] - (hung_up_at - lifted_at)) < 0.5, record
    assert record["sip_call_id"]
    phone.client.hook(False)
    phone.wait_mode("idle")


def test_incoming_call_missed(phone_factory, baresip_factory, mosquitto, crm, kamailio):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)
    phone = start_phone(phone_factory, mosquitto)
    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    crm.wait_event("call.incoming")
    rang_at = time.monotonic()
    time.sleep(1.5)
    far.hangup()
    gave_up_at = time.monotonic()
    ended = crm.wait_event("call.ended")
    record = ended["call"]
    assert record["direction"] == "inbound"
    assert record["disposition"] == "missed"
    assert record["hangup_by"] == "remote"
    assert record["talk_s"] == 0
    assert record["answered_at"] is None
    assert abs(record["ring_s"] - (gave_up_at - rang_at)) < 0.5, record
    phone.wait_for(lambda s: s["missed_call"] and s["phone_state"] == "idle", what="missed call shown")


def test_outgoing_call_busy(phone_factory, baresip_factory, mosquitto, crm):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)
    phone = start_phone(phone_factory, mosquitto)
    phone.client.hook(True)
    request_id = crm.dial("1002", crm={"k": "busy"})
    assert crm.wait_reply(request_id)["ok"]
    far.wait_for_event("CALL_INCOMING", timeout=10)
    crm.wait_event("call.ringing")
    far.hangup()  # baresip refuses a call it has not answered with 486 Busy Here
    ended = crm.wait_event("call.ended")
    record = ended["call"]
    assert record["disposition"] == "busy", record
    assert record["sip_code"] == 486
    assert record["hangup_by"] == "remote"
    assert record["talk_s"] == 0 and record["answered_at"] is None
    assert record["crm"] == {"k": "busy"}
    state = phone.wait_mode("ended")
    assert state["hook"] == "up"
    phone.client.hook(False)
    phone.wait_mode("idle")


def test_outgoing_call_not_answered_is_cancelled_by_hanging_up(
    phone_factory, baresip_factory, mosquitto, crm
):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)  # rings and never answers
    phone = start_phone(phone_factory, mosquitto)
    phone.client.hook(True)
    phone.client.keys("1002#")
    dialled_at = time.monotonic()
    far.wait_for_event("CALL_INCOMING", timeout=10)
    outgoing = crm.wait_event("call.outgoing")
    crm.wait_event("call.ringing")
    time.sleep(2.0)
    phone.client.hook(False)
    gave_up_at = time.monotonic()
    far.wait_for_event("CALL_CLOSED", timeout=10)
    ended = crm.wait_event("call.ended")
    record = ended["call"]
    assert record["call_id"] == outgoing["call"]["call_id"]
    assert record["origin"] == "manual" and record["crm"] is None
    assert record["disposition"] == "cancelled"
    assert record["hangup_by"] == "local"
    assert record["talk_s"] == 0 and record["answered_at"] is None
    started = parse_ts(record["started_at"])
    assert abs((parse_ts(record["ended_at"]) - started).total_seconds() - record["ring_s"]) < 0.002
    assert abs(record["ring_s"] - (gave_up_at - dialled_at)) < 0.5, record
    phone.wait_mode("idle")


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (apt: sip-tester)")
def test_outgoing_call_no_answer_from_the_far_end(phone_factory, mosquitto, crm, kamailio, tmp_path):  # type: ignore[no-untyped-def]
    callee = RefusingCallee(
        tmp_path / "callee-1003", kamailio, "1003", "pw3", 480, "Temporarily Unavailable", ring_ms=2000
    )
    try:
        phone = start_phone(phone_factory, mosquitto)
        phone.client.hook(True)
        request_id = crm.dial("1003", crm={"k": "no-answer"})
        dialled_at = time.monotonic()
        assert crm.wait_reply(request_id)["result"]["status"] == "dialing"
        crm.wait_event("call.ringing")
        ended = crm.wait_event("call.ended")
        refused_at = time.monotonic()
        assert callee.wait() == 0
    finally:
        callee.stop()
    record = ended["call"]
    assert record["disposition"] == "no_answer", record
    assert record["sip_code"] == 480
    assert record["hangup_by"] == "remote"
    assert record["talk_s"] == 0 and record["answered_at"] is None
    assert record["crm"] == {"k": "no-answer"} and record["origin"] == "crm"
    assert abs(record["ring_s"] - (refused_at - dialled_at)) < 0.5, record
    assert record["ring_s"] >= 1.9
    phone.client.hook(False)
    phone.wait_mode("idle")
