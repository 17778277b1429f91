"""PBX click-to-call: an INVITE asking the phone to answer by itself (``Call-Info: answer-after``,
``Alert-Info: auto-answer``, ``Answer-Mode: Auto``), sent by a real SIP peer (sipp) straight to the
phone. From a trusted PBX address (the phone's ``trusted_pbx`` is ``["127.0.0.1"]``) the phone alerts
like a CRM click-to-call and reports ``origin: pbx``. From 127.0.0.2 the INVITE is refused with 403
without ringing ("accept SIP only from the PBX", on by default); with ``sip.only_from_pbx = false`` it
rings as an ordinary call, the auto-answer header ignored."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.servers.ports import LOOPBACK
from tests.e2e.crm_support import Sipp, call_events, sipp_factory, start_phone, wait_ready

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (apt: sip-tester)"),
]

UNTRUSTED = "127.0.0.2"  # loopback too, but not in the phone's trusted_pbx


AUTO_ANSWER_HEADERS = pytest.mark.parametrize(
    "header",
    [
        f"Call-Info: <sip:{LOOPBACK}>;answer-after=0",
        "Alert-Info: <http://www.notused.com>;info=alert-autoanswer;delay=0",
        "Answer-Mode: Auto",
    ],
    ids=["call-info", "alert-info", "answer-mode"],
)
"""The three ways a PBX asks a phone to answer by itself, each as a real sipp INVITE carries it."""


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    yield from sipp_factory(tmp_path)


@AUTO_ANSWER_HEADERS
def test_trusted_pbx_click_to_call_alerts_and_reports_origin_pbx(phone_factory, mosquitto, crm, sipp, header):  # type: ignore[no-untyped-def]
    phone = start_phone(phone_factory, mosquitto)
    peer = sipp(local_ip=LOOPBACK, target=f"{LOOPBACK}:{phone.sip_port}", service="1001", headers=header)
    state = phone.wait_mode("alerting")
    assert state["ringer"] == "click_to_call"
    incoming = crm.wait_event("call.incoming")
    assert incoming["call"]["origin"] == "pbx"
    assert incoming["call"]["direction"] == "inbound"
    assert incoming["call"]["remote"]["number"] == "5000"

    phone.client.hook(True)  # lifting answers the PBX's call, which then connects the callee
    phone.wait_mode("in_call")
    assert peer.wait(30) == 0, peer.messages()[-3000:]  # 200 OK, ACK, a second of talk, BYE
    ended = crm.wait_event("call.ended")
    calls = call_events(crm.events(), incoming["call"]["call_id"])
    assert [e["type"] for e in calls] == ["call.incoming", "call.answered", "call.ended"]
    assert all(e["call"]["origin"] == "pbx" for e in calls)
    assert ended["call"]["disposition"] == "answered" and ended["call"]["hangup_by"] == "remote"
    assert ended["call"]["talk_s"] >= 0.9
    phone.client.hook(False)
    phone.wait_mode("idle")


def test_untrusted_source_is_refused_with_403_without_ringing(phone_factory, mosquitto, crm, sipp):  # type: ignore[no-untyped-def]
    phone = start_phone(phone_factory, mosquitto)
    header = "Answer-Mode: Auto"
    peer = sipp(local_ip=UNTRUSTED, target=f"{LOOPBACK}:{phone.sip_port}", service="1001", headers=header)
    assert peer.wait(30) != 0, "sipp's call should have failed"
    assert "SIP/2.0 403" in peer.messages()
    phone.wait_for(lambda s: "refused with 403" in phone.log_text(), what="the refusal in the log")
    state = phone.state()
    assert state["phone_state"] == "idle" and state["ringer"] is None
    assert not [e for e in state["events"] if e["type"].startswith("call.")]
    assert not [e for e in crm.events() if e["type"].startswith(("call.", "click_to_call."))]


@AUTO_ANSWER_HEADERS
def test_untrusted_source_rings_as_an_ordinary_call_when_any_source_may_call(  # type: ignore[no-untyped-def]
    phone_factory, mosquitto, crm, sipp, header
):
    phone = start_phone(phone_factory, mosquitto)
    phone.stop()
    phone.config_text = phone.config_text.replace("trusted_pbx", "only_from_pbx = false\ntrusted_pbx")
    phone.start()
    wait_ready(phone)
    peer = sipp(local_ip=UNTRUSTED, target=f"{LOOPBACK}:{phone.sip_port}", service="1001", headers=header)
    state = phone.wait_mode("ringing_in")
    assert state["ringer"] == "normal"
    incoming = crm.wait_event("call.incoming")
    assert incoming["call"]["origin"] == "manual"
    assert not [e for e in crm.events() if e["type"].startswith("click_to_call.")]

    phone.client.hook(True)
    phone.wait_mode("in_call")
    assert peer.wait(30) == 0, peer.messages()[-3000:]
    ended = crm.wait_event("call.ended")
    assert ended["call"]["origin"] == "manual" and ended["call"]["disposition"] == "answered"
    phone.client.hook(False)
    phone.wait_mode("idle")
