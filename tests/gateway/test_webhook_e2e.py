"""Any CRM: signed webhook cards (durable, never doubled) and click-to-call over ``POST /v1/calls``."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator

import httpx
import pytest

from lab.servers.gateway import API_TOKEN, WEBHOOK_SECRET
from lab.servers.webhook import WebhookReceiver
from lab.waiting import wait_until
from tests.e2e.crm_support import CrmView, start_phone
from tests.gateway.support import settled

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    crm = WebhookReceiver(WEBHOOK_SECRET)
    crm.start()
    try:
        yield crm
    finally:
        crm.stop()


def test_cards_are_signed_durable_and_never_doubled(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, mosquitto, gateway_factory, receiver, kamailio
):
    far = baresip_factory("1002", auto_answer=False)
    phone = start_phone(phone_factory, mosquitto)
    gateway = gateway_factory(webhook_url=receiver.url, webhook_steps=True)
    uri = f"sip:1001@{kamailio.host}:{kamailio.port}"

    far.dial(uri)
    phone.wait_mode("ringing_in")
    ringing = wait_until(lambda: receiver.accepted(), 15, "the ring step")
    assert ringing[0]["type"] == "call.ringing" and ringing[0]["call"]["crm_user"] == "7"
    phone.client.hook(True)
    phone.wait_event("call.answered")
    receiver.fail_next = 2  # the CRM stumbles on the answer step: retried until 2xx
    far.hangup()
    answered = phone.wait_event("call.ended")
    phone.client.hook(False)
    phone.wait_mode("idle")
    settled(gateway, 3)  # incoming, answered, ended

    receiver.stop()  # down for a while: a missed call meanwhile
    far.dial(uri)
    phone.wait_mode("ringing_in")
    far.hangup()
    missed = phone.wait_event("call.ended", nth=2)
    phone.wait_mode("idle")
    wait_until(lambda: httpx.get(f"{gateway.url}/healthz").json()["pending"]["webhook"] >= 1, 10, "queued")
    gateway.stop()  # and the gateway restarts meanwhile: the outbox is on disk
    gateway.start()
    receiver.start()
    settled(gateway, 0, timeout=30)

    cards = receiver.accepted()
    by_call = collections.defaultdict(list)
    for card in cards:
        by_call[card["call"]["call_id"]].append(card["type"])
    assert by_call[answered["call"]["call_id"]] == ["call.ringing", "call.answered", "call.finished"]
    assert by_call[missed["call"]["call_id"]] == ["call.ringing", "call.finished"]
    keys = [d.key for d in receiver.deliveries if d.status == 200]
    assert len(keys) == len(set(keys)), "a card was accepted twice"
    assert [d.status for d in receiver.deliveries].count(500) == 2
    assert all(d.status != 401 for d in receiver.deliveries), "a card with a bad signature"
    finished = next(
        c for c in cards if c["type"] == "call.finished" and c["call"]["call_id"] == missed["call"]["call_id"]
    )
    assert finished["call"]["disposition"] == "missed" and finished["call"]["talk_s"] == 0
    assert finished["call"]["desk"] == "desk-test" and finished["call"]["remote"]["number"] == "1002"


def test_v1_calls_dials_and_answers_with_the_phone_reply(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, mosquitto, gateway_factory, receiver, kamailio
):
    baresip_factory("1002", auto_answer=True)
    phone = start_phone(phone_factory, mosquitto)
    gateway = gateway_factory(webhook_url=receiver.url)
    watcher = CrmView(mosquitto)
    calls = f"{gateway.url}/v1/calls"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    try:
        refused = [
            httpx.post(calls, json={"desk": "desk-test", "number": "1002"}),
            httpx.post(
                calls, json={"desk": "desk-test", "number": "1002"}, headers={"Authorization": "Bearer no"}
            ),
            httpx.post(calls, content=b"{not json", headers=auth | {"Content-Type": "application/json"}),
            httpx.post(calls, json={"desk": "desk-test", "number": "sip:evil@x"}, headers=auth),
            httpx.post(calls, json={"desk": "desk-nope", "number": "1002"}, headers=auth),
            httpx.post(calls, json={"number": "1002"}, headers=auth),
        ]
        assert [r.status_code for r in refused] == [401, 401, 400, 422, 404, 400]
        assert [r.json()["error"]["code"] for r in refused] == [
            "unauthorized", "unauthorized", "invalid_payload", "invalid_number", "not_found",
            "invalid_payload",
        ]  # fmt: skip
        assert API_TOKEN not in str([r.text for r in refused])

        ok = httpx.post(
            calls,
            json={"crm_user": "7", "number": "1002", "display": "Lead 17", "crm": {"lead": 17}, "ttl_s": 30},
            headers=auth,
            timeout=20,
        )
        assert ok.status_code == 202, ok.text
        assert ok.json()["status"] == "accepted"
        state = phone.wait_mode("alerting")
        assert "Lead 17" in state["display"]
        busy = httpx.post(calls, json={"desk": "desk-test", "number": "1002"}, headers=auth, timeout=20)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "busy", busy.text
        dials = watcher.client.on("deskphone/desk-test/cmd/dial")
        assert len(dials) == 2, "a refused HTTP request reached the phone"
        phone.client.hook(True)
        phone.wait_event("call.answered")
        phone.client.hook(False)
        ended = phone.wait_event("call.ended")
        assert ended["call"]["crm"] == {"lead": 17}
        cards = wait_until(
            lambda: [c for c in receiver.accepted() if c["call"]["call_id"] == ended["call"]["call_id"]],
            15,
            "card",
        )
        assert cards[0]["call"]["crm"] == {"lead": 17} and cards[0]["call"]["origin"] == "crm"
        spec = httpx.get(f"{gateway.url}/v1/openapi.json").json()
        assert spec["openapi"].startswith("3.1") and "/v1/calls" in spec["paths"]
    finally:
        watcher.close()
    time.sleep(0)  # nothing else: the phone and gateway are stopped by their fixtures
