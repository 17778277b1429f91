"""The handset audio path on pyalsaaudio: an ``audio`` thread between the ALSA PCMs and frame callbacks.

One frame is ``frame_ms`` of S16_LE mono PCM at ``sample_rate``. For each frame the thread reads the
capture PCM and hands the frame to ``write_mic_frame``, then asks ``read_earpiece_frame`` for a frame and
writes it to the playback PCM. On real sound cards the blocking capture read is the clock. The ALSA
``file`` plugin over ``null`` (the sim board) does not pace at all, so a board with
``audio_self_clocked`` makes the thread pace itself on ``time.monotonic()``.

Given the other side's :class:`MediaClock`, the thread rests while that side moves no frames (no
call, no tone) instead of moving silence. A real sound card's PCMs are closed while resting and opened
again when frames flow, so the capture side does not overrun meanwhile. A self-clocked board then
needs no timekeeping of its own at all: it moves one frame per frame of the other side's clock
(lock-step), keeps its PCMs open (the mic file goes on where it stopped), and sleeps while that clock
is stopped.

Nothing here lets an ALSA problem end the thread: an overrun (``read()`` giving a negative length, or
raising "Broken pipe") is counted and replaced by a frame of silence; an underrun is counted and the
next write recovers; any other ALSA error is counted, the frame is silence, and after a run of errors
the PCMs are opened again.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import alsaaudio

from board import BoardDescription

logger = logging.getLogger(__name__)

BYTES_PER_SAMPLE = 2
REOPEN_AFTER_ERRORS = 10
MAX_LAG_FRAMES = 25
REST_CHECK_S = 1.0


@dataclass(frozen=True)
class AudioSettings:
    """Audio parameters chosen by the configuration; device names default to the board's."""

    sample_rate: int = 16000
    frame_ms: int = 20
    periods: int = 4
    prefill_frames: int = 2
    capture_device: str | None = None
    playback_device: str | None = None
    volume_percent: int | None = None

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * self.frame_ms // 1000

    @property
    def frame_bytes(self) -> int:
        return self.frame_samples * BYTES_PER_SAMPLE


class Pcm(Protocol):
    """What the audio thread needs of a PCM (pyalsaaudio's ``PCM`` has it)."""

    def read(self) -> tuple[int, bytes]: ...

    def write(self, data: bytes) -> int: ...

    def close(self) -> None: ...


class MediaClock(Protocol):
    """The timing of the other side of the audio path (the SIP stack's audio bridge has it)."""

    def wait_for_media(self, timeout: float) -> bool:
        """True at once while the other side moves frames, else wait up to ``timeout`` for it."""
        ...

    def wait_for_frame(self, timeout: float) -> bool:
        """Wait for the other side's next frame (True) or ``timeout`` (False)."""
        ...


PcmOpener = Callable[[bool, str, AudioSettings], Pcm]
"""``opener(capture, device, settings)`` opens one PCM; tests pass their own to inject faults."""


def open_alsa_pcm(capture: bool, device: str, settings: AudioSettings) -> Pcm:
    """Open a blocking S16_LE mono ALSA PCM with one period per frame."""
    return alsaaudio.PCM(
        type=alsaaudio.PCM_CAPTURE if capture else alsaaudio.PCM_PLAYBACK,
        mode=alsaaudio.PCM_NORMAL,
        rate=settings.sample_rate,
        channels=1,
        format=alsaaudio.PCM_FORMAT_S16_LE,
        periodsize=settings.frame_samples,
        periods=settings.periods,
        device=device,
    )


def _is_xrun(error: Exception) -> bool:
    text = str(error)
    return "Broken pipe" in text or f"[Errno {errno.EPIPE}]" in text


