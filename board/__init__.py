"""Board descriptions: data only, one frozen dataclass per hardware revision. Imports nothing of ours."""

from __future__ import annotations

from board.boards import BOARDS, RPI_V1, SIM
from board.description import BoardDescription
from board.exc import BadBoardError, BoardError, UnknownBoardError

__all__ = [
    "BOARDS",
    "RPI_V1",
    "SIM",
    "BadBoardError",
    "BoardDescription",
    "BoardError",
    "UnknownBoardError",
    "board_names",
    "get_board",
]


def board_names() -> tuple[str, ...]:
    """The names of every known board, sorted."""
    return tuple(sorted(BOARDS))


def get_board(name: str) -> BoardDescription:
    """The board called ``name``; raises :class:`UnknownBoardError` naming the known boards."""
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoardError(f"unknown board {name!r}; known boards: {', '.join(board_names())}") from None
