"""The phone as a plain SIP extension (no broker): registration, calls, audio, DTMF, tones, LEDs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lab.servers.audio import dominant_frequency, read_wav, rms_dbfs
from lab.servers.phone import PHONE_PASSWORD, events_of
from tests.e2e.line_support import dial_from_handset

pytestmark = pytest.mark.e2e

RATE = 16000


def earpiece(phone, since_bytes: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    raw = phone.earpiece_path.read_bytes()[since_bytes:]
    return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")


def listen(phone, seconds: float, timeout: float = 10.0) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What the earpiece receives during the next ``seconds`` (waits for the file to grow)."""
    start = phone.earpiece_path.stat().st_size
    wanted = start + int(seconds * RATE) * 2
    deadline = time.monotonic() + timeout
    while phone.earpiece_path.stat().st_size < wanted:
        assert time.monotonic() < deadline, "the earpiece stream stalled"
        time.sleep(0.05)
    return earpiece(phone, start)[: int(seconds * RATE)]


def loud_fraction(samples: np.ndarray, block_s: float = 0.1) -> float:
    """The share of ``block_s`` blocks that carry sound (a tone's cadence, not its pitch)."""
    block = int(block_s * RATE)
    blocks = [samples[i : i + block] for i in range(0, len(samples) - block + 1, block)]
    return sum(rms_dbfs(b) > -40 for b in blocks) / max(1, len(blocks))


def tone_in(samples: np.ndarray, freq: float, tolerance: float = 15.0) -> bool:
    """Whether ``freq`` is the dominant frequency of the loudest second of ``samples``."""
    if len(samples) < RATE:
        return False
    best = max(
        (samples[i : i + RATE] for i in range(0, len(samples) - RATE + 1, RATE // 4)),
        key=lambda s: float(np.mean(s.astype(np.float64) ** 2)),
    )
    return abs(dominant_frequency(best, RATE) - freq) < tolerance and rms_dbfs(best) > -40


def test_registers_with_the_right_password(phone_factory):  # type: ignore[no-untyped-def]
    phone = phone_factory()
    state = phone.wait_for(lambda s: s["registered"], what="registration")
    registration = events_of(state, "registration.changed")[-1]
    assert registration["data"]["registered"] is True
    assert registration["data"]["code"] == 200


def test_wrong_password_is_refused_with_a_clear_state_and_no_secret_in_the_log(phone_factory):  # type: ignore[no-untyped-def]
    phone = phone_factory(password="wrong-secret-123", register_password=PHONE_PASSWORD)
    state = phone.wait_for(lambda s: events_of(s, "registration.changed"), what="registration attempt")
    event = events_of(state, "registration.changed")[-1]
    assert event["data"]["registered"] is False
    assert event["data"]["code"] in (401, 403)
    assert state["registered"] is False
    log = phone.log_text()
    assert "registration failed" in log.lower() or "403" in log or "401" in log
    assert "wrong-secret-123" not in log


def test_outgoing_call_two_way_audio_dtmf_and_hangup(phone_factory, baresip_factory, mic_wav):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)  # plays 440 Hz
    phone = phone_factory(mic_file=mic_wav)
    phone.wait_for(lambda s: s["registered"], what="registration")

    phone.client.hook(True)
    state = phone.wait_mode("dialing")
    assert state["hook"] == "up"
    assert tone_in(listen(phone, 1.5), 425.0), "no 425 Hz dial tone (EU plan) in the earpiece"

    phone.client.keys("1002#")
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    state = phone.wait_mode("in_call")
    answered_at = time.monotonic()
    assert state["leds"]["line"] == "on"
    call_events = [e["type"] for e in state["events"] if e["type"].startswith("call.")]
    assert call_events == ["call.outgoing", "call.ringing", "call.answered"]
    assert tone_in(listen(phone, 2.0), 440.0), "the far end's 440 Hz did not reach the earpiece"
    phone.client.keys("5")
    phone.client.keys("9")
    time.sleep(1.0)
    phone.client.hook(False)
    talk_s = time.monotonic() - answered_at
    far.wait_for_event("CALL_CLOSED", timeout=10)
    ended = phone.wait_event("call.ended")
    assert ended["call"]["direction"] == "outbound"
    assert ended["call"]["disposition"] == "answered"
    assert ended["call"]["hangup_by"] == "local"
    assert ended["call"]["remote"]["number"] == "1002"
    assert abs(ended["call"]["talk_s"] - talk_s) < 0.5

    sent = far.recorded_wav_path("dec")
    assert sent is not None
    samples, rate = read_wav(sent)
    assert abs(dominant_frequency(samples[-rate * 2 :], rate) - 1000.0) < 15
    assert rms_dbfs(samples[-rate * 2 :]) > -30, "the phone's microphone arrived too quietly"
    assert "59" in far.received_dtmf()
    # wideband first: the far end offers G.722 and PCMA/PCMU, the phone prefers G.722
    assert "Set audio encoder: G722" in far.log_text()
    assert "Set audio decoder: G722" in far.log_text()
    assert phone.state()["phone_state"] == "idle"


def test_incoming_call_rings_answers_and_remote_hangup_gives_busy_tone(
    phone_factory, baresip_factory, kamailio
):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)
    phone = phone_factory()
    phone.wait_for(lambda s: s["registered"], what="registration")

    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    state = phone.wait_mode("ringing_in")
    assert state["ringer"] == "normal"
    state = phone.wait_for(lambda s: s["leds"]["line"] == "blink", what="line LED blinking")
    incoming = events_of(state, "call.incoming")[-1]
    assert incoming["call"]["remote"]["number"] == "1002"

    phone.client.hook(True)
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    state = phone.wait_mode("in_call")
    assert state["ringer"] is None
    assert tone_in(listen(phone, 1.5), 440.0)

    far.hangup()
    phone.wait_mode("ended")
    assert tone_in(listen(phone, 2.0), 425.0), "no busy tone after the remote hung up"
    ended = phone.wait_event("call.ended")
    assert ended["call"]["disposition"] == "answered"
    assert ended["call"]["hangup_by"] == "remote"
    phone.client.hook(False)
    phone.wait_mode("idle")


