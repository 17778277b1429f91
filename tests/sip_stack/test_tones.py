"""Local call-progress tones reach the earpiece path (no servers: registration just fails)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lab.servers.audio import dominant_frequency, rms_dbfs
from lab.servers.ports import free_port
from sip_stack import SipSettings

pytest.importorskip("pjsua2")


def earpiece_audio(ua, seconds: float) -> np.ndarray:
    """Read the earpiece at real-time pace like the HAL audio thread does."""
    chunks = []
    frames = int(seconds * 50)
    start = time.monotonic()
    for n in range(frames):
        chunks.append(np.frombuffer(ua.audio.read_earpiece_frame(), dtype=np.int16))
        time.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))
    return np.concatenate(chunks)


def spectrum_peaks(samples: np.ndarray, rate: int, count: int) -> list[float]:
    x = samples.astype(np.float64) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    peaks: list[float] = []
    for index in np.argsort(spectrum)[::-1]:
        if all(abs(freqs[index] - p) > 30 for p in peaks):
            peaks.append(float(freqs[index]))
        if len(peaks) == count:
            break
    return sorted(peaks)


@pytest.mark.parametrize(("plan", "expected"), [("eu", [425.0]), ("us", [350.0, 440.0])])
def test_dial_tone_follows_national_plan(ua_factory, plan: str, expected: list[float]) -> None:
    settings = SipSettings(
        registrar=f"127.0.0.1:{free_port()}", user="t", password="x", bind_address="127.0.0.1", tone_plan=plan
    )
    ua, _ = ua_factory(settings)
    ua.play_tone("dial")
    audio = earpiece_audio(ua, 1.2)[3200:]  # skip priming
    assert rms_dbfs(audio) > -40
    peaks = spectrum_peaks(audio, 16000, len(expected))
    assert peaks == pytest.approx(expected, abs=8)
    ua.play_tone(None)
    deadline = time.monotonic() + 30
    while ua.status()["tone"] is not None and time.monotonic() < deadline:  # the stop ran on sip
        ua.audio.read_earpiece_frame()
    for _ in range(len(ua.audio.earpiece)):  # what the earpiece buffered before the stop
        ua.audio.read_earpiece_frame()
    quiet = earpiece_audio(ua, 0.4)[1600:]
    assert rms_dbfs(quiet) < -60


def test_busy_tone_has_cadence(ua_factory) -> None:
    settings = SipSettings(registrar=f"127.0.0.1:{free_port()}", user="t", bind_address="127.0.0.1")
    ua, _ = ua_factory(settings)
    ua.play_tone("busy")
    audio = earpiece_audio(ua, 2.2)[3200:]
    frames = audio[: len(audio) // 320 * 320].reshape(-1, 320)
    loud = [rms_dbfs(f) > -40 for f in frames]
    assert 0.3 < sum(loud) / len(loud) < 0.7  # 500 ms on, 500 ms off
    assert dominant_frequency(audio, 16000) == pytest.approx(425, abs=8)
    with pytest.raises(ValueError):
        ua.play_tone("howler")
