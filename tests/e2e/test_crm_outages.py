"""Nothing is lost between the phone and its CRM: broker outages, a phone killed with SIGKILL, stale
click-to-calls that waited at the broker, the last will and the retained status (issue 3)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from crm_bridge.codec import format_time
from lab.servers.mosquitto import Mosquitto
from tests.e2e.crm_support import (
    BASE,
    CrmView,
    assert_seq_contiguous,
    call_events,
    kamailio_invites,
    new_id,
    start_phone,
    wait_ready,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def crm(mosquitto: Mosquitto) -> Iterator[CrmView]:
    """A CRM with a persistent session: the broker keeps what arrives while the CRM reconnects."""
    view = CrmView(mosquitto, client_id=f"crm-{new_id('outage')}", persistent=True)
    try:
        yield view
    finally:
        view.close()


def types_of(events: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [e["type"] for e in events]


def test_broker_outage_during_a_call_loses_nothing(phone_factory, baresip_factory, mosquitto, crm):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    phone = start_phone(phone_factory, mosquitto)
    phone.client.hook(True)
    request_id = crm.dial("1002", crm={"case": "outage"})
    assert crm.wait_reply(request_id)["ok"]
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    answered = crm.wait_event("call.answered")
    before = len(crm.events())

    mosquitto.stop()
    phone.wait_for(lambda s: not s["mqtt"]["connected"], what="broker connection lost")
    time.sleep(1.0)  # talk on while the broker is away
    phone.client.keys("5")
    phone.client.hook(False)
    far.wait_for_event("CALL_CLOSED", timeout=10)
    # The call's end (call.ended) and the hook event wait in the outbox; the phone is idle again. Both
    # are waited for: the snapshot that first shows two pending events may predate the idle state.
    state = phone.wait_for(
        lambda s: s["mqtt"]["outbox_pending"] >= 2 and s["phone_state"] == "idle",
        what="events waiting in the outbox with the phone idle",
    )
    assert not state["mqtt"]["connected"]

    mosquitto.start()
    events = crm.wait_events(lambda ev: "call.ended" in types_of(ev) and "hook.onhook" in types_of(ev), 30)
    phone.wait_for(
        lambda s: s["mqtt"]["connected"] and s["mqtt"]["outbox_pending"] == 0, 15, "outbox drained"
    )
    events = crm.events()
    assert len(events) == before + 2, types_of(events)
    assert_seq_contiguous(events)
    assert sorted(types_of(events[before:])) == ["call.ended", "hook.onhook"]
    calls = call_events(events, answered["call"]["call_id"])
    assert types_of(calls) == ["call.outgoing", "call.ringing", "call.answered", "call.ended"]
    ended = calls[-1]["call"]
    assert ended["disposition"] == "answered" and ended["crm"] == {"case": "outage"}
    assert ended["talk_s"] >= 1.0
    status = crm.wait_status(lambda s: s.get("online") is True and s["state"] == "idle")
    assert status["registered"] is True


def test_undelivered_events_survive_sigkill_of_the_phone(phone_factory, baresip_factory, mosquitto, crm):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    phone = start_phone(phone_factory, mosquitto)
    crm.wait_event("registration.changed")
    delivered = crm.events()

    mosquitto.stop()
    phone.wait_for(lambda s: not s["mqtt"]["connected"], what="broker connection lost")
    phone.client.hook(True)
    phone.client.keys("1002#")
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    phone.wait_mode("in_call")
    phone.client.hook(False)
    far.wait_for_event("CALL_CLOSED", timeout=10)
    state = phone.wait_for(lambda s: any(e["type"] == "call.ended" for e in s["events"]), what="call.ended")
    pending = state["mqtt"]["outbox_pending"]
    assert pending >= 6  # offhook, outgoing, ringing, answered, onhook, ended
    phone.kill()  # SIGKILL: no chance to flush or say goodbye

    mosquitto.start()
    phone.start()
    wait_ready(phone)
    events = crm.wait_events(
        lambda ev: len(ev) >= len(delivered) + pending + 1, 30, "the outbox of the killed phone"
    )
    assert_seq_contiguous(events)
    assert events[: len(delivered)] == delivered
    undelivered = events[len(delivered) : len(delivered) + pending]
    assert [e["type"] for e in undelivered if e["type"].startswith("call.")] == [
        "call.outgoing",
        "call.ringing",
        "call.answered",
        "call.ended",
    ]
    assert undelivered[0]["type"] == "hook.offhook"
    (ended,) = [e for e in undelivered if e["type"] == "call.ended"]
    assert ended["call"]["disposition"] == "answered" and ended["call"]["origin"] == "manual"
    # The restarted phone goes on numbering after them.
    after = events[len(delivered) + pending :]
    assert after and after[0]["type"] == "registration.changed"
    assert len({e["event_id"] for e in events}) == len(events)


def test_a_dial_that_expired_at_the_broker_never_dials(phone_factory, mosquitto, crm, kamailio):  # type: ignore[no-untyped-def]
    phone = start_phone(phone_factory, mosquitto)
    phone.stop()  # its session and subscription stay at the broker: commands queue there meanwhile
    crm.wait_status(lambda s: s == {"v": 1, "online": False})

    by_expiry = crm.dial("1002", request_id=new_id("stale-expiry"), ttl_s=60, expiry_s=1)
    soon = format_time(datetime.now(UTC) + timedelta(seconds=1))
    by_expires_at = crm.dial("1002", request_id=new_id("stale-at"), ttl_s=None, expires_at=soon)
    time.sleep(2.0)  # both are now past their time to live, still waiting at the broker

    phone.start()
    wait_ready(phone)
    sentinel = new_id("sentinel")
    crm.command("cancel", {"v": 1, "id": sentinel})
    assert crm.wait_reply(sentinel)["error"]["code"] == "not_found"  # every queued command is handled

    assert crm.wait_reply(by_expires_at)["error"]["code"] == "expired"
    assert crm.replies(by_expiry) == []  # the broker discarded it: the phone never saw it
    assert not [e for e in crm.events() if e["type"].startswith(("click_to_call.", "call."))]
    assert phone.state()["phone_state"] == "idle"
    assert kamailio_invites(kamailio) == []


def test_last_will_and_a_retained_current_status(phone_factory, baresip_factory, mosquitto, crm):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    phone = start_phone(phone_factory, mosquitto)

    # A CRM that arrives later sees the retained status at once.
    late = CrmView(mosquitto)
    try:
        late.client.wait_for(lambda msgs: any(m.topic == f"{BASE}/status" and m.retain for m in msgs))
        (retained,) = [m.json for m in late.statuses()]
        assert retained["online"] is True and retained["registered"] is True
        assert retained["state"] == "idle" and retained["extension"] == "1001"
        assert retained["firmware"] and retained["since"].endswith("Z")
    finally:
        late.close()

    request_id = crm.dial("1002")
    crm.wait_reply(request_id)
    crm.wait_status(lambda s: s.get("state") == "ringing")  # alerting
    phone.client.hook(True)
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    busy = crm.wait_status(lambda s: s.get("state") == "busy")
    phone.client.hook(False)
    idle = crm.wait_status(lambda s: s.get("state") == "idle" and s["since"] > busy["since"])
    assert idle["online"] is True and idle["registered"] is True

    phone.kill()
    will = crm.wait_status(lambda s: s.get("online") is False)
    assert will == {"v": 1, "online": False}
    late = CrmView(mosquitto)
    try:
        late.client.wait_for(lambda msgs: any(m.topic == f"{BASE}/status" for m in msgs))
        assert [(m.json, m.retain) for m in late.statuses()] == [({"v": 1, "online": False}, True)]
    finally:
        late.close()
    assert json.dumps(will)
