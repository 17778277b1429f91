"""ALSA device errors injected into a running audio stream on the sim board's real PCMs.

The PCMs are the sim board's ALSA ``file``-plugin devices; hal's ``pcm_opener`` hook wraps them so
that, after the stream has run for a while, reads and writes fail: overruns, underruns, then a run of
I/O errors long enough to make the audio thread open the PCMs again. The stream must go on.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import alsaaudio
import numpy as np
import pytest

from board import get_board
from hal import AlsaAudioPath, AudioSettings
from hal.audio import REOPEN_AFTER_ERRORS, open_alsa_pcm
from hal.sim_alsa import use_asoundrc, write_asoundrc

pytestmark = pytest.mark.e2e

RATE = 16000
FRAME = 320
HEALTHY_FIRST = 25


class FaultyPcm:
    """A real PCM; after ``HEALTHY_FIRST`` calls, the ``faults`` script is played, then real again."""

    def __init__(self, pcm, faults: list[str], calls: list[int]) -> None:  # type: ignore[no-untyped-def]
        self._pcm = pcm
        self._faults = faults
        self._calls = calls  # shared across reopenings: the burst happens once

    def _fault(self) -> str | None:
        self._calls[0] += 1
        n = self._calls[0] - HEALTHY_FIRST
        return self._faults[n] if 0 <= n < len(self._faults) else None

    def read(self) -> tuple[int, bytes]:
        fault = self._fault()
        if fault == "overrun":
            return -errno.EPIPE, b""
        if fault == "error":
            raise alsaaudio.ALSAAudioError("Input/output error [deskphone_sim_mic]")
        return self._pcm.read()

    def write(self, data: bytes) -> int:
        fault = self._fault()
        if fault == "underrun":
            raise alsaaudio.ALSAAudioError("Broken pipe [deskphone_sim_earpiece]")
        if fault == "error":
            raise alsaaudio.ALSAAudioError("No such device [deskphone_sim_earpiece]")
        return self._pcm.write(data)

    def close(self) -> None:
        self._pcm.close()


def test_injected_alsa_errors_are_counted_and_the_stream_goes_on(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    mic = (0.25 * 32767 * np.sin(2 * np.pi * 440 * np.arange(RATE * 30) / RATE)).astype("<i2")
    mic_file = tmp_path / "mic.raw"
    mic_file.write_bytes(mic.tobytes())
    monkeypatch.setenv("ALSA_CONFIG_PATH", "/usr/share/alsa/alsa.conf")
    write_asoundrc(tmp_path / "asoundrc", mic_file, tmp_path / "earpiece.raw", RATE)
    use_asoundrc(tmp_path / "asoundrc")

    capture_script = ["overrun"] * 3 + ["error"] * (REOPEN_AFTER_ERRORS + 2)
    playback_script = ["underrun"] * 3
    counts = {True: [0], False: [0]}
    opens = []

    def opener(capture: bool, device: str, settings: AudioSettings):  # type: ignore[no-untyped-def]
        opens.append(capture)
        pcm = open_alsa_pcm(capture, device, settings)
        return FaultyPcm(pcm, capture_script if capture else playback_script, counts[capture])

    mic_frames: list[bytes] = []
    enough = threading.Event()
    wanted = HEALTHY_FIRST + len(capture_script) + 50

    def write_mic_frame(frame: bytes) -> None:
        mic_frames.append(frame)
        if len(mic_frames) >= wanted:
            enough.set()

    path = AlsaAudioPath(get_board("sim"), AudioSettings(sample_rate=RATE, frame_ms=20), pcm_opener=opener)
    path.start(lambda: bytes(2 * FRAME), write_mic_frame)
    try:
        assert enough.wait(20), f"the stream stalled after {len(mic_frames)} frames"
        assert path.running
    finally:
        path.stop()
    counters = path.counters()
    assert counters["overruns"] >= 3
    assert counters["underruns"] >= 3
    assert counters["errors"] >= REOPEN_AFTER_ERRORS
    assert counters["reopens"] >= 1
    assert opens.count(True) >= 2, "the PCMs were not opened again after the run of errors"
    # after the burst the microphone delivers the real signal again, in whole frames
    tail = np.frombuffer(b"".join(mic_frames[-40:]), dtype="<i2")
    assert all(len(f) == 2 * FRAME for f in mic_frames)
    assert np.sqrt(np.mean(tail.astype(float) ** 2)) > 3000
