"""Runs a CrmBridge in its own process so that tests can SIGKILL it.

Usage: python -m tests.crm_bridge.bridge_process HOST PORT DEVICE OUTBOX
Reads lines from stdin: ``event TYPE`` publishes an event and prints ``seq N``;
``status REGISTERED STATE`` updates the status; EOF stops the bridge. Prints ``ready`` once started.
Commands received are printed as ``command <repr>``.
"""

from __future__ import annotations

import logging
import sys

from crm_bridge import CrmBridge, MqttSettings, PhoneStatus
from firmware.commands import Command
from firmware.events import Event


def main(argv: list[str]) -> int:
    host, port, device, outbox = argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(threadName)s %(name)s %(message)s")
    settings = MqttSettings(
        host=host,
        port=int(port),
        outbox_path=outbox,
        keepalive_s=5,
        reconnect_min_s=1,
        reconnect_max_s=1,
        firmware_version="test",
    )

    def submit(command: Command) -> None:
        print(f"command {command!r}", flush=True)

    bridge = CrmBridge(settings, device, submit, lambda: PhoneStatus(True, "idle", "1001"))
    bridge.start()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["event"]:
                seq = bridge.publish_event(Event(type=words[1]))  # type: ignore[arg-type]
                print(f"seq {seq}", flush=True)
            elif words[:1] == ["status"]:
                bridge.update_status(words[1] == "true", words[2], "1001")
                print("status", flush=True)
    finally:
        bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
