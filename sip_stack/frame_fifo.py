"""A bounded FIFO of fixed-size audio frames between two clocks that drift apart.

The producer and the consumer run on different clocks (ALSA and the pjmedia clock). The FIFO aims
at a small fill level (``target``): it primes to it before giving out frames and gives silence when it
runs dry (an underrun). An underrun means the consumer's thread ran that far ahead of the producer's
(a scheduling stall, or a clock thread catching up in a burst): up to ``max_target`` each underrun
raises the target by one frame, so a loaded machine pays one more frame of delay instead of
underrunning again. Clock drift shows as a fill level that *stays* above the target: every
``window`` pops the lowest fill seen in that window is the standing excess, and that many frames are
dropped at once (one drift correction). Short bursts (a thread that was late catches up) leave the
minimum alone and are played, not dropped. When the FIFO is full the oldest frame goes: an overrun
while the consumer is running, or a stall drop while nobody consumes (no call: that is normal).
Every method is thread-safe and O(1) amortised; nothing blocks.
"""

from __future__ import annotations

import threading
from collections import deque


class FrameFifo:
    def __init__(
        self,
        frame_bytes: int,
        target: int = 2,
        capacity: int = 25,
        window: int = 25,
        max_target: int | None = None,
    ) -> None:
        max_target = target if max_target is None else max_target
        if not 0 < target <= max_target < capacity or window < 1:
            raise ValueError("need 0 < target <= max_target < capacity and window >= 1")
        self.frame_bytes = frame_bytes
        self.target = self._base_target = target
        self.max_target = max_target
        self.capacity = capacity
        self.window = window
        self._silence = bytes(frame_bytes)
        self._frames: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._priming = True
        self._window_pops = 0
        self._window_min = capacity
        self._pushes_since_pop = 0
        self.pushed = 0
        self.popped = 0
        self.underruns = 0
        self.overruns = 0
        self.stall_drops = 0
        self.drift_corrections = 0
        self.dropped_frames = 0

    def retarget(self, target: int) -> None:
        """Aim at another fill level from now on (the consumer's timing changed); underruns may
        raise it again up to ``max_target`` (kept, or raised to ``target``)."""
        if not 0 < target < self.capacity:
            raise ValueError("need 0 < target < capacity")
        with self._lock:
            self.target = self._base_target = target
            self.max_target = max(self.max_target, target)
            self._restart_window()

    def push(self, frame: bytes) -> None:
        if len(frame) != self.frame_bytes:
            frame = frame[: self.frame_bytes].ljust(self.frame_bytes, b"\0")
        with self._lock:
            self.pushed += 1
            self._pushes_since_pop += 1
            if len(self._frames) >= self.capacity:
                self._frames.popleft()
                if self._pushes_since_pop > self.capacity:
                    self.stall_drops += 1
                else:
                    self.overruns += 1
                    self.dropped_frames += 1
            self._frames.append(frame)

    def pop(self) -> bytes:
        """The next frame, or silence while priming or empty."""
        with self._lock:
            self.popped += 1
            self._pushes_since_pop = 0
            fill = len(self._frames)
            if fill == 0:
                if not self._priming:
                    self.underruns += 1
                    self._priming = True
                    self.target = min(self.target + 1, self.max_target)
                self._restart_window()
                return self._silence
            if self._priming:
                if fill < self.target:
                    return self._silence
                self._priming = False
                self._restart_window()
            self._correct_drift(fill)
            return self._frames.popleft()

    def _correct_drift(self, fill: int) -> None:
        self._window_min = min(self._window_min, fill)
        self._window_pops += 1
        if self._window_pops < self.window:
            return
        excess = self._window_min - self.target
        if excess > 0:
            for _ in range(excess):
                self._frames.popleft()
            self.drift_corrections += 1
            self.dropped_frames += excess
        self._restart_window()

    def _restart_window(self) -> None:
        self._window_pops = 0
        self._window_min = self.capacity

    def clear(self) -> None:
        """Empty the FIFO and go back to the first target (a new call learns its own depth)."""
        with self._lock:
            self._frames.clear()
            self.target = self._base_target
            self._priming = True
            self._restart_window()

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)
