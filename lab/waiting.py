"""Waiting for a condition that has no event to wait on (a file's content, a pin level, a record)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


def wait_until(
    predicate: Callable[[], _T], timeout: float = 10.0, what: str = "condition", interval: float = 0.02
) -> _T:
    """Poll ``predicate`` every ``interval`` s until it returns something true, and return that.

    Raises ``TimeoutError`` naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(interval)
