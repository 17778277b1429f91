"""A matrix keypad of our own on gpiozero devices: rows are outputs, columns inputs with pull-ups."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins import Factory

from board import BoardDescription
from hal.debounce import KeyDebouncer

logger = logging.getLogger(__name__)


IDLE_CHECK_S = 30.0
"""While idle the thread waits for a column edge; it also looks at the columns this often, in case an
edge was lost. Rarely: a key that closed while the rows were being driven is seen by the look right
after driving them, and a lost edge's key is most likely up again long before any look."""


class MatrixKeypad:
    """Scans the board's keypad matrix in a ``keypad-scan`` thread and reports each press once.

    While the keypad is idle every row is driven low at once and the thread sleeps until a column's
    falling edge (a key closing onto a driven row; gpiozero edge detection). Then it releases the rows
    and scans at the board's rate until the debouncer has settled with every key up again, and goes
    back to sleep. An idle phone's keypad costs no CPU, and the first key is not delayed.

    Every ``board.key_scan_interval_s`` the thread drives each row low in turn (the others high), waits
    ``board.key_settle_s``, and reads the columns: a column that reads low has a key closing it onto the
    driven row. The closed keys go through a :class:`KeyDebouncer` that needs
    ``board.key_debounce_scans`` agreeing scans. ``when_key(symbol)`` runs in the scan thread; it should
    only post.
    """

    def __init__(self, board: BoardDescription, pin_factory: Factory) -> None:
        self.when_key: Callable[[str], None] | None = None
        self._board = board
        self._keymap = board.keymap
        self._debouncer = KeyDebouncer(board.key_debounce_scans, order=board.keys)
        self._stop = threading.Event()
        self._edge = threading.Event()
        self._thread: threading.Thread | None = None
        self._rows: list[DigitalOutputDevice] = []
        self._cols: list[DigitalInputDevice] = []
        try:
            for pin in board.keypad_rows:
                self._rows.append(
                    DigitalOutputDevice(pin, active_high=False, initial_value=False, pin_factory=pin_factory)
                )
            for pin in board.keypad_cols:
                col = DigitalInputDevice(pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
                col.when_activated = self._edge.set
                self._cols.append(col)
        except Exception:
            self._close_devices()
            raise

    def start(self) -> None:
        """Start the scan thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="keypad-scan", daemon=True)
        self._thread.start()

    def scan_once(self) -> list[str]:
        """Scan the matrix once and return the keys that have just become pressed (debounced)."""
        closed: set[str] = set()
        settle = self._board.key_settle_s
        for r, row in enumerate(self._rows):
            row.on()
            try:
                if settle:
                    self._stop.wait(settle)
                for c, col in enumerate(self._cols):
                    if col.value:
                        closed.add(self._keymap[r][c])
            finally:
                row.off()
        return self._debouncer.update(closed)

    def wait_for_key(self, timeout: float) -> bool:
        """Drive every row at once, then wait until a column reads a closed key (True) or ``timeout``."""
        for row in self._rows:
            row.on()
        self._edge.clear()
        if self._board.key_settle_s:
            self._stop.wait(self._board.key_settle_s)
        if not any(col.value for col in self._cols):
            self._edge.wait(timeout)
        closed = not self._stop.is_set() and any(col.value for col in self._cols)
        if closed:
            for row in self._rows:
                row.off()
        return closed

    def _run(self) -> None:
        logger.info("keypad scan started (%d scans to debounce)", self._board.key_debounce_scans)
        failures = 0
        scanning = False
        settled_scans = 0
        while not self._stop.is_set():
            try:
                if not scanning:
                    scanning = self.wait_for_key(IDLE_CHECK_S)
                    settled_scans = 0
                    continue
                if self._stop.wait(self._board.key_scan_interval_s):
                    break
                keys = self.scan_once()
                settled_scans = settled_scans + 1 if self._debouncer.settled else 0
                scanning = settled_scans <= self._board.key_debounce_scans
            except Exception:
                failures += 1
                if failures == 1 or failures % 1000 == 0:
                    logger.exception("keypad scan failed (%d times)", failures)
                self._stop.wait(self._board.key_scan_interval_s)
                continue
            for key in keys:
                self._report(key)
        logger.info("keypad scan stopped")

    def _report(self, key: str) -> None:
        logger.debug("key %s", key)
        callback = self.when_key
        if callback is None:
            return
        try:
            callback(key)
        except Exception:
            logger.exception("keypad callback failed for key %r", key)

    def close(self) -> None:
        """Stop scanning and release the pins."""
        self._stop.set()
        self._edge.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._close_devices()

    def _close_devices(self) -> None:
        for device in (*self._rows, *self._cols):
            device.close()
        self._rows.clear()
        self._cols.clear()
