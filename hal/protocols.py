"""The small interfaces the firmware sees: hook switch, keypad, indicators, ringer, display, audio.

They are structural (``typing.Protocol``): any object with these members will do, so tests and the
simulator can provide their own. The gpiozero and pyalsaaudio implementations live beside this module;
none of their types appear here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

IndicatorMode = Literal["off", "on", "blink"]
RingPattern = Literal["normal", "click_to_call"]
INDICATOR_MODES: tuple[str, ...] = ("off", "on", "blink")


class HookSwitch(Protocol):
    """The handset cradle. ``when_changed(True)`` is called when the handset is lifted."""

    when_changed: Callable[[bool], None] | None

    @property
    def is_off_hook(self) -> bool: ...

    def close(self) -> None: ...


class Keypad(Protocol):
    """Reports each key press once, as its symbol ("0"-"9", "*", "#"), from its own thread."""

    when_key: Callable[[str], None] | None

    def start(self) -> None: ...

    def close(self) -> None: ...


class Indicator(Protocol):
    """A lamp: off, steadily on, or blinking."""

    @property
    def mode(self) -> str: ...

    def set(self, mode: str) -> None: ...

    def close(self) -> None: ...


class Ringer(Protocol):
    """The bell. ``pattern`` is the pattern now ringing, or None."""

    @property
    def pattern(self) -> str | None: ...

    def ring(self, pattern: str) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class Display(Protocol):
    """One line of text shown to the user."""

    @property
    def text(self) -> str: ...

    def show(self, text: str) -> None: ...

    def close(self) -> None: ...


class AudioPath(Protocol):
    """Moves S16_LE mono frames between the handset and a frame source/sink, from its own thread."""

    def start(
        self, read_earpiece_frame: Callable[[], bytes], write_mic_frame: Callable[[bytes], None]
    ) -> None: ...

    def stop(self) -> None: ...

    def counters(self) -> dict[str, int]: ...

    def set_volume(self, percent: int) -> None: ...

    def close(self) -> None: ...
