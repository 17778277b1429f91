"""A bounded FIFO of fixed-size audio frames between two clocks that drift apart.

The producer and the consumer run on different clocks (ALSA and the pjmedia clock). The FIFO aims
at a small fill level (``target``): it primes to it before giving out frames, gives silence when
it runs dry (an underrun), drops a frame when the fill stays above ``high_water`` (a drift
correction: the producer is faster) and drops the oldest frame when it is full (an overrun: the
consumer has stopped). Every method is thread-safe and O(1); nothing blocks.
"""

from __future__ import annotations

import threading
from collections import deque


class FrameFifo:
    def __init__(self, frame_bytes: int, target: int = 2, high_water: int = 5, capacity: int = 10) -> None:
        if not 0 < target < high_water < capacity:
            raise ValueError("need 0 < target < high_water < capacity")
        self.frame_bytes = frame_bytes
        self.target = target
        self.high_water = high_water
        self.capacity = capacity
        self._silence = bytes(frame_bytes)
        self._frames: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._priming = True
        self.pushed = 0
        self.popped = 0
        self.underruns = 0
        self.overruns = 0
        self.drift_corrections = 0
        self.dropped_frames = 0

    def push(self, frame: bytes) -> None:
        if len(frame) != self.frame_bytes:
            frame = frame[: self.frame_bytes].ljust(self.frame_bytes, b"\0")
        with self._lock:
            self.pushed += 1
            if len(self._frames) >= self.capacity:
                self._frames.popleft()
                self.overruns += 1
                self.dropped_frames += 1
            self._frames.append(frame)

    def pop(self) -> bytes:
        """The next frame, or silence while priming or empty."""
        with self._lock:
            self.popped += 1
            fill = len(self._frames)
            if fill == 0:
                if not self._priming:
                    self.underruns += 1
                    self._priming = True
                return self._silence
            if self._priming:
                if fill < self.target:
                    return self._silence
                self._priming = False
            if fill > self.high_water:
                self._frames.popleft()
                self.drift_corrections += 1
                self.dropped_frames += 1
            return self._frames.popleft()

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self._priming = True

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)
