"""Hardware abstraction: hook switch, keypad matrix, LEDs, ringer, display (gpiozero) and the audio path
(pyalsaaudio), behind small protocols of our own (:mod:`hal.protocols`). Imports only ``board``."""

from __future__ import annotations

from hal.audio import AlsaAudioPath, AudioSettings
from hal.exc import BadModeError, HalError, PanelError, PanelTimeoutError, UnknownKeyError
from hal.factory import Hardware, build_hardware
from hal.pin_factory import make_pin_factory

__all__ = [
    "AlsaAudioPath",
    "AudioSettings",
    "BadModeError",
    "HalError",
    "Hardware",
    "PanelError",
    "PanelTimeoutError",
    "UnknownKeyError",
    "build_hardware",
    "make_pin_factory",
]