def test_call_abandoned_before_answer_is_a_missed_call(phone_factory, baresip_factory, kamailio):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)
    phone = phone_factory()
    phone.wait_for(lambda s: s["registered"], what="registration")
    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    phone.wait_mode("ringing_in")
    time.sleep(1.0)
    far.hangup()
    state = phone.wait_mode("idle")
    ended = phone.wait_event("call.ended")
    assert ended["call"]["disposition"] == "missed"
    assert ended["call"]["talk_s"] == 0
    assert ended["call"]["ring_s"] >= 0.9
    state = phone.wait_for(lambda s: s["leds"]["message"] == "on", what="message LED on")
    assert state["missed_call"] is True
    assert state["ringer"] is None
    phone.client.hook(True)
    phone.wait_for(lambda s: s["leds"]["message"] == "off", what="message LED off after lifting")


def test_do_not_disturb_rejects_with_486(phone_factory, baresip_factory, kamailio):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)
    phone = phone_factory(extra="")
    phone.stop()
    phone.config_text = phone.config_text.replace("trusted_pbx", "do_not_disturb = true\ntrusted_pbx")
    phone.start()
    phone.wait_for(lambda s: s["registered"], what="registration")
    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    closed = far.wait_for_event("CALL_CLOSED", timeout=10)
    assert "486" in str(closed.get("param", "")) or "Busy" in str(closed.get("param", ""))
    ended = phone.wait_event("call.ended")
    assert ended["call"]["disposition"] == "rejected"
    assert ended["call"]["sip_code"] == 486
    assert phone.state()["ringer"] is None


