"""The electrical side of the sim board: a person's hands on MockFactory pins.

``SimulatedPanel`` lifts and replaces the handset (drives the hook pin), presses keys (closes a contact
between a keypad row and column), and reads back what the LEDs and the ringer show, from the pins alone.

Key contacts live in :class:`PanelPin`, a MockPin whose level, when read, is pulled low by any closed
contact onto an output pin that is driven low. So the column reads low exactly while the scan drives
that row low, with no thread of ours in between; and when that level changes (a contact closes or opens,
a row is driven or released), the column's edge callbacks fire as a real pin's would. Each read of a
closed contact is counted, which lets ``press`` hold a key until the keypad has scanned it enough times
to pass its debouncer, and release it the same way: a quick "1002#" gives exactly those keys, whatever
the thread scheduling.

The column pins must be PanelPins: create the panel before the hardware, or make the factory with
:func:`make_mock_factory`, whose every pin is one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from gpiozero.pins.mock import MockFactory, MockPin
from gpiozero.pins.pi import PiPin

from board import BoardDescription
from hal.exc import PanelError, PanelTimeoutError, UnknownKeyError

logger = logging.getLogger(__name__)

STATE_HISTORY = 64
"""PanelPin keeps only this many entries of MockPin's ``states`` history (blinking never grows it)."""
PRESS_TIMEOUT_S = 5.0


class PanelPin(MockPin):
    """A MockPin that simulated key contacts can pull low. It remembers when it last changed, and keeps
    only the last few entries of MockPin's ``states`` history, so a blinking LED never grows it."""

    def __init__(self, factory: MockFactory, info: object) -> None:
        super().__init__(factory, info)
        self._contacts: list[Contact] = []
        self._columns: list[PanelPin] = []  # on a row: the columns it has contacts to
        self._level: bool | None = None  # on a column: its level as last seen by edge detection
        self.change_times: deque[float] = deque(maxlen=8)

    def add_contact(self, contact: Contact) -> None:
        self._contacts.append(contact)
        if isinstance(contact.row, PanelPin) and self not in contact.row._columns:
            contact.row._columns.append(self)
        self._level = self._contact_level()

    def _contact_level(self) -> bool:
        """The level with the contacts, without counting it as a read of the keypad."""
        pulled_low = any(c.row.function == "output" and not c.row.state and c.closed for c in self._contacts)
        return super()._get_state() and not pulled_low

    def contacts_changed(self) -> None:
        """A contact or a row changed: fire the edge callbacks if the level seen has changed."""
        level = self._contact_level()
        if level == self._level:
            return
        self._level = level
        wanted = ("both", "rising") if level else ("both", "falling")
        if self._edges in wanted and self._when_changed is not None:
            PiPin._call_when_changed(self, time.monotonic(), level)

    def _get_state(self) -> bool:
        state = super()._get_state()
        for contact in self._contacts:
            row = contact.row
            if row.function == "output" and not row.state and contact.read():
                state = False
        return state

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed:
            self.change_times.append(time.monotonic())
            if len(self.states) > STATE_HISTORY:
                del self.states[: len(self.states) - STATE_HISTORY]
            for column in self._columns:
                column.contacts_changed()
        return changed


class Contact:
    """One key of the matrix: a switch between a row pin and a column pin, counting how often the
    keypad has looked at it since it last opened or closed."""

    def __init__(self, key: str, row: MockPin) -> None:
        self.key = key
        self.row = row
        self.column: PanelPin | None = None
        self._closed = False
        self._reads = 0
        self._cond = threading.Condition()

    def read(self) -> bool:
        """The keypad reads this contact (its row is driven): count it, and say whether it is closed."""
        with self._cond:
            self._reads += 1
            self._cond.notify_all()
            return self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    def set(self, closed: bool) -> None:
        with self._cond:
            self._closed = closed
            self._reads = 0
        if self.column is not None:
            self.column.contacts_changed()

    def wait_reads(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._reads >= count, timeout)


def make_mock_factory() -> MockFactory:
    """A MockFactory whose pins are all PanelPins, so a panel may be made before or after the hardware."""
    return MockFactory(pin_class=PanelPin)


