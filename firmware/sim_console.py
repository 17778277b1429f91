"""``deskphone sim console``: a line-based console to play with the simulated phone.

The state line is redrawn whenever the phone changes (a call rings in, a LED turns on, the display
changes), as it happens: a second connection watches the phone (the ``sim-watch`` thread of this
console process) while the first one carries the typed commands.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Protocol

HELP = """commands:
  u            lift the handset (off hook)
  d            replace the handset (on hook)
  f            hook flash: hold the call / back to the held call
  1002#        press keys (0-9 * #)
  s            show the phone's state
  q            quit"""


class Client(Protocol):
    def hook(self, up: bool) -> None: ...
    def flash(self) -> None: ...
    def keys(self, keys: str) -> None: ...
    def state(self) -> dict[str, Any]: ...


class Watcher(Protocol):
    def watch(self, since: int, timeout: float = 30.0) -> dict[str, Any]: ...


def summary(state: dict[str, Any]) -> str:
    leds = state.get("leds", {})
    line = (
        f"[{state.get('phone_state', '?')}] hook={state.get('hook', '?')} "
        f"registered={state.get('registered', '?')} line={leds.get('line', '?')} "
        f"message={leds.get('message', '?')} ringer={state.get('ringer') or 'off'} "
        f"display={state.get('display', '')!r}"
    )
    call, transfer = state.get("call"), state.get("transfer")
    if call:
        line += f" call={call.get('remote')}"
    if transfer:
        line += f" transfer={transfer.get('remote')}"
    if state.get("held"):
        line += f" held={state['held'].get('remote')}"
    if state.get("waiting"):
        line += f" waiting={state['waiting'].get('remote')}"
    if state.get("dnd"):
        line += " dnd=on"
    forward = state.get("forward") or {}
    forwards = [f"{mode}>{forward[mode]}" for mode in ("always", "busy", "no_answer") if forward.get(mode)]
    if forwards:
        line += f" forward={','.join(forwards)}"
    return line


class _Printer:
    """Prints state lines from both threads, each line once, never two at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = ""

    def state(self, state: dict[str, Any], again: bool = False) -> None:
        line = summary(state)
        with self._lock:
            if again or line != self._last:
                self._last = line
                print(line, flush=True)

    def text(self, text: str) -> None:
        with self._lock:
            print(text, flush=True)


def follow(watcher: Watcher, on_state: Any, version: int, stop: threading.Event) -> None:
    """Hand every new state to ``on_state`` until ``stop`` is set or the connection goes."""
    while not stop.is_set():
        try:
            state = watcher.watch(since=version, timeout=10.0)
        except (OSError, ValueError):
            return
        version = state.get("version", version)
        if not stop.is_set():
            on_state(state)


def run_console(client: Client, watcher: Watcher | None = None) -> int:
    printer = _Printer()
    printer.text(HELP)
    state = client.state()
    printer.state(state)
    stop = threading.Event()
    if watcher is not None:
        threading.Thread(
            target=follow,
            args=(watcher, printer.state, state.get("version", 0), stop),
            name="sim-watch",
            daemon=True,
        ).start()
    try:
        for raw in sys.stdin:
            line = raw.strip()
            if line == "q":
                break
            try:
                if line == "u":
                    client.hook(True)
                elif line == "d":
                    client.hook(False)
                elif line == "f":
                    client.flash()
                elif line in ("s", ""):
                    printer.state(client.state(), again=True)
                elif set(line) <= set("0123456789*#"):
                    client.keys(line)
                else:
                    printer.text(HELP)
                    continue
            except ValueError as exc:
                printer.text(f"error: {exc}")
                continue
            if watcher is None:
                printer.state(client.state())
    finally:
        stop.set()
    return 0
