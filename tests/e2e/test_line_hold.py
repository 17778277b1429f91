"""Hold and resume from the phone with a hook flash: the held party hears the hold tone and no
microphone (or the hold music file, looped, when ``[line] hold_music`` names one), the earpiece hears
dial tone and no far end, and both come back on the second flash. What the phone sends is read off the
wire by the loopback sniffer (PCMU)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from lab.servers.audio import dominant_frequency, rms_dbfs, write_sine_wav
from lab.servers.phone import events_of
from tests.e2e.line_support import PCMU_ONLY, PhoneRtpWatch, dial_from_handset
from tests.e2e.test_plain_extension import RATE, listen, tone_in

pytestmark = pytest.mark.e2e

FAR_HZ = 660.0  # what the far end sends; the phone's microphone is 1 kHz, the hold tone 425 Hz
MIC_HZ = 1000.0
HOLD_HZ = 425.0
MUSIC_HZ = 523.0  # the hold music file's note (C5)
GRACE_S = 0.1  # a frame already on its way when the phone muted
# A wide window: on a loaded machine the two hook inputs may reach the core far apart.
WIDE_FLASH = "[line]\nhook_flash_min_s = 0.05\nhook_flash_max_s = 2.5\n"


@pytest.fixture
def far_wav(tmp_path: Path) -> Path:
    return write_sine_wav(tmp_path / "far660.wav", freq=FAR_HZ, seconds=60.0, rate=RATE, amplitude=0.3)


def blocks_by_tone(sent: list[int] | np.ndarray, rate: int = 8000, block_s: float = 0.25) -> str:
    """One letter per block of ``sent``: m (microphone), h (hold tone), M (hold music), . (other)."""
    samples = np.asarray(sent, dtype=np.int16)
    block = int(block_s * rate)
    letters = []
    for i in range(0, len(samples) - block + 1, block):
        part = samples[i : i + block]
        freq = dominant_frequency(part, rate) if rms_dbfs(part) > -40 else 0.0
        letter = next((k for k, hz in TONE_LETTERS.items() if abs(freq - hz) < 20), ".")
        letters.append(letter)
    return "".join(letters)


TONE_LETTERS = {"m": MIC_HZ, "h": HOLD_HZ, "M": MUSIC_HZ}


def test_hook_flash_holds_and_a_second_flash_resumes(
    phone_factory, baresip_factory, sniffer, mic_wav, far_wav
):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True, source_wav=far_wav)
    phone = phone_factory(mic_file=mic_wav, sip_extra=PCMU_ONLY, extra=WIDE_FLASH)
    watch = PhoneRtpWatch(phone)
    sniffer.add(watch)
    phone.wait_for(lambda s: s["registered"], what="registration")
    call_id = dial_from_handset(phone, far)
    assert tone_in(listen(phone, 2.0), FAR_HZ), "the far end did not reach the earpiece"
    watch.wait_loud()  # the far end hears the microphone

    flashed = time.monotonic()
    phone.client.flash(0.3)
    held = phone.wait_for(lambda s: s["phone_state"] == "dialing" and s["held"], what="the call held")
    assert held["held"]["call_id"] == call_id and held["call"] is None
    assert held["display"] == "Held: 1002" and held["leds"]["line"] == "blink"
    phone.wait_for(lambda s: s["sip"]["calls"].get(call_id) == "held", what="the hold re-INVITE")
    on_hold = listen(phone, 3.0)
    assert tone_in(on_hold, HOLD_HZ, tolerance=5), "no dial tone in the earpiece while holding"
    assert not tone_in(on_hold, FAR_HZ, tolerance=5), "the held party still reached the earpiece"
    holding = blocks_by_tone(watch.samples_since(flashed + GRACE_S))
    assert "m" not in holding, f"the microphone reached the held party: {holding}"
    assert "hh" in holding, f"the held party got no hold tone: {holding}"
    resumed_at = time.monotonic()

    phone.client.flash(0.3)
    back = phone.wait_mode("in_call")
    assert back["call"]["call_id"] == call_id and back["held"] is None and back["display"] == "1002"
    assert back["leds"]["line"] == "on"
    phone.wait_for(lambda s: s["sip"]["calls"].get(call_id) == "confirmed", what="the resume re-INVITE")
    assert tone_in(listen(phone, 3.0), FAR_HZ), "the far end did not come back after the resume"
    assert "mmmm" in blocks_by_tone(watch.samples_since(resumed_at)), "the microphone did not come back"

    phone.client.hook(False)
    far.wait_for_event("CALL_CLOSED", timeout=10)
    state = phone.wait_mode("idle")
    (ended,) = events_of(state, "call.ended")
    assert ended["call"]["call_id"] == call_id and ended["call"]["disposition"] == "answered"
    assert phone.alive()


def test_hanging_up_with_a_call_held_ends_it(phone_factory, baresip_factory, far_wav):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True, source_wav=far_wav)
    phone = phone_factory(extra=WIDE_FLASH)
    phone.wait_for(lambda s: s["registered"], what="registration")
    dial_from_handset(phone, far)
    phone.client.flash(0.3)
    phone.wait_for(lambda s: s["held"], what="the call held")
    phone.client.hook(False)
    far.wait_for_event("CALL_CLOSED", timeout=10)
    state = phone.wait_mode("idle")
    assert state["held"] is None and state["leds"]["line"] == "off" and state["display"] == ""
    (ended,) = events_of(state, "call.ended")
    assert ended["call"]["hangup_by"] == "local"


def test_a_held_party_hears_the_hold_music_looped_and_never_the_microphone(
    phone_factory, baresip_factory, sniffer, mic_wav, far_wav, tmp_path
):  # type: ignore[no-untyped-def]
    music = write_sine_wav(tmp_path / "music523.wav", freq=MUSIC_HZ, seconds=1.5, rate=8000, amplitude=0.3)
    far = baresip_factory("1002", auto_answer=True, source_wav=far_wav)
    phone = phone_factory(
        mic_file=mic_wav, sip_extra=PCMU_ONLY, extra=f'{WIDE_FLASH}hold_music = "{music}"\n'
    )
    watch = PhoneRtpWatch(phone)
    sniffer.add(watch)
    phone.wait_for(lambda s: s["registered"], what="registration")
    call_id = dial_from_handset(phone, far)
    watch.wait_loud()

    flashed = time.monotonic()
    phone.client.flash(0.3)
    phone.wait_for(lambda s: s["sip"]["calls"].get(call_id) == "held", what="the hold re-INVITE")
    listen(phone, 4.0)  # longer than the file: it has to loop
    holding = blocks_by_tone(watch.samples_since(flashed + GRACE_S))
    assert "m" not in holding and "h" not in holding, f"microphone or hold tone to the held party: {holding}"
    assert holding.count("M") >= 10 and "MMMM" in holding[-8:], f"no looped hold music: {holding}"

    # What reaches the far end is read off the wire (RTP to baresip's port): baresip 1.0's recorder
    # writes nothing it decodes after the hold re-INVITE (its recording ends where the hold begins).
    phone.client.hook(False)  # hang up while held: nothing more to it
    down = time.monotonic()
    far.wait_for_event("CALL_CLOSED", timeout=10)
    closed = time.monotonic()
    phone.wait_mode("idle")
    time.sleep(1.0)  # watch the wire for a while after the BYE
    after = blocks_by_tone(watch.samples_since(down + GRACE_S))  # the music plays on until the BYE
    assert "m" not in after, f"the microphone left the phone after the hang-up: {after}"
    assert not watch.samples_since(closed + GRACE_S), "the phone sent audio after the call ended"
    assert phone.alive()
