"""The far end dies mid-call (SIGKILL, no BYE): the phone ends the call on RTP inactivity."""

from __future__ import annotations

import pytest

from lab.servers.phone import events_of

pytestmark = pytest.mark.e2e


def test_far_end_killed_mid_call_ends_the_call_on_rtp_timeout(phone_factory, baresip_factory, kamailio):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)
    phone = phone_factory()
    phone.stop()
    phone.config_text = phone.config_text.replace(
        "retry_interval_s = 2", "retry_interval_s = 2\nrtp_timeout_s = 3"
    )
    phone.start()
    phone.wait_for(lambda s: s["registered"], what="registration")
    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    phone.wait_mode("ringing_in")
    phone.client.hook(True)
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    phone.wait_mode("in_call")
    assert far._proc is not None
    far._proc.kill()  # no BYE, no more RTP
    far._proc.wait()
    ended = phone.wait_event("call.ended", timeout=20)
    assert ended["call"]["disposition"] == "answered"
    assert ended["call"]["hangup_by"] == "local"
    assert ended["call"]["sip_code"] == 408
    assert "rtp" in (ended["call"]["reason"] or "").lower()
    state = phone.wait_mode("ended")
    assert len(events_of(state, "call.ended")) == 1
    phone.client.hook(False)
    phone.wait_mode("idle")
    far._proc = None
