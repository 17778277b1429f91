"""The hook switch on a gpiozero DigitalInputDevice.

Not a ``Button``: its hold thread (gpiozero's ``HoldThread``) wakes ten times a second for ever to
look for a hold, which a hook switch never reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gpiozero import DigitalInputDevice
from gpiozero.pins import Factory

from board import BoardDescription

logger = logging.getLogger(__name__)


class GpioHookSwitch:
    """Hook switch on ``board.hook_pin``; ``when_changed(True)`` when lifted, ``(False)`` when replaced.

    The callback runs in gpiozero's callback thread (or the caller's, on mock pins); it should only post.
    """

    def __init__(self, board: BoardDescription, pin_factory: Factory) -> None:
        self.when_changed: Callable[[bool], None] | None = None
        self._switch = DigitalInputDevice(
            board.hook_pin,
            pull_up=board.hook_active_low,
            bounce_time=board.hook_bounce_s,
            pin_factory=pin_factory,
        )
        self._switch.when_activated = lambda: self._report(True)
        self._switch.when_deactivated = lambda: self._report(False)

    @property
    def is_off_hook(self) -> bool:
        return bool(self._switch.is_active)

    def _report(self, off_hook: bool) -> None:
        logger.info("handset %s", "lifted" if off_hook else "replaced")
        callback = self.when_changed
        if callback is None:
            return
        try:
            callback(off_hook)
        except Exception:
            logger.exception("hook callback failed")

    def close(self) -> None:
        self._switch.close()
