"""The audio thread survives overruns, underruns and ALSA errors (injected through a fake PCM)."""

import errno
import threading
from collections.abc import Iterator

import alsaaudio
import pytest

from board import get_board
from hal import AlsaAudioPath, AudioSettings

FRAME_BYTES = 640


class ScriptedPcm:
    """A PCM whose reads and writes follow a script of outcomes, then succeed."""

    def __init__(self, script: Iterator[str]) -> None:
        self._script = script

    def _next(self) -> str:
        return next(self._script, "ok")

    def read(self) -> tuple[int, bytes]:
        outcome = self._next()
        if outcome == "overrun":
            return -errno.EPIPE, b""
        if outcome == "overrun-raised":
            raise alsaaudio.ALSAAudioError("Broken pipe [deskphone_sim_mic]")
        if outcome == "error":
            raise alsaaudio.ALSAAudioError("Input/output error [deskphone_sim_mic]")
        return FRAME_BYTES // 2, b"\x01\x00" * (FRAME_BYTES // 2)

    def write(self, data: bytes) -> int:
        outcome = self._next()
        if outcome == "underrun":
            raise alsaaudio.ALSAAudioError("Broken pipe [deskphone_sim_earpiece]")
        if outcome == "underrun-returned":
            return -errno.EPIPE
        if outcome == "error":
            raise alsaaudio.ALSAAudioError("No such device [deskphone_sim_earpiece]")
        return len(data) // 2

    def close(self) -> None:
        pass


class Opener:
    def __init__(self, capture: list[str], playback: list[str], fail_opens: int = 0) -> None:
        self._capture = iter(capture)
        self._playback = iter(playback)
        self._fail_opens = fail_opens
        self.opens = 0

    def __call__(self, capture: bool, device: str, settings: AudioSettings) -> ScriptedPcm:
        self.opens += 1
        if self._fail_opens:
            self._fail_opens -= 1
            raise alsaaudio.ALSAAudioError(f"No such file or directory [{device}]")
        return ScriptedPcm(self._capture if capture else self._playback)


class Sink:
    def __init__(self, frames: int) -> None:
        self.frames: list[bytes] = []
        self.done = threading.Event()
        self._wanted = frames

    def write_mic_frame(self, frame: bytes) -> None:
        self.frames.append(frame)
        if len(self.frames) >= self._wanted:
            self.done.set()

    def read_earpiece_frame(self) -> bytes:
        return bytes(FRAME_BYTES)


def run(opener: Opener, frames: int, prefill: int = 0) -> tuple[AlsaAudioPath, Sink]:
    path = AlsaAudioPath(get_board("sim"), AudioSettings(prefill_frames=prefill), pcm_opener=opener)
    sink = Sink(frames)
    path.start(sink.read_earpiece_frame, sink.write_mic_frame)
    try:
        assert sink.done.wait(10)
        assert path.running
    finally:
        path.stop()
    return path, sink


def test_overruns_are_counted_and_replaced_by_silence() -> None:
    path, sink = run(Opener(["ok", "overrun", "overrun-raised", "ok"], []), frames=6)
    counters = path.counters()
    assert counters["overruns"] == 2
    assert counters["errors"] == 0
    assert sink.frames[1] == sink.frames[2] == bytes(FRAME_BYTES)
    assert sink.frames[0] == sink.frames[3] != bytes(FRAME_BYTES)


def test_underruns_are_counted_and_the_thread_goes_on() -> None:
    path, _ = run(Opener([], ["ok", "underrun", "underrun-returned", "ok"]), frames=6)
    counters = path.counters()
    assert counters["underruns"] == 2
    assert counters["frames_out"] >= 4


def test_injected_errors_are_counted_and_the_thread_survives() -> None:
    path, sink = run(Opener(["error"] * 3, ["error"] * 2), frames=8)
    counters = path.counters()
    assert counters["errors"] == 5
    assert counters["frames_in"] >= 5
    assert all(len(frame) == FRAME_BYTES for frame in sink.frames)


