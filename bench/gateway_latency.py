"""``python -m bench.gateway_latency [-n 100]``: how fast a CRM hears of a call through the gateway.

Everything real on 127.0.0.1: kamailio, baresip 1002 as the far end, mosquitto, the ``deskphone run``
daemon on the sim board, the ``deskphone-gateway`` process, the fake Bitrix24 portal (HTTPS) and a
webhook CRM (both in this process, stamping what they receive with ``time.time()``).

- screen pop, Bitrix24: from sending baresip its ``dial`` command (it INVITEs 1001 through kamailio)
  to the portal receiving ``telephony.externalCall.register``; the webhook likewise (its
  ``call.ringing`` card). The portal runs with Enterprise limits (250 burst, 5/s) so that the
  figure is the path, not the rate limit; every call is a missed one (baresip hangs up).
- click-to-call: from the portal posting ``ONEXTERNALCALLSTART`` to the phone's
  ``click_to_call.alerting`` (its event ``ts``), each withdrawn with ``cmd/cancel`` afterwards.

Prints median / p99 / max in ms and writes ``bench/results/gateway_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lab.bitrix24.portal import FakePortal
from lab.servers.audio import write_sine_wav
from lab.servers.baresip import Baresip
from lab.servers.gateway import WEBHOOK_SECRET, start_gateway
from lab.servers.kamailio import Kamailio
from lab.servers.mosquitto import Mosquitto
from lab.servers.phone import PHONE_PASSWORD, PHONE_USER, PhoneProcess, events_of, phone_config_text
from lab.servers.ports import free_port
from lab.servers.webhook import WebhookReceiver
from lab.waiting import wait_until

RESULTS = Path(__file__).parent / "results" / "gateway_latency.json"
DEVICE = "bench-gw"
WARM_UP = 2


def _figures(samples_s: list[float]) -> dict[str, Any]:
    ms = np.array(samples_s) * 1000
    return {
        "samples_ms": [round(float(x), 1) for x in ms],
        "n": len(ms),
        "median_ms": round(float(np.median(ms)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "min_ms": round(float(ms.min()), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="incoming calls")
    parser.add_argument("--clicks", type=int, default=30, help="click-to-calls")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        results = run(Path(tmp), args.n, args.clicks)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for name, figures in results["figures"].items():
        print(f"{name:<40} median {figures['median_ms']:7.1f} ms   p99 {figures['p99_ms']:7.1f} ms"
              f"   max {figures['max_ms']:7.1f} ms   (n={figures['n']})")  # fmt: skip
    return 0


def run(tmp: Path, n: int, clicks: int) -> dict[str, Any]:
    started: list[Any] = []
    try:
        kamailio = Kamailio(tmp / "kamailio", users={PHONE_USER: PHONE_PASSWORD, "1002": "far-pw"})
        kamailio.start()
        started.append(kamailio)
        registrar = f"{kamailio.host}:{kamailio.port}"
        tone = write_sine_wav(tmp / "tone.wav", freq=440.0, seconds=30.0, rate=16000)
        far = Baresip(tmp / "far", user="1002", password="far-pw", registrar=registrar, auto_answer=False,
                      source_wav=tone)  # fmt: skip
        far.start()
        started.append(far)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        started.append(broker)
        sip_port = free_port()
        phone = PhoneProcess(
            tmp / "phone",
            phone_config_text(
                tmp / "phone", registrar, sip_port, device_id=DEVICE, mqtt_port=broker.port, log_level="INFO"
            ),
            sip_port,
        )
        phone.start()
        started.append(phone)
        phone.wait_for(lambda s: s["registered"] and s["mqtt"] and s["mqtt"]["connected"], 20, "phone ready")

        portal = FakePortal(tmp / "portal", burst=250, drain_per_s=5.0)
        portal.add_user(7, "Anna")
        portal.add_contact(42, "ACME GmbH", "1002", 7)
        portal.start()
        started.append(portal)
        receiver = WebhookReceiver(WEBHOOK_SECRET)
        receiver.start()
        started.append(receiver)
        inventory = tmp / "office.csv"
        inventory.write_text(f"device_id,extension,name,crm_user\n{DEVICE},{PHONE_USER},Anna,7\n")
        gateway = start_gateway(
            tmp / "gateway", mqtt_port=broker.port, inventory=inventory, portal=portal,
            webhook_url=receiver.url, webhook_steps=True, log_level="INFO",
            bitrix24_extra="rate_burst = 250\nrate_per_s = 5\n",
        )  # fmt: skip
        started.append(gateway)
        answer = portal.install(f"{gateway.url}/bitrix24/install")
        if answer.status_code != 200:
            raise RuntimeError(f"install refused: {answer.text}")

        b24_pop, hook_pop = [], []
        uri = f"sip:{PHONE_USER}@{registrar}"
        for i in range(n + WARM_UP):
            regs_before = len(portal.requests("telephony.externalcall.register", ok=True))
            cards_before = len(receiver.deliveries)
            t0 = time.time()
            far.dial(uri)
            reg = wait_until(
                lambda k=regs_before: portal.requests("telephony.externalcall.register", ok=True)[k:],
                10,
                "register",
            )
            card = wait_until(lambda k=cards_before: receiver.deliveries[k:], 10, "ring card")
            if i >= WARM_UP:  # the first calls pay for lazy imports, TLS and SQLite set-up
                b24_pop.append(reg[0].at - t0)
                hook_pop.append(card[0].at - t0)
            phone.wait_mode("ringing_in", 10)
            far.hangup()
            phone.wait_mode("idle", 10)
            wait_until(lambda k=i: len(portal.finishes()) >= k + 1, 15, "finish")

        click_alert = []
        commander = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        commander.connect(broker.host, broker.port)
        commander.loop_start()
        for nth in range(1, clicks + 1):
            t0 = time.time()
            portal.click_to_call(7, "1002", entity_id=42)
            state = phone.wait_for(
                lambda s, k=nth: len(events_of(s, "click_to_call.alerting")) >= k, 10, "alerting"
            )
            alerting = events_of(state, "click_to_call.alerting")[nth - 1]
            at = datetime.fromisoformat(alerting["ts"].replace("Z", "+00:00")).timestamp()
            click_alert.append(at - t0)
            request_id = alerting["data"]["request_id"]
            commander.publish(f"deskphone/{DEVICE}/cmd/cancel", json.dumps({"v": 1, "id": request_id}), qos=1)
            phone.wait_mode("idle", 10)
        commander.loop_stop()
        commander.disconnect()
        return {
            "figures": {
                "screen pop: INVITE -> Bitrix24 register": _figures(b24_pop),
                "screen pop: INVITE -> webhook ring card": _figures(hook_pop),
                "click-to-call: ONEXTERNALCALLSTART -> alerting": _figures(click_alert),
            },
            "notes": "loopback; fake portal with Enterprise limits; incoming calls missed, clicks cancelled",
        }
    finally:
        for server in reversed(started):
            try:
                server.stop()
            except Exception as error:  # keep stopping the rest
                print(f"stopping {type(server).__name__}: {error}")


if __name__ == "__main__":
    raise SystemExit(main())
