"""The far end transfers the phone (baresip's blind transfer, a REFER): the new call is a call of the
phone's own, with its record, events, display, LED and audio both ways; nothing crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.servers.audio import dominant_frequency, read_wav, rms_dbfs, write_sine_wav
from lab.servers.phone import events_of
from tests.e2e.line_support import assert_no_call_reuse, dial_from_handset
from tests.e2e.test_plain_extension import listen, tone_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def carol_wav(tmp_path: Path) -> Path:
    return write_sine_wav(tmp_path / "carol660.wav", freq=660.0, seconds=30.0, rate=16000, amplitude=0.3)


def call_1002(phone, far) -> str:  # type: ignore[no-untyped-def]
    phone.wait_for(lambda s: s["registered"], what="registration")
    return dial_from_handset(phone, far)


def test_blind_transfer_puts_the_phone_through_to_the_new_party(
    phone_factory, baresip_factory, kamailio, mic_wav, carol_wav
):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    carol = baresip_factory("1003", auto_answer=True, source_wav=carol_wav)
    phone = phone_factory(mic_file=mic_wav)
    first_id = call_1002(phone, far)

    far.transfer(f"sip:1003@{kamailio.host}:{kamailio.port}")
    carol.wait_for_event("CALL_ESTABLISHED", timeout=10)
    state = phone.wait_for(
        lambda s: s["phone_state"] == "in_call" and (s["call"] or {}).get("remote") == "1003",
        what="in a call with 1003",
    )
    assert state["call"]["call_id"] != first_id
    assert state["display"] == "1003" and state["leds"]["line"] == "on" and state["transfer"] is None
    assert tone_in(listen(phone, 2.0), 660.0), "the new party's 660 Hz did not reach the earpiece"

    phone.client.hook(False)
    carol.wait_for_event("CALL_CLOSED", timeout=10)  # hook-down sends the new call's BYE
    state = phone.wait_mode("idle")
    assert state["leds"]["line"] == "off"
    ended = {e["call"]["call_id"]: e["call"] for e in events_of(state, "call.ended")}
    first, new = ended[first_id], ended[next(i for i in ended if i != first_id)]
    assert first["disposition"] == "answered" and first["transferred_to"]["remote"]["number"] == "1003"
    assert new["transferred_from"] == {"call_id": first_id, "remote": {"number": "1002", "name": None}}
    assert first["transferred_to"]["call_id"] == new["call_id"]
    assert new["disposition"] == "answered" and new["hangup_by"] == "local" and new["talk_s"] > 1
    outgoing = [e["call"]["call_id"] for e in events_of(state, "call.outgoing")]
    assert outgoing == [first_id, new["call_id"]]

    heard = carol.recorded_wav_path("dec")
    assert heard is not None
    samples, rate = read_wav(heard)
    assert abs(dominant_frequency(samples[-rate:], rate) - 1000.0) < 15, "the new party did not hear us"
    assert rms_dbfs(samples[-rate:]) > -30
    assert_no_call_reuse(phone)


def test_transfer_to_an_unregistered_extension_fails_and_the_phone_goes_on(
    phone_factory, baresip_factory, kamailio
):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    phone = phone_factory()
    first_id = call_1002(phone, far)
    far.transfer(f"sip:4040@{kamailio.host}:{kamailio.port}")
    failed = phone.wait_for(
        lambda s: any(e["call"]["call_id"] != first_id for e in events_of(s, "call.ended")),
        what="the transfer call's end",
    )
    (transfer_end,) = [e["call"] for e in events_of(failed, "call.ended") if e["call"]["call_id"] != first_id]
    assert transfer_end["disposition"] == "failed" and transfer_end["sip_code"] == 404
    assert transfer_end["transferred_from"]["call_id"] == first_id
    # baresip 1.0 hangs up after a failed transfer; the first call ends only then, as a plain call
    state = phone.wait_mode("ended", timeout=15)
    (first_end,) = [e["call"] for e in events_of(state, "call.ended") if e["call"]["call_id"] == first_id]
    assert first_end["hangup_by"] == "remote" and "transferred_to" not in first_end
    phone.client.hook(False)
    phone.wait_mode("idle")
    call_1002(phone, far)  # still a working phone
    phone.client.hook(False)
    far.wait_for_event("CALL_CLOSED", timeout=10)
    assert_no_call_reuse(phone)
