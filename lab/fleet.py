"""Simulated phones: MQTT clients that speak the phone's contract (``crm_bridge.codec``, the code that
defines it) and publish realistic call event streams, with no SIP behind them.

Each phone has its own connection (client id = device id), a retained ``status`` and its own event
``seq``, as a real phone does; ``call_events`` is the stream a desk call produces
(``call.incoming``/``call.outgoing``, ``call.ringing``, ``call.answered``, ``call.ended``).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from crm_bridge.codec import encode_event
from firmware.events import CallRecord, Event, Remote

LOOPBACK = "127.0.0.1"


def call_events(
    number: str,
    direction: str = "inbound",
    ring_s: float = 4.0,
    talk_s: float | None = 30.0,
    started: datetime | None = None,
    call_id: str | None = None,
) -> list[Event]:
    """The events of one call as a phone publishes them; ``talk_s`` None: never answered."""
    started = started or datetime.now(UTC)
    record = CallRecord(
        call_id=call_id or str(uuid.uuid4()),
        direction=direction,  # type: ignore[arg-type]
        origin="pbx" if direction == "inbound" else "manual",
        remote=Remote(number),
        started_at=started,
    )
    first = "call.incoming" if direction == "inbound" else "call.outgoing"
    events = [Event(first, ts=started, call=record)]  # type: ignore[arg-type]
    if direction == "outbound":
        events.append(Event("call.ringing", ts=started + timedelta(seconds=0.2), call=record))
    at = started + timedelta(seconds=ring_s)
    if talk_s is not None:
        record = replace(record, answered_at=at)
        events.append(Event("call.answered", ts=at, call=record))
        at += timedelta(seconds=talk_s)
        ended = replace(record, ended_at=at, disposition="answered", sip_code=200, hangup_by="remote")
    else:
        missed = "missed" if direction == "inbound" else "no_answer"
        ended = replace(record, ended_at=at, disposition=missed, sip_code=487 if missed == "missed" else 408)
    events.append(Event("call.ended", ts=at, call=ended))
    return events


class SimPhone:
    """One phone's MQTT connection; ``publish`` hands an event to the broker (QoS 1)."""

    def __init__(self, device_id: str, port: int, prefix: str = "deskphone", host: str = LOOPBACK) -> None:
        self.device_id = device_id
        self._base = f"{prefix}/{device_id}"
        self._seq = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda *a: self._connected.set()
        self._address = (host, port)

    def start(self, timeout: float | None = 20.0) -> None:
        """Connect; with ``timeout`` None, return at once (``wait_connected`` waits)."""
        self.client.connect_async(*self._address, keepalive=60)
        self.client.loop_start()
        if timeout is not None:
            self.wait_connected(timeout)

    def wait_connected(self, timeout: float) -> None:
        if not self._connected.wait(timeout):
            raise RuntimeError(f"{self.device_id}: no connection to the broker")

    def publish(self, event: Event) -> mqtt.MQTTMessageInfo:
        with self._lock:
            self._seq += 1
            payload = encode_event(event, self._seq, self.device_id)
        return self.client.publish(f"{self._base}/events", payload, qos=1)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def serve(port: int, devices: list[str]) -> None:
    """A fleet worker: connects ``devices``, prints ``ready``, then places the calls read from stdin
    (JSON lines ``{"device": ..., "call_id": ..., "number": ...}``) until stdin closes.

    One process holds a few hundred phones at most: paho waits on its sockets with ``select``, which
    cannot watch descriptors past 1024, and each connection takes three."""
    import json
    import sys

    phones: dict[str, SimPhone] = {}
    for first in range(0, len(devices), 50):  # all at once time out in paho's connect on 2 cores
        chunk = [SimPhone(device, port) for device in devices[first : first + 50]]
        for phone in chunk:
            phone.start(timeout=None)
        for phone in chunk:
            phone.wait_connected(60)
            phones[phone.device_id] = phone
    print("ready", flush=True)
    for line in sys.stdin:
        order = json.loads(line)
        for event in call_events(order["number"], talk_s=order.get("talk_s", 20.0), call_id=order["call_id"]):
            phones[order["device"]].publish(event)
    for phone in phones.values():
        phone.stop()


if __name__ == "__main__":
    import sys

    serve(int(sys.argv[1]), sys.argv[2].split(","))
