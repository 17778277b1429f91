"""The ringer: a buzzer switched on and off in a cadence of its own for each ring pattern."""

from __future__ import annotations

import logging
import threading

from gpiozero import Buzzer
from gpiozero.pins import Factory

from hal.exc import BadModeError

logger = logging.getLogger(__name__)

Cadence = tuple[tuple[bool, float], ...]

RING_PATTERNS: dict[str, Cadence] = {
    # a plain incoming call: 2 s on, 4 s off
    "normal": ((True, 2.0), (False, 4.0)),
    # click-to-call: short double bursts, so it cannot be mistaken for an incoming call
    "click_to_call": ((True, 0.3), (False, 0.2), (True, 0.3), (False, 1.7)),
}
"""Each pattern is a repeating list of (buzzer on?, seconds); every pattern starts sounding at once."""


class GpioRinger:
    """Rings a buzzer on one pin; the cadence runs in a ``ringer`` thread until :meth:`stop`."""

    def __init__(self, pin: int, pin_factory: Factory, patterns: dict[str, Cadence] | None = None) -> None:
        self._patterns = dict(RING_PATTERNS if patterns is None else patterns)
        self._buzzer = Buzzer(pin, initial_value=False, pin_factory=pin_factory)
        self._lock = threading.Lock()
        self._pattern: str | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def pattern(self) -> str | None:
        """The pattern now ringing, or None when silent."""
        return self._pattern

    def ring(self, pattern: str) -> None:
        """Ring ``pattern`` (restarting it if another one rings)."""
        cadence = self._patterns.get(pattern)
        if cadence is None:
            raise BadModeError(f"ring pattern {pattern!r} is not one of {', '.join(self._patterns)}")
        with self._lock:
            if pattern == self._pattern:
                return
            self._halt()
            stop = threading.Event()
            self._stop = stop
            self._pattern = pattern
            self._buzzer.on()
            self._thread = threading.Thread(
                target=self._run, args=(cadence, stop), name="ringer", daemon=True
            )
            self._thread.start()
        logger.info("ringing %s", pattern)

    def stop(self) -> None:
        """Silence the ringer."""
        with self._lock:
            was = self._pattern
            self._halt()
        if was is not None:
            logger.info("ringer stopped")

    def _halt(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._stop = None
        self._thread = None
        self._pattern = None
        self._buzzer.off()

    def _run(self, cadence: Cadence, stop: threading.Event) -> None:
        while True:
            for sounding, seconds in cadence:
                if stop.is_set():
                    return
                if sounding:
                    self._buzzer.on()
                else:
                    self._buzzer.off()
                if stop.wait(seconds):
                    return

    def close(self) -> None:
        self.stop()
        self._buzzer.close()
