"""``deskphone sim console``: a line-based console to play with the simulated phone."""

from __future__ import annotations

import sys
from typing import Any, Protocol

HELP = """commands:
  u            lift the handset (off hook)
  d            replace the handset (on hook)
  1002#        press keys (0-9 * #)
  s            show the phone's state
  q            quit"""


class Client(Protocol):
    def hook(self, up: bool) -> None: ...
    def keys(self, keys: str) -> None: ...
    def state(self) -> dict[str, Any]: ...


def summary(state: dict[str, Any]) -> str:
    leds = state.get("leds", {})
    return (
        f"[{state.get('phone_state', '?')}] hook={state.get('hook', '?')} "
        f"registered={state.get('registered', '?')} line={leds.get('line', '?')} "
        f"message={leds.get('message', '?')} ringer={state.get('ringer') or 'off'} "
        f"display={state.get('display', '')!r}"
    )


def run_console(client: Client) -> int:
    print(HELP)
    print(summary(client.state()))
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            print(summary(client.state()))
            continue
        if line == "q":
            break
        try:
            if line == "u":
                client.hook(True)
            elif line == "d":
                client.hook(False)
            elif line == "s":
                pass
            elif set(line) <= set("0123456789*#"):
                client.keys(line)
            else:
                print(HELP)
                continue
        except ValueError as exc:
            print(f"error: {exc}")
            continue
        print(summary(client.state()))
    return 0
