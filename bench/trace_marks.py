"""Time marks inside a phone process, for the bench's tracers (``startup_trace``, ``phone_trace``).

A tracer runs ``deskphone`` as a script from this directory and imports this module by its own name
(``import trace_marks``: the script's directory heads ``sys.path``), so that a variant's tree on
``PYTHONPATH`` (an older checkout, without this file) still gets the checkout's marks. Bench only:
nothing of this is in the phone's own code. It imports nothing the interpreter has not loaded already.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing itself is not loaded yet when the start-up trace begins
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MARKS: list[tuple[float, str]] = []
"""``(time.monotonic(), name)``: comparable with the bench's own clock."""


def mark(name: str) -> None:
    MARKS.append((time.monotonic(), name))  # one append: atomic under the GIL, from any thread


def wrap(owner: Any, attr: str, before: str | None = None, after: str | None = None, *,
         when: Callable[..., bool] | None = None, first_only: bool = False) -> None:  # fmt: skip
    """Mark ``before`` and ``after`` each call of ``owner.attr`` (``{n}`` in a name: the call's number),
    only the calls ``when`` accepts, or only the first; an owner without ``attr`` is left alone."""
    original = getattr(owner, attr, None)
    if original is None:  # a firmware without this hop
        return
    calls = 0

    def traced(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        hit = (when is None or when(*args, **kwargs)) and not (first_only and calls > 1)
        if hit and before:
            mark(before.format(n=calls))
        try:
            return original(*args, **kwargs)
        finally:
            if hit and after:
                mark(after.format(n=calls))

    traced.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(owner, attr, traced)


def run_deskphone(argv: list[str]) -> int:
    from firmware.cli import main as deskphone

    return int(deskphone(argv) or 0)
