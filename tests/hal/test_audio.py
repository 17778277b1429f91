import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from board import BoardDescription, get_board
from hal import AlsaAudioPath, AudioSettings
from hal.exc import AsoundrcError
from hal.sim_alsa import use_asoundrc, write_asoundrc

RATE = 16000
FRAME = 320  # 20 ms


def sine(freq: float, samples: int, amplitude: float = 0.5, start: int = 0) -> np.ndarray:
    t = (np.arange(samples) + start) / RATE
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")


class FrameSink:
    """Collects mic frames and plays a continuous sine into the earpiece; done after ``frames``."""

    def __init__(self, frames: int) -> None:
        self.mic: list[bytes] = []
        self.done = threading.Event()
        self._frames = frames
        self._played = 0

    def write_mic_frame(self, frame: bytes) -> None:
        self.mic.append(frame)
        if len(self.mic) >= self._frames:
            self.done.set()

    def read_earpiece_frame(self) -> bytes:
        frame = sine(1000, FRAME, start=self._played * FRAME).tobytes()
        self._played += 1
        return frame


@pytest.fixture
def sim_pcms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, np.ndarray]:
    mic_samples = sine(440, 10 * FRAME, amplitude=0.25)
    mic_file = tmp_path / "mic.raw"
    mic_file.write_bytes(mic_samples.tobytes())
    earpiece = tmp_path / "earpiece.raw"
    asoundrc = tmp_path / "asoundrc"
    monkeypatch.setenv("ALSA_CONFIG_PATH", "/usr/share/alsa/alsa.conf")
    assert write_asoundrc(asoundrc, mic_file, earpiece, RATE) == (
        "deskphone_sim_mic",
        "deskphone_sim_earpiece",
    )
    use_asoundrc(asoundrc)
    return asoundrc, earpiece, mic_samples


def run_path(board: BoardDescription, sink: FrameSink, **settings) -> AlsaAudioPath:
    path = AlsaAudioPath(board, AudioSettings(sample_rate=RATE, frame_ms=20, **settings))
    path.start(sink.read_earpiece_frame, sink.write_mic_frame)
    try:
        assert sink.done.wait(10)
    finally:
        path.stop()
    return path


def test_sine_through_the_playback_pcm_and_mic_file_through_the_capture_pcm(
    sim_pcms: tuple[Path, Path, np.ndarray],
) -> None:
    _, earpiece, mic_samples = sim_pcms
    sink = FrameSink(frames=25)
    path = run_path(get_board("sim"), sink)
    counters = path.counters()
    assert counters["frames_in"] >= 25 and counters["frames_out"] >= 25
    assert counters["overruns"] == counters["underruns"] == counters["errors"] == 0

    # the earpiece file holds the 1 kHz sine at the level we sent (0.5 full scale: RMS 0.354)
    played = np.frombuffer(earpiece.read_bytes(), dtype="<i2").astype(float) / 32768
    assert len(played) >= 20 * FRAME
    played = played[2 * FRAME :]  # skip the silence the path writes ahead of the first frame
    spectrum = np.abs(np.fft.rfft(played * np.hanning(len(played))))
    peak_hz = np.argmax(spectrum) * RATE / len(played)
    assert abs(peak_hz - 1000) < 5
    assert np.sqrt(np.mean(played**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)

    # the mic frames are the mic file, then silence (never an error, never noise)
    heard = np.frombuffer(b"".join(sink.mic), dtype="<i2")
    assert np.array_equal(heard[: len(mic_samples)], mic_samples)
    assert not heard[len(mic_samples) :].any()
    assert all(len(frame) == 2 * FRAME for frame in sink.mic)


def test_wav_microphone_header_is_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = sine(300, 4 * FRAME)
    wav_file = tmp_path / "mic.wav"
    with wave.open(str(wav_file), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.tobytes())
    monkeypatch.setenv("ALSA_CONFIG_PATH", "/usr/share/alsa/alsa.conf")
    use_asoundrc(tmp_path / "asoundrc")
    write_asoundrc(tmp_path / "asoundrc", wav_file, tmp_path / "ear.raw", RATE)
    sink = FrameSink(frames=6)
    run_path(get_board("sim"), sink)
    heard = np.frombuffer(b"".join(sink.mic), dtype="<i2")
    assert np.array_equal(heard[: len(samples)], samples)


def test_wav_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    wav_file = tmp_path / "stereo.wav"
    with wave.open(str(wav_file), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(400))
    with pytest.raises(AsoundrcError, match="mono 16 bit 16000 Hz"):
        write_asoundrc(tmp_path / "asoundrc", wav_file, tmp_path / "ear.raw", RATE)


def test_no_microphone_file_is_silence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALSA_CONFIG_PATH", "/usr/share/alsa/alsa.conf")
    write_asoundrc(tmp_path / "asoundrc", None, tmp_path / "ear.raw", RATE)
    use_asoundrc(tmp_path / "asoundrc")
    sink = FrameSink(frames=5)
    run_path(get_board("sim"), sink)
    assert not any(any(frame) for frame in sink.mic)


def test_set_volume_without_a_mixer_control_is_a_logged_no_op(caplog: pytest.LogCaptureFixture) -> None:
    path = AlsaAudioPath(get_board("sim"))
    with caplog.at_level("INFO", logger="hal.audio"):
        path.set_volume(70)
    assert "no mixer control" in caplog.text
    assert path.counters()["errors"] == 0


def test_set_volume_on_a_missing_card_is_counted_not_raised() -> None:
    path = AlsaAudioPath(get_board("rpi-v1"))  # there is no "Handset" card on a build machine
    path.set_volume(50)
    assert path.counters()["errors"] == 1
