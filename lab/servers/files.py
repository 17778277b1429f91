"""Files of the lab's servers: secrets written 0600 from the start, logs read back whole."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, created (or truncated) with mode 0600 before any byte is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as out:
        out.write(text)


def read_log(path: Path) -> str:
    """A server's log so far ("" before the server has written one); bad bytes never raise."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
