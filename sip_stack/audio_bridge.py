"""The audio bridge between pjsua2's conference bridge and the phone's audio hardware.

``AudioBridge`` is what the HAL ``audio`` thread talks to (``write_mic_frame``,
``read_earpiece_frame``, ``counters``); it exists before the SIP stack starts. ``BridgePort`` is the
pjsua2 ``AudioMediaPort`` the pjmedia clock thread calls; it only moves frames between the bridge's
two bounded FIFOs. Frames are S16_LE mono, ``frame_ms`` long, at ``clock_rate``.
"""

from __future__ import annotations

import logging
import threading
import time

import pjsua2 as pj

from sip_stack.bytevector import FrameVector, to_bytes
from sip_stack.frame_fifo import FrameFifo

logger = logging.getLogger(__name__)

MEDIA_IDLE_AFTER_S = 0.2
"""The media side counts as stopped once the pjmedia clock has not called for this long."""
MAX_FRAME_BACKLOG = 5
"""A lock-step consumer that fell behind catches up by at most this many frames."""
MAX_FIFO_TARGET = 4
"""Underruns raise a FIFO's priming depth (2 frames) up to this many frames (80 ms at 20 ms frames)."""


class AudioBridge:
    """Two FIFOs: microphone (HAL -> media) and earpiece (media -> HAL)."""

    def __init__(self, clock_rate: int = 16000, frame_ms: int = 20) -> None:
        self.clock_rate = clock_rate
        self.frame_ms = frame_ms
        self.frame_bytes = clock_rate * frame_ms // 1000 * 2
        self.mic = FrameFifo(self.frame_bytes, max_target=MAX_FIFO_TARGET)
        self.earpiece = FrameFifo(self.frame_bytes, max_target=MAX_FIFO_TARGET)
        # Whether microphone frames may reach a call at all (else the call gets silence). Closed until
        # the firmware routes audio to a connected call with the handset up; set from any thread.
        self.mic_open = False
        self.muted_frames = 0
        self._media_at = float("-inf")
        self._media = threading.Event()
        self._frames = threading.Condition()
        self._frame_ticks = 0
        self._frames_taken = 0
        self._lock_step = False

    def media_tick(self, earpiece_frame: bool = False) -> None:
        """pjmedia clock thread: the media side moved a frame (``earpiece_frame``: pushed one to us)."""
        self._media_at = time.monotonic()
        if not self._media.is_set():
            self._media.set()
        if earpiece_frame:
            with self._frames:
                self._frame_ticks += 1
                self._frames.notify()

    def wait_for_media(self, timeout: float) -> bool:
        """HAL audio thread: True at once while the pjmedia clock runs (a call or a tone), else wait up
        to ``timeout`` for it to start. pjsua stops that clock when nothing is connected to our port."""
        if time.monotonic() - self._media_at < MEDIA_IDLE_AFTER_S:
            return True
        self._media.clear()
        if time.monotonic() - self._media_at < MEDIA_IDLE_AFTER_S:
            return True
        return self._media.wait(timeout)

    def wait_for_frame(self, timeout: float) -> bool:
        """HAL audio thread on a board without an audio clock of its own: wait for the next frame the
        pjmedia clock pushes to the earpiece (True), or ``timeout`` (False). Such a consumer pops right
        after each push, so from its first call the earpiece FIFO keeps no slack frame (target 1): no
        Python timekeeping and 20 ms less in the earpiece path."""
        if not self._lock_step:
            self._lock_step = True
            self.earpiece.retarget(1)
        with self._frames:
            if self._frame_ticks - self._frames_taken > MAX_FRAME_BACKLOG:
                self._frames_taken = self._frame_ticks - MAX_FRAME_BACKLOG
            if self._frames_taken == self._frame_ticks and not self._frames.wait(timeout):
                return False
            if self._frames_taken == self._frame_ticks:
                return False
            self._frames_taken += 1
            return True

    # HAL audio thread side
    def write_mic_frame(self, frame: bytes) -> None:
        self.mic.push(frame)

    def read_earpiece_frame(self) -> bytes:
        return self.earpiece.pop()

    def counters(self) -> dict[str, int]:
        """Totals of both directions, then each direction (``mic_*``: to the call, ``ear_*``: from it)."""
        mic, ear = self.mic, self.earpiece
        totals = {
            "mic_frames": mic.pushed,
            "earpiece_frames": ear.popped,
            "underruns": mic.underruns + ear.underruns,
            "overruns": mic.overruns + ear.overruns,
            "drift_corrections": mic.drift_corrections + ear.drift_corrections,
            "dropped_frames": mic.dropped_frames + ear.dropped_frames,
            "media_frames_out": mic.popped,
            "media_frames_in": ear.pushed,
            "mic_muted_frames": self.muted_frames,
        }
        for prefix, fifo in (("mic", mic), ("ear", ear)):
            totals[f"{prefix}_underruns"] = fifo.underruns
            totals[f"{prefix}_overruns"] = fifo.overruns
            totals[f"{prefix}_drift_corrections"] = fifo.drift_corrections
            totals[f"{prefix}_stall_drops"] = fifo.stall_drops
            totals[f"{prefix}_fill"] = len(fifo)
            totals[f"{prefix}_target"] = fifo.target
        return totals


class BridgePort(pj.AudioMediaPort):
    """pjsua2 media port; its callbacks run on the pjmedia clock thread and only move frames."""

    def __init__(self, bridge: AudioBridge) -> None:
        super().__init__()
        self._bridge = bridge
        self._silence = bytes(bridge.frame_bytes)
        self._out = FrameVector(bridge.frame_bytes)  # the clock thread's only

    def create(self) -> None:
        """Register with the conference bridge (on the ``sip`` thread)."""
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_L16, self._bridge.clock_rate, 1, self._bridge.frame_ms * 1000, 16)
        self.createPort("deskphone-audio", fmt)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        bridge = self._bridge
        bridge.media_tick()
        data = bridge.mic.pop()
        if not bridge.mic_open:
            data = self._silence
            bridge.muted_frames += 1
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = self._out.load(data)  # the frame keeps a copy
        frame.size = len(data)

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            self._bridge.earpiece.push(to_bytes(frame.buf))
        else:
            self._bridge.earpiece.push(self._silence)
        self._bridge.media_tick(earpiece_frame=True)
