"""Exceptions of the hal package: one line each, and each also subclasses the builtin that fits."""


class HalError(Exception):
    """Base class of every HAL error."""


class BadModeError(HalError, ValueError):
    """An indicator mode or ringer pattern that does not exist."""


class UnknownKeyError(HalError, KeyError):
    """A key that the board's keypad does not have."""


class PanelError(HalError, RuntimeError):
    """The simulated panel cannot be wired onto these pins."""


class PanelTimeoutError(HalError, TimeoutError):
    """The keypad did not scan a simulated key press in time (is the keypad started?)."""


class AsoundrcError(HalError, ValueError):
    """A sound file that the simulated PCMs cannot use."""
