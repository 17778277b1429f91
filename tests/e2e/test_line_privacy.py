"""The privacy invariant on every path that ends a call: no microphone audio leaves the phone unless
the handset is up and a call is connected. A loopback sniffer decodes the phone's RTP (PCMU)."""

from __future__ import annotations

import time

import pytest

from lab.servers.audio import write_sine_wav
from tests.e2e.line_support import PCMU_ONLY, PhoneRtpWatch, assert_no_call_reuse, dial_from_handset

pytestmark = pytest.mark.e2e

GRACE_S = 0.1  # a frame already on its way when the phone muted
WATCH_S = 2.5


@pytest.fixture
def line(phone_factory, baresip_factory, sniffer, mic_wav):  # type: ignore[no-untyped-def]
    """A phone in a call with 1002 (baresip), its microphone (1 kHz) heard on the wire."""

    def start(sip_extra: str = "", extra: str = ""):  # type: ignore[no-untyped-def]
        far = baresip_factory("1002", auto_answer=True)
        phone = phone_factory(mic_file=mic_wav, sip_extra=f"{PCMU_ONLY}\n{sip_extra}", extra=extra)
        watch = PhoneRtpWatch(phone)
        sniffer.add(watch)
        phone.wait_for(lambda s: s["registered"], what="registration")
        dial_from_handset(phone, far)
        watch.wait_loud()  # the sniffer sees the microphone while the call is up
        return phone, far, watch

    return start


def assert_silent_from(watch: PhoneRtpWatch, since: float) -> None:
    time.sleep(WATCH_S)
    assert watch.loud_since(since + GRACE_S) == 0, "microphone audio left the phone after the call"


def test_hang_up(line) -> None:  # type: ignore[no-untyped-def]
    phone, far, watch = line()
    down = time.monotonic()
    phone.client.hook(False)  # the BYE waits out the hook flash window; the microphone does not
    phone.wait_mode("idle")
    assert_silent_from(watch, down)
    far.wait_for_event("CALL_CLOSED")


def test_hang_up_with_the_call_held(line) -> None:  # type: ignore[no-untyped-def]
    phone, far, watch = line()
    phone.client.flash()
    phone.wait_for(lambda s: s["held"], what="the call held")
    down = time.monotonic()
    phone.client.hook(False)
    phone.wait_mode("idle")
    far.wait_for_event("CALL_CLOSED")
    assert_silent_from(watch, down)


def test_transfer_from_the_phone(line, baresip_factory) -> None:  # type: ignore[no-untyped-def]
    phone, _, watch = line()
    third = baresip_factory("1003", auto_answer=True)
    phone.client.flash()
    phone.wait_for(lambda s: s["held"], what="the call held")
    phone.client.keys("1003#")
    third.wait_for_event("CALL_ESTABLISHED", timeout=10)
    phone.wait_mode("in_call")
    watch.wait_loud()  # the third party hears the microphone
    down = time.monotonic()
    phone.client.hook(False)  # attended transfer: 1002 is put through to 1003
    phone.wait_mode("idle")
    assert_silent_from(watch, down)


def test_remote_bye_with_the_handset_still_up(line) -> None:  # type: ignore[no-untyped-def]
    phone, far, watch = line()
    far.hangup()
    phone.wait_mode("ended")
    assert_silent_from(watch, time.monotonic())


def test_rtp_timeout_of_a_far_end_that_froze(line) -> None:  # type: ignore[no-untyped-def]
    phone, far, watch = line("rtp_timeout_s = 2")
    far.freeze()  # alive, sockets open, but no RTP and no BYE
    try:
        phone.wait_mode("ended", timeout=20)
        assert phone.wait_event("call.ended")["call"]["sip_code"] == 408
        assert_silent_from(watch, time.monotonic())
    finally:
        far.freeze(False)


def test_far_end_crash_ends_the_call_on_rtp_timeout(line) -> None:  # type: ignore[no-untyped-def]
    phone, far, watch = line("rtp_timeout_s = 2")
    far.kill()
    phone.wait_mode("ended", timeout=20)
    ended = phone.wait_event("call.ended")
    assert ended["call"]["sip_code"] == 408
    assert_silent_from(watch, time.monotonic())


def test_transfer_then_hang_up(line, baresip_factory, kamailio) -> None:  # type: ignore[no-untyped-def]
    phone, far, watch = line()
    carol = baresip_factory("1003", auto_answer=True)
    far.transfer(f"sip:1003@{kamailio.host}:{kamailio.port}")
    carol.wait_for_event("CALL_ESTABLISHED", timeout=10)
    phone.wait_for(lambda s: (s["call"] or {}).get("remote") == "1003", what="the transfer call")
    watch.wait_loud()  # the new party hears the phone
    phone.client.hook(False)
    phone.wait_mode("idle")
    assert_silent_from(watch, time.monotonic())
    carol.wait_for_event("CALL_CLOSED", timeout=10)
    assert_no_call_reuse(phone)


def test_failed_transfer(line, kamailio) -> None:  # type: ignore[no-untyped-def]
    phone, far, watch = line()
    far.transfer(f"sip:4040@{kamailio.host}:{kamailio.port}")  # nobody: 404, baresip 1.0 then hangs up
    phone.wait_mode("ended", timeout=15)
    assert_silent_from(watch, time.monotonic())
    phone.client.hook(False)
    phone.wait_mode("idle")
    assert_no_call_reuse(phone)


def test_hang_up_with_the_call_held_on_hold_music(line, tmp_path) -> None:  # type: ignore[no-untyped-def]
    music = write_sine_wav(tmp_path / "music523.wav", freq=523.0, seconds=2.0, rate=8000, amplitude=0.3)
    phone, far, watch = line(extra=f'[line]\nhold_music = "{music}"\n')
    flashed = time.monotonic()
    phone.client.flash()
    phone.wait_for(lambda s: s["sip"]["calls"].get(s["held"]["call_id"]) == "held" if s["held"] else False,
                   what="the call held")  # fmt: skip
    assert watch.loud_since(flashed + GRACE_S) == 0, "the microphone reached the held party"
    down = time.monotonic()
    phone.client.hook(False)
    phone.wait_mode("idle")
    far.wait_for_event("CALL_CLOSED")
    assert_silent_from(watch, down)


def test_decline_a_waiting_call_then_hang_up(line, baresip_factory, kamailio) -> None:  # type: ignore[no-untyped-def]
    phone, far, watch = line(extra="[line]\ncall_waiting_choice_s = 8\n")
    second = baresip_factory("1003", auto_answer=True)
    second.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    phone.wait_for(lambda s: s["waiting"], what="a waiting call")
    phone.client.flash()
    phone.wait_for(lambda s: s["display"] == "0 reject 1 end 2 hold", what="the choice shown")
    phone.client.keys("0")
    second.wait_for_event("CALL_CLOSED", timeout=10)
    phone.wait_for(lambda s: s["waiting"] is None, what="the waiting call declined")
    watch.wait_loud()  # the first call goes on, with the microphone
    down = time.monotonic()
    phone.client.hook(False)
    phone.wait_mode("idle")
    far.wait_for_event("CALL_CLOSED")
    assert_silent_from(watch, down)
