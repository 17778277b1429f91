"""Named one-shot timers for the core thread.

Thread ``timers`` sleeps until the earliest deadline and posts a :class:`TimerExpiry` to the core's
inbox. Restarting or cancelling a timer bumps its generation, so an expiry that was already posted
for an older generation is recognised as stale by :meth:`Timers.is_current` and ignored.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimerExpiry:
    name: str
    generation: int


class Timers:
    def __init__(self, post: Callable[[TimerExpiry], None]) -> None:
        self._post = post
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []
        self._generation: dict[str, int] = {}
        self._counter = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="timers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()
        self._thread.join(timeout=2)

    def schedule(self, name: str, seconds: float) -> None:
        with self._lock:
            self._counter += 1
            self._generation[name] = self._counter
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, seconds), self._counter, name))
            self._lock.notify()

    def cancel(self, name: str) -> None:
        with self._lock:
            self._generation.pop(name, None)

    def is_current(self, expiry: TimerExpiry) -> bool:
        with self._lock:
            return self._generation.get(expiry.name) == expiry.generation

    def _run(self) -> None:
        with self._lock:
            while not self._stopped:
                if not self._heap:
                    self._lock.wait()
                    continue
                deadline, generation, name = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._lock.wait(delay)
                    continue
                heapq.heappop(self._heap)
                if self._generation.get(name) == generation:
                    self._post(TimerExpiry(name, generation))
