"""The broker is killed during a call and comes back: every event of the call arrives, in order."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from lab.servers.mosquitto import Mosquitto

pytestmark = pytest.mark.e2e


class Subscriber:
    """A CRM with a persistent MQTT 5 session: what is published while it is away waits for it."""

    def __init__(self, port: int, topic: str) -> None:
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="fault-crm", protocol=mqtt.MQTTv5
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        with self._cond:
            self.events.append(json.loads(msg.payload))
            self._cond.notify_all()

    def wait_type(self, kind: str, timeout: float) -> dict:
        with self._cond:
            ok = self._cond.wait_for(lambda: any(e["type"] == kind for e in self.events), timeout)
            assert ok, f"no {kind}; got {[e['type'] for e in self.events]}"
            return next(e for e in self.events if e["type"] == kind)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_broker_killed_and_restarted_during_a_call(phone_factory, baresip_factory, kamailio, tmp_path: Path):  # type: ignore[no-untyped-def]
    broker = Mosquitto(tmp_path / "broker")
    # Save sessions every second, so a SIGKILL keeps the CRM's subscription and queue.
    broker.config_path.write_text(
        broker.config_path.read_text().replace("autosave_interval 0", "autosave_interval 1")
    )
    broker.start()
    crm = None
    try:
        far = baresip_factory("1002", auto_answer=False)
        phone = phone_factory(mqtt_port=broker.port, device_id="desk-fault")
        phone.wait_for(lambda s: s["registered"], what="registration")
        crm = Subscriber(broker.port, "deskphone/desk-fault/events")
        time.sleep(0.5)
        far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
        phone.wait_mode("ringing_in")
        phone.client.hook(True)
        far.wait_for_event("CALL_ESTABLISHED", timeout=10)
        crm.wait_type("call.answered", 10)
        time.sleep(1.5)  # let the broker save the session
        broker.kill()
        far.hangup()
        phone.wait_mode("ended")
        phone.client.hook(False)
        phone.wait_mode("idle")
        time.sleep(1.0)
        broker.start()
        ended = crm.wait_type("call.ended", 40)
        crm.wait_type("hook.onhook", 10)
        assert ended["call"]["disposition"] == "answered"
        assert ended["call"]["hangup_by"] == "remote"
        seqs = sorted({e["seq"] for e in crm.events})
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), f"gap in seq: {seqs}"
        state = phone.wait_for(lambda s: s["mqtt"]["outbox_pending"] == 0, what="outbox drained")
        assert state["mqtt"]["connected"] == 1
        assert state["mqtt"]["connects"] >= 2
    finally:
        if crm is not None:
            crm.close()
        broker.stop()