class SimulatedPanel:
    """The hands and eyes of a person at the sim board's pins. Thread-safe; ``press`` blocks."""

    def __init__(self, factory: MockFactory, board: BoardDescription) -> None:
        self._board = board
        self._factory = factory
        self._press_lock = threading.Lock()
        self._hook = factory.pin(board.hook_pin, pin_class=PanelPin)
        self._leds = {
            "line": factory.pin(board.line_led_pin, pin_class=PanelPin),
            "message": factory.pin(board.message_led_pin, pin_class=PanelPin),
        }
        self._ringer = factory.pin(board.ringer_pin, pin_class=PanelPin)
        rows = [factory.pin(pin, pin_class=PanelPin) for pin in board.keypad_rows]
        self._contacts: dict[str, Contact] = {}
        for c, col_pin in enumerate(board.keypad_cols):
            col = factory.pin(col_pin, pin_class=PanelPin)
            if not isinstance(col, PanelPin):
                raise PanelError(
                    f"keypad column GPIO{col_pin} is already a {type(col).__name__}: create the "
                    "SimulatedPanel before the hardware, or use hal.simulated.make_mock_factory()"
                )
            for r, row in enumerate(rows):
                contact = Contact(board.keymap[r][c], row)
                contact.column = col
                col.add_contact(contact)
                self._contacts[contact.key] = contact

    # -- the handset ------------------------------------------------------------------------------------

    def lift(self) -> None:
        """Lift the handset off its cradle."""
        self._drive_hook(off_hook=True)

    def replace(self) -> None:
        """Put the handset back."""
        self._drive_hook(off_hook=False)

    def flash(self, seconds: float | None = None) -> None:
        """A hook flash: the handset down for ``seconds`` (the middle of the board's window) and up again."""
        board = self._board
        self.replace()
        time.sleep((board.hook_flash_min_s + board.hook_flash_max_s) / 2 if seconds is None else seconds)
        self.lift()

    def is_off_hook(self) -> bool:
        """The hook switch as wired: True when the handset is lifted."""
        return self._hook.state != self._board.hook_active_low

    def _drive_hook(self, off_hook: bool) -> None:
        if off_hook == self._board.hook_active_low:
            self._hook.drive_low()
        else:
            self._hook.drive_high()

    # -- the keypad -------------------------------------------------------------------------------------

    def press(self, key: str, timeout: float = PRESS_TIMEOUT_S) -> None:
        """Press ``key`` and release it, holding each state until the keypad has scanned it past its
        debouncer. Raises PanelTimeoutError if the keypad does not scan (not started?)."""
        contact = self._contacts.get(key)
        if contact is None:
            raise UnknownKeyError(f"no key {key!r} on the {self._board.name} keypad")
        needed = self._board.key_debounce_scans + 1
        with self._press_lock:
            for closed in (True, False):
                contact.set(closed)
                if not contact.wait_reads(needed, timeout):
                    contact.set(False)
                    raise PanelTimeoutError(f"keypad did not scan key {key!r} within {timeout} s")

    def type(self, keys: str, timeout: float = PRESS_TIMEOUT_S) -> None:
        """Press each key of ``keys`` in turn."""
        for key in keys:
            self.press(key, timeout)

    # -- what a person sees and hears -------------------------------------------------------------------

    def read_leds(self) -> dict[str, str]:
        """Each LED as seen: "on", "off", or "blink" once it has toggled at the board's blink rate.

        A blink that has only just started reads "on" until its first toggle; on plain MockPins (not
        :class:`PanelPin`) there is no "blink"."""
        return {name: self._seen(pin) for name, pin in self._leds.items()}

    def ringer_on(self) -> bool:
        """True while the buzzer sounds (it is silent in the pauses of a ring cadence)."""
        return bool(self._ringer.state)

    def _seen(self, pin: MockPin) -> str:
        if isinstance(pin, PanelPin) and self._blinking(list(pin.change_times)):
            return "blink"
        return "on" if pin.state else "off"

    def _blinking(self, changes: list[float]) -> bool:
        on_s, off_s = self._board.led_blink_on_s, self._board.led_blink_off_s
        if len(changes) < 2 or time.monotonic() - changes[-1] > 1.5 * max(on_s, off_s):
            return False
        gap = changes[-1] - changes[-2]
        return any(0.5 * period <= gap <= 1.5 * period for period in (on_s, off_s) if period > 0)
