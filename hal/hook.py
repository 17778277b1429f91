"""The hook switch on a gpiozero Button."""

from __future__ import annotations

import logging
from collections.abc import Callable

from gpiozero import Button
from gpiozero.pins import Factory

from board import BoardDescription

logger = logging.getLogger(__name__)


class GpioHookSwitch:
    """Hook switch on ``board.hook_pin``; ``when_changed(True)`` when lifted, ``(False)`` when replaced.

    The callback runs in gpiozero's callback thread (or the caller's, on mock pins); it should only post.
    """

    def __init__(self, board: BoardDescription, pin_factory: Factory) -> None:
        self.when_changed: Callable[[bool], None] | None = None
        self._button = Button(
            board.hook_pin,
            pull_up=board.hook_active_low,
            bounce_time=board.hook_bounce_s,
            pin_factory=pin_factory,
        )
        self._button.when_pressed = lambda: self._report(True)
        self._button.when_released = lambda: self._report(False)

    @property
    def is_off_hook(self) -> bool:
        return bool(self._button.is_pressed)

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
        self._button.close()
