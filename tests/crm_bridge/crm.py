"""A CRM as the tests see it: a paho MQTT 5 client that records what arrives and publishes commands."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from lab.servers.certs import CertFiles


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None

    @property
    def json(self) -> Any:
        return json.loads(self.payload)


class CrmClient:
    """Connects at once; ``persistent`` keeps a broker session so it gets what arrived while away;
    ``tls`` connects with that client certificate, trusting its CA."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str | None = None,
        persistent: bool = False,
        tls: CertFiles | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._cond = threading.Condition()
        self.messages: list[Received] = []
        self._subscriptions: list[str] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"crm-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if tls is not None:
            self._client.tls_set(ca_certs=str(tls.ca), certfile=str(tls.cert), keyfile=str(tls.key))
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._connected = threading.Event()
        self._client.reconnect_delay_set(0.1, 0.5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600 if persistent else 0
        self._client.connect(host, port, keepalive=10, clean_start=not persistent, properties=props)
        self._client.loop_start()
        assert self._connected.wait(5), "CRM client could not connect"

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        correlation = getattr(props, "CorrelationData", None)
        with self._cond:
            self.messages.append(Received(msg.topic, msg.payload, bool(msg.retain), correlation))
            self._cond.notify_all()

    def subscribe(self, topic: str) -> None:
        self._subscriptions.append(topic)
        done = threading.Event()
        self._client.on_subscribe = lambda *args: done.set()
        self._client.subscribe(topic, qos=1)
        assert done.wait(5), f"no SUBACK for {topic}"

    def publish(
        self,
        topic: str,
        payload: Any,
        *,
        expiry_s: int | None = None,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        retain: bool = False,
    ) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if expiry_s is not None:
            props.MessageExpiryInterval = expiry_s
        if response_topic is not None:
            props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = self._client.publish(topic, data, qos=1, retain=retain, properties=props)
        info.wait_for_publish(5)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload) for m in self.messages]
                    raise AssertionError(f"timed out; received: {seen}")
                self._cond.wait(left)
            return list(self.messages)

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_on(self, topic: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        self.wait_for(lambda msgs: sum(m.topic == topic for m in msgs) >= count, timeout)
        return self.on(topic)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