def test_ringback_while_the_far_end_rings_then_busy_tone_when_it_refuses(phone_factory, baresip_factory):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=False)
    phone = phone_factory()
    phone.wait_for(lambda s: s["registered"], what="registration")
    phone.client.hook(True)
    phone.wait_mode("dialing")
    phone.client.keys("1002#")
    far.wait_for_event("CALL_INCOMING", timeout=10)
    phone.wait_event("call.ringing")
    # EU ringback: 425 Hz, 1 s on, 4 s off; listen across a whole cadence
    heard = listen(phone, 5.2)
    assert tone_in(heard, 425.0), "no local ringback tone while the far end rang"
    assert 0.1 < loud_fraction(heard) < 0.4, "not the ringback cadence (1 s on, 4 s off)"
    far.hangup()  # the far end refuses the ringing call: 486 Busy Here
    ended = phone.wait_event("call.ended")
    assert ended["call"]["disposition"] == "busy"
    assert ended["call"]["sip_code"] == 486
    state = phone.wait_mode("ended")
    assert state["hook"] == "up"
    assert tone_in(listen(phone, 1.5), 425.0), "no busy tone after 486"
    phone.client.hook(False)
    phone.wait_mode("idle")


def test_a_number_the_pbx_does_not_know_gives_the_error_tone(phone_factory):  # type: ignore[no-untyped-def]
    phone = phone_factory()
    phone.wait_for(lambda s: s["registered"], what="registration")
    phone.client.hook(True)
    phone.wait_mode("dialing")
    phone.client.keys("9999#")  # kamailio: 404 Not Found
    ended = phone.wait_event("call.ended")
    assert ended["call"]["disposition"] == "failed"
    assert ended["call"]["sip_code"] == 404
    phone.wait_mode("ended")
    heard = listen(phone, 2.0)
    # EU error tone: the special information tone, 950 / 1400 / 1800 Hz, 330 ms each
    thirds = [
        heard[i : i + int(0.3 * RATE)] for i in range(0, len(heard) - int(0.3 * RATE), int(0.33 * RATE))
    ]
    pitches = {round(dominant_frequency(t, RATE) / 50) * 50 for t in thirds if rms_dbfs(t) > -40}
    assert pitches & {950, 1400, 1800}, f"no special information tone (heard {sorted(pitches)})"
    phone.client.hook(False)
    phone.wait_mode("idle")


def test_hash_as_the_first_key_redials_the_last_number(phone_factory, baresip_factory):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    phone = phone_factory()
    phone.wait_for(lambda s: s["registered"], what="registration")
    dial_from_handset(phone, far)
    phone.client.hook(False)
    far.wait_for_event("CALL_CLOSED", timeout=10)
    phone.wait_mode("idle")

    phone.client.hook(True)
    phone.wait_mode("dialing")
    phone.client.keys("#")
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    state = phone.wait_mode("in_call")
    outgoing = [e for e in state["events"] if e["type"] == "call.outgoing"]
    assert [e["call"]["remote"]["number"] for e in outgoing] == ["1002", "1002"]
    phone.client.hook(False)
    far.wait_for_event("CALL_CLOSED", timeout=10)


def test_the_sim_console_shows_an_incoming_call_as_it_rings(phone_factory, baresip_factory, kamailio):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    far = baresip_factory("1002", auto_answer=False)
    phone = phone_factory()
    phone.wait_for(lambda s: s["registered"], what="registration")
    console = subprocess.Popen(
        [sys.executable, "-m", "firmware.cli", "sim", "--socket", str(phone.socket_path), "console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert console.stdout is not None and console.stdin is not None
        line = ""
        while not line.startswith("[idle]"):
            line = console.stdout.readline()
        far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")  # nothing typed: the console shows it
        while not line.startswith("[ringing_in]"):
            line = console.stdout.readline()
            assert line, "the console ended"
        assert "ringer=normal" in line and "1002" in line
        console.stdin.write("u\n")
        console.stdin.flush()
        while not line.startswith("[in_call]"):
            line = console.stdout.readline()
            assert line, "the console ended"
        assert "hook=up" in line and "line=on" in line
    finally:
        if console.stdin is not None:
            console.stdin.write("q\n")
            console.stdin.close()
        console.wait(10)
