"""``python -m bench.broker_tls [--quick]``: how long a phone takes to get onto the broker, plain and TLS.

Against the lab's mosquitto on 127.0.0.1, one listener per mode: plain MQTT, TLS (the phone checks the
broker's certificate of a test CA) and TLS with a client certificate (``require_certificate``, the CN
as user name). Each sample is one paho MQTT 5 client with the phone's settings, timed from
``connect()`` (TCP, TLS handshake, CONNECT) to its CONNACK. Prints median, p99 and spread in ms.
"""

from __future__ import annotations

import argparse
import ssl
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lab.servers.certs import CertFiles, TestCa
from lab.servers.mosquitto import BrokerTls, Mosquitto


def connect_ms(port: int, trust: Path | None, client: CertFiles | None) -> float:
    connected = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-desk", protocol=mqtt.MQTTv5)
    if trust is not None:
        c.tls_set(
            ca_certs=str(trust),
            certfile=str(client.cert) if client else None,
            keyfile=str(client.key) if client else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    c.on_connect = lambda *args: connected.set()
    started = time.perf_counter()
    c.connect("127.0.0.1", port, keepalive=30)  # TCP and the TLS handshake, in this thread
    c.loop_start()  # after connect: a running loop would notice the new socket only after its 1 s select
    if not connected.wait(10):
        raise RuntimeError(f"no CONNACK from port {port}")
    elapsed = (time.perf_counter() - started) * 1000
    c.disconnect()
    c.loop_stop()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 samples per mode instead of 100")
    n = 10 if parser.parse_args().quick else 100
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        root = Path(tmp)
        ca = TestCa(root / "ca")
        server = ca.issue_server("broker")
        phone = ca.issue_client("phone", "bench-desk")
        brokers = {
            "plain": (Mosquitto(root / "plain"), None, None),
            "TLS": (Mosquitto(root / "tls", tls=BrokerTls(server.cert, server.key)), ca.cert_path, None),
            "TLS + client certificate": (
                Mosquitto(root / "mtls", tls=BrokerTls(server.cert, server.key, ca.cert_path, True)),
                ca.cert_path,
                phone,
            ),
        }
        print(f"connect -> CONNACK on 127.0.0.1, ms (n = {n} per mode)")
        print("| mode | median | p99 | spread |\n|---|---:|---:|---:|")
        for name, (broker, trust, client) in brokers.items():
            broker.start()
            try:
                samples = np.asarray([connect_ms(broker.port, trust, client) for _ in range(n)])
            finally:
                broker.stop()
            p25, p50, p75, p99 = np.percentile(samples, [25, 50, 75, 99])
            print(f"| {name} | {p50:.2f} | {p99:.2f} | {p75 - p25:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
