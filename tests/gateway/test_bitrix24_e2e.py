"""Bitrix24 through the gateway, end to end: the fake portal (HTTPS, OAuth, strict methods), the
gateway process, mosquitto, kamailio, baresip and the phone daemon, all real and on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from lab.bitrix24.portal import FakePortal
from lab.servers.gateway import GatewayProcess
from lab.waiting import wait_until
from tests.e2e.crm_support import CrmView, kamailio_invites, start_phone
from tests.gateway.conftest import ACME, ANNA, VERA_WITHOUT_DESK
from tests.gateway.support import register_of, registers, settled

pytestmark = pytest.mark.e2e

ACME_NAME, ACME_NUMBER = ACME


def test_click_to_call_story(phone_factory, baresip_factory, mosquitto, portal, b24_gateway, kamailio):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    phone = start_phone(phone_factory, mosquitto)

    call_id, answer = portal.click_to_call(ANNA, ACME_NUMBER, entity_type="CONTACT", entity_id=42)
    assert answer.status_code == 200, answer.text
    state = phone.wait_mode("alerting")
    assert ACME_NAME in state["display"], state["display"]
    assert kamailio_invites(kamailio) == [], "dialled before the handset was lifted"

    phone.client.hook(True)
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    phone.wait_event("call.answered")
    answered_at = time.monotonic()
    time.sleep(2.0)  # talk
    phone.client.hook(False)
    talk_s = time.monotonic() - answered_at
    ended = phone.wait_event("call.ended")
    assert ended["call"]["crm"]["b24"]["call_id"] == call_id

    wait_until(lambda: portal.finishes(call_id), 20, "finish at the portal")
    settled(b24_gateway, 1)
    finishes = portal.finishes(call_id)
    assert len(finishes) == 1, finishes
    params = finishes[0].params
    assert params["STATUS_CODE"] == "200"
    assert int(params["USER_ID"]) == ANNA
    assert abs(int(params["DURATION"]) - talk_s) <= 1.0, (params["DURATION"], talk_s)
    assert registers(portal) == [], "Bitrix24 registered this call itself: no register from us"
    record = portal.state.calls[call_id].finished
    assert record is not None and record["CALL_STATUS"] == 1


def test_calls_from_the_desk_each_get_one_register_and_one_finish(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, mosquitto, portal, b24_gateway, kamailio
):
    """Incoming answered, incoming missed, keypad outgoing busy, keypad outgoing answered; the access
    token expires in the middle and is refreshed without losing a card."""
    far = baresip_factory("1002", auto_answer=False)
    phone = start_phone(phone_factory, mosquitto)
    pbx_uri = f"sip:1001@{kamailio.host}:{kamailio.port}"
    expected: list[tuple[str, int, str]] = []  # (our call id, TYPE, STATUS_CODE)

    # incoming, answered
    far.dial(pbx_uri)
    incoming = phone.wait_event("call.incoming", timeout=15, nth=1)
    wait_until(lambda: register_of(portal, incoming["call"]["call_id"]), 15, "register of the incoming call")
    ringing = phone.wait_for(lambda s: ACME_NAME in s["display"], 10, "the CRM's name on the display")
    assert ringing["phone_state"] == "ringing_in"
    phone.client.hook(True)
    phone.wait_event("call.answered", nth=1)
    time.sleep(1.0)
    far.hangup()
    phone.wait_event("call.ended", nth=1)
    phone.client.hook(False)
    phone.wait_mode("idle")
    expected.append((incoming["call"]["call_id"], 2, "200"))

    portal.expire_tokens()  # mid-run: the next request meets expired_token and the SDK refreshes

    # incoming, missed
    far.dial(pbx_uri)
    missed = phone.wait_event("call.incoming", timeout=15, nth=2)
    phone.wait_mode("ringing_in")
    far.hangup()
    phone.wait_event("call.ended", nth=2)
    phone.wait_mode("idle")
    expected.append((missed["call"]["call_id"], 2, "304"))

    # keypad, busy
    phone.client.hook(True)
    phone.client.keys("1002#")
    far.wait_for_event("CALL_INCOMING", timeout=10)
    phone.wait_event("call.ringing", nth=1)
    far.hangup()  # baresip refuses an unanswered call with 486
    busy = phone.wait_event("call.ended", nth=3)
    phone.client.hook(False)
    phone.wait_mode("idle")
    expected.append((busy["call"]["call_id"], 1, "486"))

    # keypad, answered
    phone.client.hook(True)
    phone.client.keys("1002#")
    far.wait_for_event("CALL_INCOMING", timeout=10)
    far.accept()
    phone.wait_event("call.answered", nth=2)
    phone.client.hook(False)
    keypad = phone.wait_event("call.ended", nth=4)
    phone.wait_mode("idle")
    expected.append((keypad["call"]["call_id"], 1, "200"))

    settled(b24_gateway, 1)
    for call_id, call_type, status in expected:
        regs = register_of(portal, call_id)
        assert len(regs) == 1, (call_id, regs)
        assert int(regs[0].params["USER_ID"]) == ANNA
        assert int(regs[0].params["TYPE"]) == call_type
        assert regs[0].params["PHONE_NUMBER"] == "1002"
        assert str(regs[0].params["SHOW"]) == "1"  # JSON alone, a query string in a batch
        portal_call = regs[0].answer["result"]["CALL_ID"]
        finishes = portal.finishes(portal_call)
        assert len(finishes) == 1, (call_id, finishes)
        assert finishes[0].params["STATUS_CODE"] == status, (call_id, finishes[0].params)
        assert finishes[0].at > regs[0].at
    answered_finish = portal.finishes(register_of(portal, expected[0][0])[0].answer["result"]["CALL_ID"])[0]
    assert 1 <= int(answered_finish.params["DURATION"]) <= 3
    refreshes = portal.requests("oauth.token", ok=True)
    assert len(refreshes) == 1, "the expired token was not refreshed exactly once"
    expired = [r for r in portal.records if r.status == 401]
    assert expired and all(r.answer["error"] == "expired_token" for r in expired)
    log = b24_gateway.log_text()
    assert not [s for s in portal.issued_secrets if s in log], "a token or the client secret is in the log"
    for record in portal.records:
        if record.kind == "rest":
            assert record.answer and "auth" not in record.params


def test_accountant_and_internal_calls_never_reach_the_crm(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, mosquitto, portal, b24_gateway, kamailio
):
    far = baresip_factory("1002", auto_answer=True)
    reception = baresip_factory("1004", auto_answer=True)
    anna = start_phone(phone_factory, mosquitto)
    accountant = phone_factory(mqtt_port=mosquitto.port, device_id="desk-acct", user="1003")
    accountant.wait_for(lambda s: s["registered"] and s["mqtt"]["connected"], 15, "accountant ready")

    # the accountant's plain extension calls a client
    accountant.client.hook(True)
    accountant.client.keys("1002#")
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    accountant.client.hook(False)
    accountant.wait_event("call.ended")
    # Anna calls reception: an internal call
    anna.client.hook(True)
    anna.client.keys("1004#")
    reception.wait_for_event("CALL_ESTABLISHED", timeout=10)
    anna.client.hook(False)
    anna.wait_event("call.ended")

    settled(b24_gateway, 8)  # outgoing, ringing, answered, ended of both calls
    touched = [
        r.method
        for r in portal.records
        if r.kind == "rest" and r.method.startswith("telephony.externalcall.")
    ]
    assert touched == [], touched


def test_wrong_application_token_is_refused_and_nothing_dials(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, mosquitto, portal, b24_gateway, kamailio
):
    baresip_factory("1002", auto_answer=True)
    phone = start_phone(phone_factory, mosquitto)
    watcher = CrmView(mosquitto)
    try:
        _, answer = portal.click_to_call(ANNA, ACME_NUMBER, application_token="not-the-token")
        assert answer.status_code == 403
        # A good click afterwards: the only cmd/dial the broker carried is that one.
        good_call, answer = portal.click_to_call(ANNA, ACME_NUMBER)
        assert answer.status_code == 200
        phone.wait_mode("alerting")
        dials = wait_until(lambda: watcher.client.on("deskphone/desk-test/cmd/dial"), 10, "the good cmd/dial")
        assert len(dials) == 1 and dials[0].json["crm"]["b24"]["call_id"] == good_call
        # Another number clicked while the desk alerts: the phone says busy, that call is finished 486.
        refused_call, answer = portal.click_to_call(ANNA, "1005")
        assert answer.status_code == 200
        finishes = wait_until(lambda: portal.finishes(refused_call), 15, "finish of the refused click")
        assert finishes[0].params["STATUS_CODE"] == "486", finishes[0].params
        assert finishes[0].params["FAILED_REASON"].startswith("busy")
        # The same number clicked again: Bitrix24 hands out the CALL_ID of the call still alerting
        # (its 30-minute rule); the refusal must not finish that card.
        same_call, answer = portal.click_to_call(ANNA, ACME_NUMBER)
        assert same_call == good_call and answer.status_code == 200
        settled(b24_gateway, 0)
        assert "left open" in b24_gateway.log_text()
        assert portal.finishes(good_call) == [], "the card of the alerting click was finished"
    finally:
        watcher.close()
    assert kamailio_invites(kamailio) == []


def test_user_without_a_desk_gets_the_call_finished_with_a_reason(
    portal: FakePortal, b24_gateway: GatewayProcess
):  # type: ignore[no-untyped-def]
    call_id, answer = portal.click_to_call(VERA_WITHOUT_DESK, ACME_NUMBER)
    assert answer.status_code == 200
    finishes = wait_until(lambda: portal.finishes(call_id), 15, "finish of the deskless click")
    assert len(finishes) == 1
    assert finishes[0].params["STATUS_CODE"] == "480"
    assert "no desk phone for Bitrix24 user 9" in finishes[0].params["FAILED_REASON"]
    assert int(finishes[0].params["USER_ID"]) == VERA_WITHOUT_DESK