class AlsaAudioPath:
    """The audio path of one board; :meth:`start` runs the ``audio`` thread, :meth:`stop` ends it."""

    def __init__(
        self,
        board: BoardDescription,
        settings: AudioSettings | None = None,
        pcm_opener: PcmOpener = open_alsa_pcm,
    ) -> None:
        self._board = board
        self._settings = settings or AudioSettings()
        self._capture_device = self._settings.capture_device or board.capture_device
        self._playback_device = self._settings.playback_device or board.playback_device
        self._opener = pcm_opener
        self._silence = bytes(self._settings.frame_bytes)
        self._counts = dict.fromkeys(
            ("frames_in", "frames_out", "overruns", "underruns", "errors", "reopens", "callback_errors"), 0
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._capture: Pcm | None = None
        self._playback: Pcm | None = None

    @property
    def settings(self) -> AudioSettings:
        return self._settings

    def start(
        self,
        read_earpiece_frame: Callable[[], bytes],
        write_mic_frame: Callable[[bytes], None],
        media: MediaClock | None = None,
    ) -> None:
        """Start moving frames: ``write_mic_frame(frame)`` for each captured frame, and
        ``read_earpiece_frame()`` for each frame to play; with ``media``, rest while it moves no
        frames (and on a self-clocked board, keep its time). All are called from the ``audio`` thread."""
        if self._thread is not None:
            raise RuntimeError("audio path already started")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run,
            args=(read_earpiece_frame, write_mic_frame, media),
            name="audio",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the PCMs."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def close(self) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def counters(self) -> dict[str, int]:
        """frames_in, frames_out, overruns, underruns, errors (ALSA errors), reopens, callback_errors."""
        with self._lock:
            return dict(self._counts)

    def set_volume(self, percent: int) -> None:
        """Set the earpiece volume through the board's mixer control, or log that there is none."""
        percent = max(0, min(100, int(percent)))
        if not self._board.mixer_control:
            logger.info("board %s has no mixer control; volume %d%% not set", self._board.name, percent)
            return
        try:
            mixer = alsaaudio.Mixer(
                control=self._board.mixer_control, device=f"hw:CARD={self._board.mixer_card}"
            )
            try:
                mixer.setvolume(percent)
            finally:
                mixer.close()
        except alsaaudio.ALSAAudioError as exc:
            self._count("errors")
            logger.warning("cannot set volume on %s: %s", self._board.mixer_control, exc)
        else:
            logger.info("volume %d%%", percent)

    # -- the audio thread -------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _rest(self, media: MediaClock) -> None:
        """Sleep until the other side moves frames again (or the path stops)."""
        self._close_pcms()
        while not self._stop.is_set() and not media.wait_for_media(REST_CHECK_S):
            pass

    def _run(
        self,
        read_earpiece_frame: Callable[[], bytes],
        write_mic_frame: Callable[[bytes], None],
        media: MediaClock | None,
    ) -> None:
        settings = self._settings
        lock_step = media is not None and self._board.audio_self_clocked
        frame_s = settings.frame_ms / 1000
        logger.info(
            "audio started: capture %r, playback %r, %d Hz, %d ms frames%s",
            self._capture_device,
            self._playback_device,
            settings.sample_rate,
            settings.frame_ms,
            (", lock-step with the media clock" if lock_step else ", self-clocked")
            if self._board.audio_self_clocked
            else "",
        )
        if settings.volume_percent is not None:
            self.set_volume(settings.volume_percent)
        consecutive_errors = 0
        next_due = time.monotonic()
        try:
            self._open()  # at once, resting or not: the sim board's earpiece file exists from the start
            while not self._stop.is_set():
                if lock_step:
                    assert media is not None
                    if not media.wait_for_frame(REST_CHECK_S):
                        continue
                elif media is not None and not media.wait_for_media(0):
                    self._rest(media)
                    next_due = time.monotonic()
                    continue
                if self._capture is None or self._playback is None:
                    if not self._open():
                        self._stop.wait(0.5)
                        continue
                    next_due = time.monotonic()
                ok_in, mic = self._read_mic()
                self._deliver(write_mic_frame, mic)
                ok_out = self._play(self._fetch(read_earpiece_frame))
                consecutive_errors = 0 if (ok_in and ok_out) else consecutive_errors + 1
                if consecutive_errors >= REOPEN_AFTER_ERRORS:
                    logger.warning("%d ALSA errors in a row; opening the PCMs again", consecutive_errors)
                    self._close_pcms()
                    self._count("reopens")
                    consecutive_errors = 0
                if (self._board.audio_self_clocked and not lock_step) or not (ok_in and ok_out):
                    next_due += frame_s
                    delay = next_due - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
                    elif -delay > MAX_LAG_FRAMES * frame_s:
                        next_due = time.monotonic()
        except Exception:
            logger.exception("audio thread failed")
        finally:
            self._close_pcms()
            logger.info("audio stopped: %s", self.counters())

    def _open(self) -> bool:
        try:
            self._capture = self._opener(True, self._capture_device, self._settings)
            self._playback = self._opener(False, self._playback_device, self._settings)
            for _ in range(self._settings.prefill_frames):
                self._playback.write(self._silence)
        except (alsaaudio.ALSAAudioError, OSError) as exc:
            self._count("errors")
            logger.warning("cannot open the PCMs: %s", exc)
            self._close_pcms()
            return False
        return True

    def _close_pcms(self) -> None:
        for pcm in (self._capture, self._playback):
            if pcm is not None:
                try:
                    pcm.close()
                except Exception as exc:
                    logger.debug("closing PCM: %s", exc)
        self._capture = self._playback = None

    def _read_mic(self) -> tuple[bool, bytes]:
        """One captured frame; silence on overrun or error. The flag is False after an error."""
        assert self._capture is not None
        try:
            length, data = self._capture.read()
        except alsaaudio.ALSAAudioError as exc:
            if _is_xrun(exc):
                self._count("overruns")
                return True, self._silence
            self._count("errors")
            logger.debug("capture error: %s", exc)
            return False, self._silence
        if length < 0:
            self._count("overruns")
            return True, self._silence
        if length == 0:
            return True, self._silence
        self._count("frames_in")
        return True, self._fit(data)

    def _play(self, frame: bytes) -> bool:
        assert self._playback is not None
        try:
            written = self._playback.write(frame)
        except alsaaudio.ALSAAudioError as exc:
            if _is_xrun(exc):
                self._count("underruns")
                return True
            self._count("errors")
            logger.debug("playback error: %s", exc)
            return False
        if written < 0:
            self._count("underruns")
            return True
        self._count("frames_out")
        return True

    def _deliver(self, write_mic_frame: Callable[[bytes], None], frame: bytes) -> None:
        try:
            write_mic_frame(frame)
        except Exception:
            self._count("callback_errors")
            logger.exception("write_mic_frame failed")

    def _fetch(self, read_earpiece_frame: Callable[[], bytes]) -> bytes:
        try:
            frame = read_earpiece_frame()
        except Exception:
            self._count("callback_errors")
            logger.exception("read_earpiece_frame failed")
            return self._silence
        return self._fit(frame or b"")

    def _fit(self, frame: bytes) -> bytes:
        size = len(self._silence)
        if len(frame) == size:
            return bytes(frame)
        return bytes(frame[:size]).ljust(size, b"\0")
