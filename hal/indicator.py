"""LEDs (line, message) with the modes off / on / blink, on gpiozero LED."""

from __future__ import annotations

import logging

from gpiozero import LED
from gpiozero.pins import Factory

from hal.exc import BadModeError
from hal.protocols import INDICATOR_MODES

logger = logging.getLogger(__name__)


class GpioIndicator:
    """An LED on one pin; ``set("blink")`` blinks it in gpiozero's background thread."""

    def __init__(
        self, name: str, pin: int, pin_factory: Factory, blink_on_s: float, blink_off_s: float
    ) -> None:
        self.name = name
        self._blink = (blink_on_s, blink_off_s)
        self._mode = "off"
        self._led = LED(pin, initial_value=False, pin_factory=pin_factory)

    @property
    def mode(self) -> str:
        return self._mode

    def set(self, mode: str) -> None:
        if mode not in INDICATOR_MODES:
            raise BadModeError(f"LED mode {mode!r} is not one of {', '.join(INDICATOR_MODES)}")
        if mode == self._mode:
            return
        if mode == "on":
            self._led.on()
        elif mode == "off":
            self._led.off()
        else:
            on_s, off_s = self._blink
            self._led.blink(on_time=on_s, off_time=off_s, background=True)
        self._mode = mode
        logger.debug("%s LED %s", self.name, mode)

    def close(self) -> None:
        self._led.close()
