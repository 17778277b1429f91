"""Being transferred: baresip (the far end) sends a REFER; the user agent follows it with a call of its
own, under its own id, and never lets pjsua2 reuse the transferred call's object."""

from __future__ import annotations

import time

import pytest

from lab.servers.audio import dominant_frequency, loudest_stretch
from sip_stack.events import (
    CallAnswered,
    CallEnded,
    CallTransferred,
    OutgoingCallStarted,
    RegistrationChanged,
)
from tests.e2e.line_support import REUSE_WARNINGS
from tests.sip_stack.conftest import phone_settings
from tests.sip_stack.test_agent_e2e import RATE, FakeAlsa

pytestmark = pytest.mark.e2e
pytest.importorskip("pjsua2")


def wait_no_calls(ua, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while ua.status()["calls"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ua.status()["calls"] == {}


def start_call(kamailio, ua_factory, bob, settings_kw=None):  # type: ignore[no-untyped-def]
    ua, rec = ua_factory(phone_settings(kamailio, log_level=4, **(settings_kw or {})))
    rec.wait_for(RegistrationChanged, lambda e: e.registered)
    ua.make_call("c1", "bob")
    ua.route_audio("c1", microphone=True)
    rec.wait_for(CallAnswered, lambda e: e.call_id == "c1")
    bob.wait_for_event("CALL_ESTABLISHED")
    return ua, rec


def test_blind_transfer_to_an_extension_is_a_call_of_our_own(
    kamailio, baresip_factory, ua_factory, tone_wav, tmp_path, caplog
) -> None:
    from lab.servers.audio import write_sine_wav

    caplog.set_level("DEBUG")
    bob = baresip_factory("bob", auto_answer=True)
    carol = baresip_factory(
        "carol", auto_answer=True, source_wav=write_sine_wav(tmp_path / "c.wav", 660.0, 30)
    )
    ua, rec = start_call(kamailio, ua_factory, bob)
    alsa = FakeAlsa(ua)
    alsa.start()

    bob.command("transfer", f"sip:carol@{kamailio.host}:{kamailio.port}")
    moved = rec.wait_for(CallTransferred)
    assert moved.call_id == "c1" and moved.new_call_id != "c1" and moved.remote_number == "carol"
    assert moved.kind == "refer"
    new_id = moved.new_call_id
    started = rec.wait_for(OutgoingCallStarted, lambda e: e.call_id == new_id)
    assert started.sip_call_id
    ua.route_audio(new_id, microphone=True)
    rec.wait_for(CallAnswered, lambda e: e.call_id == new_id)
    carol.wait_for_event("CALL_ESTABLISHED")
    # baresip ends the transferred call itself once the NOTIFY says 200
    assert rec.wait_for(CallEnded, lambda e: e.call_id == "c1").by_remote is True
    time.sleep(2.0)
    earpiece = alsa.finish()
    assert dominant_frequency(loudest_stretch(earpiece[-RATE:], RATE), RATE) == pytest.approx(660, abs=15)

    ua.hangup(new_id)  # our BYE reaches the new party
    assert rec.wait_for(CallEnded, lambda e: e.call_id == new_id).by_remote is False
    carol.wait_for_event("CALL_CLOSED")
    wait_no_calls(ua)
    ua.stop()
    assert not any(w in caplog.text for w in REUSE_WARNINGS)


def test_transfer_to_an_unknown_extension_fails_alone_and_nothing_crashes(
    kamailio, baresip_factory, ua_factory, caplog
) -> None:
    caplog.set_level("DEBUG")
    bob = baresip_factory("bob", auto_answer=True)
    ua, rec = start_call(kamailio, ua_factory, bob)
    bob.command("transfer", f"sip:nobody@{kamailio.host}:{kamailio.port}")
    moved = rec.wait_for(CallTransferred)
    failed = rec.wait_for(CallEnded, lambda e: e.call_id == moved.new_call_id)
    assert failed.code == 404
    # the transferred call is reported only when it really ends (baresip 1.0 hangs up after a failure)
    ended = rec.wait_for(CallEnded, lambda e: e.call_id == "c1", timeout=15)
    assert ended.by_remote is True
    wait_no_calls(ua)
    ua.make_call("c2", "bob")  # the stack is still healthy
    rec.wait_for(CallAnswered, lambda e: e.call_id == "c2")
    ua.hangup("c2")
    rec.wait_for(CallEnded, lambda e: e.call_id == "c2")
    ua.stop()
    assert not any(w in caplog.text for w in REUSE_WARNINGS)


def test_refer_refused_with_603_when_transfers_are_off(kamailio, baresip_factory, ua_factory, caplog) -> None:
    caplog.set_level("DEBUG")
    bob = baresip_factory("bob", auto_answer=True)
    carol = baresip_factory("carol", auto_answer=True)
    ua, rec = start_call(kamailio, ua_factory, bob, {"accept_transfer": False})
    bob.command("transfer", f"sip:carol@{kamailio.host}:{kamailio.port}")
    deadline = time.monotonic() + 10
    while "603 Decline" not in bob.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "603 Decline" in bob.log_text()
    assert rec.of(CallTransferred) == []
    assert carol.events_of("CALL_INCOMING") == []
    assert "transfer to sip:carol" in caplog.text and "refused with 603" in caplog.text
    ua.hangup("c1")
    rec.wait_for(CallEnded, lambda e: e.call_id == "c1")
    assert not any(w in caplog.text for w in REUSE_WARNINGS)
