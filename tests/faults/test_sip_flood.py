"""The phone keeps answering a normal call while another process floods its SIP port (loopback only)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e

FLOOD_COUNT = 4000
FLOOD_SECONDS = 15.0


def test_normal_call_is_answered_during_a_sip_flood(phone_factory, baresip_factory, kamailio):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)
    phone = phone_factory()
    phone.wait_for(lambda s: s["registered"], what="registration")
    flood = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.faults.flood",
            str(phone.sip_port),
            str(FLOOD_COUNT),
            str(FLOOD_SECONDS),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2.0)  # the flood is well under way
        for _ in range(2):
            far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
            phone.wait_mode("ringing_in", timeout=10)
            phone.client.hook(True)
            far.wait_for_event("CALL_ESTABLISHED", timeout=10)
            phone.wait_mode("in_call")
            time.sleep(1.0)
            far.hangup()
            far.wait_for_event("CALL_CLOSED", timeout=10)
            phone.wait_mode("ended")
            phone.client.hook(False)
            phone.wait_mode("idle")
        assert flood.poll() is None, "the flood ended before the calls: the test proved nothing"
    finally:
        out, _ = flood.communicate(timeout=FLOOD_SECONDS + 10)
    assert int(out.strip()) > FLOOD_COUNT // 4
    state = phone.state()
    assert phone.alive()
    assert state["registered"] is True
    ended = [e for e in state["events"] if e["type"] == "call.ended"]
    assert [e["call"]["disposition"] for e in ended] == ["answered", "answered"]
    assert not [
        e for e in state["events"] if e["type"] == "call.incoming" and e["call"]["remote"]["number"] != "1002"
    ]
