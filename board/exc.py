"""Exceptions of the board package: one line each, and each also subclasses the builtin that fits."""


class BoardError(Exception):
    """Base class of every board error."""


class UnknownBoardError(BoardError, LookupError):
    """No board of that name is known."""


class BadBoardError(BoardError, ValueError):
    """A board description is inconsistent (a pin used twice, a keymap that does not fit, ...)."""
