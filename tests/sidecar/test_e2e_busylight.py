"""End to end: phone daemon (sim board) -> real mosquitto -> Node.js host (mqtt.js, logged in as the
sidecar's read-only account) -> the sidecar's logic in MicroPython (WebAssembly) -> LED driver in JS.

An incoming call from baresip makes the light blink, lifting the handset turns it red, the end of the
call green, and SIGKILL of the phone (its last will) off. Every colour change must happen within
100 ms of the MQTT message reaching the host (measured in the host, around the VM call).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lab.servers.phone import PHONE_USER

from .broker_setup import office_broker
from .conftest import HOST, NODE_DIR

pytestmark = pytest.mark.e2e

OFF, GREEN, AMBER, RED = [0, 0, 0], [0, 255, 0], [255, 120, 0], [255, 0, 0]
BOUND_MS = 100.0


class LightHost:
    """``node host.mjs live``: JSON lines in ``lines`` as they come."""

    def __init__(self, node: str, config: dict[str, Any], url: str, user: str, password: str) -> None:
        env = {**os.environ, "MQTT_URL": url, "MQTT_USERNAME": user, "MQTT_PASSWORD": password}
        self.proc = subprocess.Popen(
            [node, str(HOST), "live", json.dumps(config)],
            cwd=NODE_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(json.loads(line))
                self.cond.notify_all()

    def wait(self, pred: Callable[[dict[str, Any]], bool], what: str, timeout: float = 15) -> dict[str, Any]:
        with self.cond:
            found: list[dict[str, Any]] = []

            def check() -> bool:
                found[:] = [x for x in self.lines if pred(x)]
                return bool(found)

            if not self.cond.wait_for(check, timeout):
                stderr = ""
                if self.proc.poll() is not None and self.proc.stderr:
                    stderr = self.proc.stderr.read()
                raise AssertionError(f"light: no {what} in {timeout}s; lines: {self.lines[-15:]} {stderr}")
            return found[0]

    def close(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        done = self.wait(lambda x: "done" in x, "done line", 10)
        self.proc.wait(10)
        return done


def changed_to(colour: list[int], after: int = 0) -> Callable[[dict[str, Any]], bool]:
    """A message (number > after) that changed pixel 0 to ``colour``."""
    return lambda x: x.get("message", 0) > after and x["changed"] and x["pixels"][0] == colour


@pytest.fixture
def office(tmp_path: Path):  # type: ignore[no-untyped-def]
    broker, passwords, _ = office_broker(
        tmp_path,
        "device_id,extension\ndesk-test,1001\ndesk-other,1003\n",
        "sidecar_id,phones\nbusylight-test,desk-test desk-other\n",
    )
    try:
        yield broker, passwords
    finally:
        broker.stop()


def test_incoming_call_blinks_then_red_then_green_then_off_on_the_will(
    node, office, phone_factory, baresip_factory, kamailio, tmp_path
):  # type: ignore[no-untyped-def]
    broker, passwords = office
    far = baresip_factory("1002", auto_answer=False)
    workdir = tmp_path / "phone"
    workdir.mkdir()
    (workdir / "secrets.toml").write_text(
        f'[mqtt]\nusername = "desk-test"\npassword = "{passwords["desk-test"]}"\n'
    )  # the phone's own broker account, as flash.py installs it
    phone = phone_factory(mqtt_port=broker.port, workdir=workdir)
    phone.wait_for(lambda s: s["registered"], what="registration")

    config = {"phones": ["desk-test", "desk-other"], "blink_ms": 200, "client_id": "busylight-test"}
    light = LightHost(
        node, config, f"mqtt://127.0.0.1:{broker.port}", "busylight-test", passwords["busylight-test"]
    )
    try:
        ready = light.wait(lambda x: "ready" in x, "subscription")
        assert ready["ready"] and all(q == 1 for _, q in ready["granted"]), ready
        idle = light.wait(changed_to(GREEN), "green for the retained idle, registered status")
        assert idle["pixels"][1] == OFF  # desk-other has never been online

        far.dial(f"sip:{PHONE_USER}@{kamailio.host}:{kamailio.port}")
        ringing = light.wait(changed_to(AMBER, idle["message"]), "ringing")
        assert ringing["type"] in ("call.incoming", "ringing")
        # blinking: the tick turns it dark, then bright again
        dark = light.wait(lambda x: x.get("cause") == "tick" and x["frame"][0] == OFF, "dark half of a blink")
        light.wait(lambda x: x.get("t", 0) > dark["t"] and x.get("frame", [0])[0] == AMBER, "blink back on")

        phone.client.hook(True)
        in_call = light.wait(changed_to(RED, ringing["message"]), "red after lifting the handset")
        assert in_call["type"] in ("hook.offhook", "call.answered", "busy")
        far.wait_for_event("CALL_ESTABLISHED", timeout=10)

        phone.client.hook(False)
        ended = light.wait(changed_to(GREEN, in_call["message"]), "green after the call")
        assert ended["type"] in ("call.ended", "hook.onhook", "idle")

        phone.kill()  # SIGKILL: only the broker's last will can tell
        gone = light.wait(changed_to(OFF, ended["message"]), "off on the last will")
        assert gone["type"] == "offline"
    finally:
        done = light.close()

    messages = [x for x in light.lines if "message" in x]
    changes = [x for x in messages if x["changed"]]
    latencies = [x["latency_ms"] for x in changes]
    assert all(x["latency_ms"] is not None for x in changes)
    # phone's event time (same machine clock) to the LED: broker and outbox included, reported only
    end_to_end = [
        x["wall"] - datetime.fromisoformat(x["stamp"].replace("Z", "+00:00")).timestamp() * 1000
        for x in changes
        if x["stamp"] and x["type"] not in ("idle",) and x["message"] > idle["message"]
    ]
    print(
        f"\nbusy light: {len(messages)} messages, {len(changes)} colour changes; MQTT message -> LED: "
        f"max {max(latencies):.2f} ms, mean {sum(latencies) / len(latencies):.2f} ms; "
        f"phone event ts -> message at the host: max {max(end_to_end):.1f} ms"
    )
    assert max(latencies) < BOUND_MS, latencies
    counters = done["counters"]
    assert counters["errors"] == 0 and counters["malformed"] == 0 and counters["foreign"] == 0, counters
    assert counters["received"] == len(messages)
    print([(x["type"], x["changed"], round(x["latency_ms"] or 0, 2)) for x in messages])
