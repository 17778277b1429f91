"""``python -m bench.crm_latency [-n 100]``: how fast the CRM hears from the phone (issue 3).

Two figures, each over ``n`` tries, on 127.0.0.1 with a real kamailio, mosquitto, baresip far end and
the ``deskphone run`` daemon on the sim board:

- click-to-call: from publishing ``cmd/dial`` to the CRM subscriber receiving
  ``click_to_call.alerting`` (and, for comparison, the ``accepted`` reply and the sim board's state
  turning ``alerting``, polled every 2 ms on the control socket). Each try is withdrawn with
  ``cmd/cancel`` and the phone is back to idle before the next.
- incoming: from sending baresip 1002 its ``dial`` command (it INVITEs 1001 through kamailio) to the
  CRM subscriber receiving ``call.incoming``. baresip hangs up before the next try.

Prints median and 99th percentile (and min/max) in ms and writes ``bench/results/crm_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from crm_bridge.client import no_delay
from lab.servers.audio import write_sine_wav
from lab.servers.baresip import Baresip
from lab.servers.kamailio import Kamailio
from lab.servers.mosquitto import Mosquitto
from lab.servers.phone import PHONE_PASSWORD, PHONE_USER, PhoneProcess, phone_config_text
from lab.servers.ports import free_port

RESULTS = Path(__file__).parent / "results" / "crm_latency.json"
DEVICE = "bench-crm"
BASE = f"deskphone/{DEVICE}"


class Subscriber:
    """The CRM: a paho MQTT 5 client that stamps every message with its arrival time (monotonic)."""

    def __init__(self, host: str, port: int) -> None:
        self._cond = threading.Condition()
        self.messages: list[tuple[float, str, dict[str, Any]]] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-crm-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        self._client.on_message = self._on_message
        self._client.on_socket_open = no_delay  # so that our cmd/dial leaves at once
        connected = threading.Event()
        self._client.on_connect = lambda *a: connected.set()
        self._client.connect(host, port, keepalive=30)
        self._client.loop_start()
        if not connected.wait(5):
            raise RuntimeError("bench CRM could not connect")
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.subscribe(f"{BASE}/#", qos=1)
        if not subscribed.wait(5):
            raise RuntimeError("no SUBACK")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        arrived = time.monotonic()
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = {}
        with self._cond:
            self.messages.append((arrived, msg.topic, payload))
            self._cond.notify_all()

    def publish(self, kind: str, payload: dict[str, Any]) -> float:
        """Publish ``cmd/<kind>``; the monotonic time just before it was handed to paho."""
        data = json.dumps(payload).encode()
        sent = time.monotonic()
        self._client.publish(f"{BASE}/cmd/{kind}", data, qos=1)
        return sent

    def wait(self, predicate: Callable[[str, dict[str, Any]], bool], timeout: float = 10.0) -> float:
        """Arrival time of the first message (from any time) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for arrived, topic, payload in self.messages:
                    if predicate(topic, payload):
                        return arrived
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the expected message did not arrive")
                self._cond.wait(left)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def event_is(event_type: str, where: Callable[[dict[str, Any]], bool] = lambda e: True) -> Any:
    return lambda topic, p: topic == f"{BASE}/events" and p.get("type") == event_type and where(p)


