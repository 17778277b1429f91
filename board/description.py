"""The description of one hardware revision: pins, timings and sound devices, as plain data."""

from __future__ import annotations

import math
from dataclasses import dataclass

from board.exc import BadBoardError

BCM_PINS = range(28)
"""GPIO numbers (BCM) on the 40-pin header of every Raspberry Pi we support."""


@dataclass(frozen=True)
class BoardDescription:
    """Everything the HAL needs to know about one board; all times are in seconds, pins are BCM numbers.

    The keypad is a matrix: ``keymap[r][c]`` is the key that closes row ``keypad_rows[r]`` onto column
    ``keypad_cols[c]``. Rows are driven low one at a time; columns are inputs with pull-ups.
    """

    name: str
    description: str
    pin_factory_default: str
    """gpiozero pin factory name used when the configuration names none ("lgpio", "mock", ...)."""

    hook_pin: int
    hook_active_low: bool
    """True when the hook pin reads low while the handset is lifted (switch to ground, pull-up on)."""
    hook_bounce_s: float

    keypad_rows: tuple[int, ...]
    keypad_cols: tuple[int, ...]
    keymap: tuple[str, ...]
    key_debounce_s: float
    key_scan_interval_s: float
    """Time between two full scans of the matrix; debouncing counts scans of this length."""
    key_settle_s: float
    """Time between driving a row low and reading the columns."""

    line_led_pin: int
    message_led_pin: int
    led_blink_on_s: float
    led_blink_off_s: float
    ringer_pin: int

    capture_device: str
    playback_device: str
    mixer_card: str
    mixer_control: str
    """Empty when the board has no volume control; ``set_volume`` is then a logged no-op."""
    audio_self_clocked: bool = False
    """True when the PCMs do not pace reads and writes at real time (the ALSA ``file`` plugin over
    ``null``): the audio thread then paces itself on ``time.monotonic()``."""
    hook_flash_min_s: float = 0.1
    hook_flash_max_s: float = 0.7
    """A handset down for between these two times and up again is a hook flash (hold, back to the held
    call), as ATAs take it; down longer, it hangs up. Shorter is a bounce of the switch."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise BadBoardError(f"board {self.name!r}: " + "; ".join(problems))

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key of the keypad, row by row."""
        return tuple(key for row in self.keymap for key in row)

    @property
    def key_debounce_scans(self) -> int:
        """How many identical consecutive scans make a key change count."""
        return max(1, math.ceil(self.key_debounce_s / self.key_scan_interval_s - 1e-9))

    def pins(self) -> dict[str, int]:
        """Every pin the board uses, by function."""
        named = {
            "hook": self.hook_pin,
            "line_led": self.line_led_pin,
            "message_led": self.message_led_pin,
            "ringer": self.ringer_pin,
        }
        named.update({f"keypad_row{i}": pin for i, pin in enumerate(self.keypad_rows)})
        named.update({f"keypad_col{i}": pin for i, pin in enumerate(self.keypad_cols)})
        return named

    def problems(self) -> list[str]:
        """Every inconsistency of this description (empty when it is sound)."""
        found: list[str] = []
        seen: dict[int, str] = {}
        for function, pin in self.pins().items():
            if pin not in BCM_PINS:
                found.append(f"{function} pin {pin} is not a BCM GPIO number (0-27)")
            if pin in seen:
                found.append(f"pin {pin} is used by both {seen[pin]} and {function}")
            seen.setdefault(pin, function)
        if len(self.keymap) != len(self.keypad_rows):
            found.append(f"keymap has {len(self.keymap)} rows, keypad_rows has {len(self.keypad_rows)}")
        for r, row in enumerate(self.keymap):
            if len(row) != len(self.keypad_cols):
                found.append(f"keymap row {r} {row!r} does not have {len(self.keypad_cols)} keys")
        if len(set(self.keys)) != len(self.keys):
            found.append("keymap names a key twice")
        for field in ("hook_bounce_s", "key_debounce_s", "key_scan_interval_s", "led_blink_on_s"):
            if not getattr(self, field) > 0:
                found.append(f"{field} must be > 0")
        for field in ("key_settle_s", "led_blink_off_s"):
            if getattr(self, field) < 0:
                found.append(f"{field} must be >= 0")
        if not 0 <= self.hook_flash_min_s < self.hook_flash_max_s:
            found.append("hook flash window needs 0 <= hook_flash_min_s < hook_flash_max_s")
        if not self.capture_device or not self.playback_device:
            found.append("capture_device and playback_device must be named")
        if bool(self.mixer_control) and not self.mixer_card:
            found.append("mixer_control needs a mixer_card")
        return found
