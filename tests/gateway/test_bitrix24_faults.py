"""Faults between the phones, the gateway and Bitrix24: nothing lost, nothing doubled.

The gateway SIGKILLed mid-call, the portal down for 30 s (refusing connections, then answering 503),
the broker restarted mid-call. Real processes everywhere, the fake portal recording what it gets.
"""

from __future__ import annotations

import time

import pytest

from lab.waiting import wait_until
from tests.e2e.crm_support import start_phone
from tests.gateway.support import register_of, settled

pytestmark = pytest.mark.e2e


def one_answered_call_begins(far, phone, kamailio, nth: int = 1) -> str:  # type: ignore[no-untyped-def]
    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    incoming = phone.wait_event("call.incoming", timeout=15, nth=nth)
    phone.wait_mode("ringing_in")
    phone.client.hook(True)
    phone.wait_event("call.answered", nth=nth)
    return str(incoming["call"]["call_id"])


def assert_one_card(portal, call_id: str, status: str) -> None:  # type: ignore[no-untyped-def]
    regs = register_of(portal, call_id)
    assert len(regs) == 1, regs
    finishes = portal.finishes(regs[0].answer["result"]["CALL_ID"])
    assert len(finishes) == 1, finishes
    assert finishes[0].params["STATUS_CODE"] == status
    assert finishes[0].at > regs[0].at


def test_gateway_killed_mid_call_finishes_it_once_after_restart(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, mosquitto, portal, b24_gateway, kamailio
):
    far = baresip_factory("1002", auto_answer=False)
    phone = start_phone(phone_factory, mosquitto)
    call_id = one_answered_call_begins(far, phone, kamailio)
    wait_until(lambda: register_of(portal, call_id), 15, "register before the kill")
    settled(b24_gateway, 2)

    b24_gateway.kill()  # SIGKILL between call.answered and call.ended
    far.hangup()
    phone.wait_event("call.ended")
    phone.client.hook(False)
    b24_gateway.start()  # the same state and client id: the broker kept call.ended for its session

    wait_until(lambda: portal.finishes(), 20, "finish after the restart")
    settled(b24_gateway, 1)
    assert_one_card(portal, call_id, "200")


def test_portal_down_30_s_gets_every_card_afterwards_in_order(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, mosquitto, portal, b24_gateway, kamailio
):
    far = baresip_factory("1002", auto_answer=False)
    phone = start_phone(phone_factory, mosquitto)
    uri = f"sip:1001@{kamailio.host}:{kamailio.port}"
    portal.stop()  # connections refused
    down_at = time.monotonic()
    calls = []
    for nth in (1, 2, 3):
        far.dial(uri)
        calls.append(phone.wait_event("call.incoming", timeout=15, nth=nth)["call"]["call_id"])
        phone.wait_mode("ringing_in")
        far.hangup()
        phone.wait_event("call.ended", nth=nth)
        phone.wait_mode("idle")
    time.sleep(max(0.0, 15 - (time.monotonic() - down_at)))  # the outage itself: refused for 15 s
    portal.unavailable = True  # then up, but answering 503 for 15 s
    portal.start()
    wait_until(lambda: [r for r in portal.records if r.status == 503], 15, "a retry meeting the 503")
    time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
    portal.unavailable = False

    wait_until(lambda: len(portal.finishes()) == 3, 30, "three finishes after the outage")
    settled(b24_gateway, 1)
    for call_id in calls:
        assert_one_card(portal, call_id, "304")
    registered = [
        r.params["EXTERNAL_CALL_ID"] for r in portal.requests("telephony.externalcall.register", ok=True)
    ]
    assert registered == calls, "pop-ups out of order"
    health = settled(b24_gateway, 1)
    assert health["buried"] == {"bitrix24": 0}


def test_broker_restart_mid_call_resumes_the_session_and_loses_nothing(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, mosquitto, portal, b24_gateway, kamailio
):
    far = baresip_factory("1002", auto_answer=False)
    phone = start_phone(phone_factory, mosquitto)
    call_id = one_answered_call_begins(far, phone, kamailio)
    wait_until(lambda: register_of(portal, call_id), 15, "register before the broker restart")

    mosquitto.stop()
    far.hangup()  # call.ended waits in the phone's outbox
    phone.wait_event("call.ended")
    phone.client.hook(False)
    mosquitto.start()

    wait_until(lambda: portal.finishes(), 45, "finish after the broker came back")
    settled(b24_gateway, 1)
    assert_one_card(portal, call_id, "200")
    assert "session present: True" in b24_gateway.log_text()