def summary(samples_ms: list[float]) -> dict[str, Any]:
    a = np.array(samples_ms)
    return {
        "n": len(samples_ms),
        "median_ms": round(float(np.median(a)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "min_ms": round(float(a.min()), 2),
        "max_ms": round(float(a.max()), 2),
        "mean_ms": round(float(a.mean()), 2),
        "samples_ms": [round(x, 3) for x in samples_ms],
    }


def wait_phone(
    phone: PhoneProcess, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> float:
    """Poll the control socket every 2 ms; the time the predicate first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(phone.state()):
            return time.monotonic()
        time.sleep(0.002)
    raise TimeoutError("phone state not reached")


def measure_click_to_call(crm: Subscriber, phone: PhoneProcess, n: int) -> dict[str, list[float]]:
    alerting, reply, sim = [], [], []
    for i in range(n):
        crm.clear()
        rid = f"bench-{i}-{uuid.uuid4().hex[:6]}"
        of_this = _request(rid)
        sent = crm.publish("dial", {"v": 1, "id": rid, "number": "1002", "ttl_s": 30})
        at_sim = wait_phone(phone, lambda s: s["phone_state"] == "alerting")
        at_event = crm.wait(event_is("click_to_call.alerting", of_this))
        at_reply = crm.wait(_topic(f"{BASE}/reply/{rid}"))
        alerting.append((at_event - sent) * 1000)
        reply.append((at_reply - sent) * 1000)
        sim.append((at_sim - sent) * 1000)
        crm.publish("cancel", {"v": 1, "id": rid})
        crm.wait(event_is("click_to_call.cancelled", of_this))
        wait_phone(phone, lambda s: s["phone_state"] == "idle")
    return {"alerting_event": alerting, "accepted_reply": reply, "sim_alerting": sim}


def _request(request_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["data"].get("request_id") == request_id


def _topic(wanted: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda topic, payload: topic == wanted


def measure_incoming(crm: Subscriber, phone: PhoneProcess, far: Baresip, target: str, n: int) -> list[float]:
    incoming = []
    for _ in range(n):
        crm.clear()
        sent = time.monotonic()
        far.dial(target)
        at_event = crm.wait(event_is("call.incoming"))
        incoming.append((at_event - sent) * 1000)
        wait_phone(phone, lambda s: s["phone_state"] == "ringing_in")
        far.hangup()
        crm.wait(event_is("call.ended"))
        far.wait_for_event("CALL_CLOSED", timeout=10)
        wait_phone(phone, lambda s: s["phone_state"] == "idle")
    return incoming


def run(n: int, workdir: Path, broker_nodelay: bool) -> dict[str, Any]:
    kamailio = Kamailio(workdir / "kamailio")
    broker = Mosquitto(workdir / "mosquitto")
    if broker_nodelay:
        broker.config_path.write_text(broker.config_path.read_text() + "set_tcp_nodelay true\n")
    kamailio.start()
    broker.start()
    far: Baresip | None = None
    phone: PhoneProcess | None = None
    crm: Subscriber | None = None
    try:
        kamailio.add_user("1002", "pw")
        kamailio.add_user(PHONE_USER, PHONE_PASSWORD)
        wav = write_sine_wav(workdir / "tone.wav", freq=440.0, seconds=5.0, rate=16000, amplitude=0.3)
        far = Baresip(
            workdir / "baresip-1002",
            user="1002",
            password="pw",
            registrar=f"{kamailio.host}:{kamailio.port}",
            auto_answer=False,
            source_wav=wav,
        )
        far.start()
        phone_dir = workdir / "phone"
        text = phone_config_text(
            phone_dir,
            f"{kamailio.host}:{kamailio.port}",
            sip_port := free_port(),
            device_id=DEVICE,
            mqtt_port=broker.port,
        ).replace('level = "DEBUG"', 'level = "INFO"')
        phone = PhoneProcess(phone_dir, text, sip_port)
        phone.start()
        phone.wait_for(lambda s: s["registered"] and s["mqtt"]["connected"], 15, "registration")
        crm = Subscriber(broker.host, broker.port)

        # One untimed warm-up of each path (first-use imports, SQLite pages, codec set-up).
        measure_click_to_call(crm, phone, 1)
        measure_incoming(crm, phone, far, f"sip:1001@{kamailio.host}:{kamailio.port}", 1)

        c2c = measure_click_to_call(crm, phone, n)
        incoming = measure_incoming(crm, phone, far, f"sip:1001@{kamailio.host}:{kamailio.port}", n)
        return {
            "broker": "mosquitto, set_tcp_nodelay true" if broker_nodelay else "mosquitto, default config",
            "cmd_dial_to_click_to_call_alerting": summary(c2c["alerting_event"]),
            "cmd_dial_to_accepted_reply": summary(c2c["accepted_reply"]),
            "cmd_dial_to_sim_alerting": summary(c2c["sim_alerting"]),
            "far_end_dial_to_call_incoming": summary(incoming),
        }
    finally:
        if crm is not None:
            crm.close()
        if phone is not None:
            phone.stop()
        if far is not None:
            far.stop()
        broker.stop()
        kamailio.stop()


FIGURES = (
    ("cmd_dial_to_click_to_call_alerting", "cmd/dial -> click_to_call.alerting"),
    ("cmd_dial_to_accepted_reply", "cmd/dial -> accepted reply"),
    ("cmd_dial_to_sim_alerting", "cmd/dial -> sim state alerting"),
    ("far_end_dial_to_call_incoming", "far-end dial (INVITE) -> call.incoming"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="tries per figure (default 100)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {
        "what": "CRM latency on 127.0.0.1: kamailio, mosquitto, baresip far end, deskphone on the sim board",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    for name, nodelay in (("mosquitto_default", False), ("mosquitto_tcp_nodelay", True)):
        with tempfile.TemporaryDirectory(prefix="crm-latency-") as tmp:
            results[name] = run(args.n, Path(tmp), broker_nodelay=nodelay)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for name in ("mosquitto_default", "mosquitto_tcp_nodelay"):
        print(f"\n{results[name]['broker']}")
        print(f"{'figure':40} {'n':>4} {'median ms':>10} {'p99 ms':>8} {'min':>7} {'max':>7}")
        for key, label in FIGURES:
            s = results[name][key]
            figures = f"{s['median_ms']:>10.1f} {s['p99_ms']:>8.1f} {s['min_ms']:>7.1f} {s['max_ms']:>7.1f}"
            print(f"{label:40} {s['n']:>4} {figures}")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