def test_a_run_of_errors_reopens_the_pcms() -> None:
    opener = Opener(["error"] * 12, [])
    path, _ = run(opener, frames=14)
    assert path.counters()["reopens"] == 1
    assert opener.opens == 4


def test_pcms_that_fail_to_open_are_retried() -> None:
    opener = Opener([], [], fail_opens=1)
    path, _ = run(opener, frames=2)
    assert path.counters()["errors"] == 1


def test_failing_callbacks_are_counted_not_fatal() -> None:
    path = AlsaAudioPath(get_board("sim"), AudioSettings(prefill_frames=0), pcm_opener=Opener([], []))
    calls = threading.Event()
    count = 0

    def bad_mic(frame: bytes) -> None:
        nonlocal count
        count += 1
        if count >= 3:
            calls.set()
        raise RuntimeError("boom")

    def short_earpiece() -> bytes:
        return b"\x01"  # too short: padded to a whole frame

    path.start(short_earpiece, bad_mic)
    try:
        assert calls.wait(10)
    finally:
        path.stop()
    assert path.counters()["callback_errors"] >= 3


def test_start_twice_is_refused() -> None:
    path = AlsaAudioPath(get_board("sim"), pcm_opener=Opener([], []))
    sink = Sink(1)
    path.start(sink.read_earpiece_frame, sink.write_mic_frame)
    try:
        with pytest.raises(RuntimeError):
            path.start(sink.read_earpiece_frame, sink.write_mic_frame)
    finally:
        path.stop()


class Media:
    """The other side of the audio path: frames flow while ``flowing`` is set, one per ``tick``."""

    def __init__(self) -> None:
        self.flowing = threading.Event()
        self.ticks = threading.Semaphore(0)

    def wait_for_media(self, timeout: float) -> bool:
        return self.flowing.wait(timeout)

    def wait_for_frame(self, timeout: float) -> bool:
        return self.ticks.acquire(timeout=timeout)


class CountingOpener(Opener):
    def __init__(self) -> None:
        super().__init__([], [])
        self.closed = threading.Semaphore(0)

    def __call__(self, capture: bool, device: str, settings: AudioSettings) -> ScriptedPcm:
        pcm = super().__call__(capture, device, settings)
        pcm.close = self.closed.release  # type: ignore[method-assign]
        return pcm


def test_a_sound_card_rests_while_no_media_flows() -> None:
    """The PCMs are closed while no media flows and opened again when frames flow."""
    opener = CountingOpener()
    path = AlsaAudioPath(get_board("rpi-v1"), AudioSettings(prefill_frames=0), pcm_opener=opener)
    media = Media()
    sink = Sink(3)
    media.flowing.set()
    path.start(sink.read_earpiece_frame, sink.write_mic_frame, media)
    try:
        assert sink.done.wait(10)
        assert opener.opens == 2
        media.flowing.clear()
        assert opener.closed.acquire(timeout=10) and opener.closed.acquire(timeout=10)
        sink.done.clear()
        sink._wanted = len(sink.frames) + 3
        media.flowing.set()
        assert sink.done.wait(10)
        assert opener.opens == 4
    finally:
        path.stop()


def test_the_sim_board_moves_one_frame_per_media_frame() -> None:
    opener = CountingOpener()
    path = AlsaAudioPath(get_board("sim"), AudioSettings(prefill_frames=0), pcm_opener=opener)
    media = Media()
    sink = Sink(5)
    path.start(sink.read_earpiece_frame, sink.write_mic_frame, media)
    try:
        for _ in range(5):
            media.ticks.release()
        assert sink.done.wait(10)
    finally:
        path.stop()
    counters = path.counters()
    assert counters["frames_in"] == counters["frames_out"] == 5 and len(sink.frames) == 5
    assert opener.opens == 2
