"""The MQTT face: the CRM account on the office broker (MQTT 5, persistent session).

Subscribes to every phone's ``events``, ``status`` and ``reply/+`` in ``on_connect`` (every
connect). With ``share_group`` set, several instances share the events through an MQTT 5 shared
subscription and fail over a dead member's session (``gateway.failover``); replies and status still
reach every instance (the one that sent a command is waiting for its reply).

Messages are acknowledged by hand, only after ``on_event`` has returned, that is after the gateway
has stored what the event changed: a gateway killed in between gets the event again from its
session. Runs on paho's network thread; callbacks must not block on the network.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from crm_bridge.client import new_client, use_tls
from crm_bridge.codec import ContractError, decode_event, decode_reply
from firmware.commands import Reply
from firmware.events import Event

from .config import MqttConfig
from .failover import DOWN, PRESENCE_LEVEL, UP, Peers, rescue_session

logger = logging.getLogger(__name__)

OnEvent = Callable[[str, Event], None]
OnReply = Callable[[str, Reply], None]
OnStatus = Callable[[str, bytes], None]


class PhonesLink:
    """The gateway's one broker connection."""

    def __init__(self, config: MqttConfig, on_event: OnEvent, on_reply: OnReply, on_status: OnStatus) -> None:
        self.config = config
        self._on_event = on_event
        self._on_reply = on_reply
        self._on_status = on_status
        self._prefix = config.topic_prefix.strip("/")
        self._connected = threading.Event()
        self._outage_logged = False
        self.connects = 0
        self.events_received = 0
        self.bad_messages = 0
        self.peers = Peers(config.client_id) if config.share_group else None
        self._client = self._make_client(config.client_id)
        if self.peers is not None:
            self._client.will_set(self._presence_topic(config.client_id), DOWN, qos=1, retain=True)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = c.session_expiry_s
        logger.info(
            "broker %s:%d%s as %s (client id %s, session kept %d s)",
            c.host,
            c.port,
            " (TLS)" if c.tls else "",
            c.username or "-",
            c.client_id,
            c.session_expiry_s,
        )
        self._client.connect_async(
            c.host, c.port, keepalive=c.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()

    def stop(self) -> None:
        if self.peers is not None and self.connected:
            info = self._client.publish(self._presence_topic(self.config.client_id), DOWN, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()

    def _presence_topic(self, client_id: str) -> str:
        return f"{self._prefix}/{PRESENCE_LEVEL}/{client_id}"

    def _rescue(self, dead: str) -> None:
        """Another instance died: drain its session (on a thread of its own, ``rescue-<id>``)."""

        def run() -> None:
            try:
                rescue_session(self.config, dead, self._make_client, self._handle_rescued)
            except Exception:
                logger.exception("could not take over the session of %s", dead)
                return
            self._client.publish(self._presence_topic(dead), b"", qos=1, retain=True)

        threading.Thread(target=run, name=f"rescue-{dead}", daemon=True).start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # --- out -------------------------------------------------------------------------------------

    def command(self, device_id: str, kind: str, payload: bytes, expiry_s: int | None = None) -> None:
        """Publish ``cmd/<kind>`` to a phone (QoS 1; paho queues it while the broker is away)."""
        props = Properties(PacketTypes.PUBLISH)
        if expiry_s is not None:
            props.MessageExpiryInterval = max(1, int(expiry_s))
        self._client.publish(f"{self._prefix}/{device_id}/cmd/{kind}", payload, qos=1, properties=props)

    # --- paho ------------------------------------------------------------------------------------

    def _make_client(self, client_id: str) -> mqtt.Client:
        c = self.config
        client = new_client(client_id, c.username, c.password.reveal(), manual_ack=True)
        if c.tls:
            use_tls(client, c.ca_file, c.client_cert, c.client_key)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = _guard(self._connect)
        client.on_connect_fail = _guard(self._connect_fail)
        client.on_disconnect = _guard(self._disconnect)
        client.on_message = _guard(self._message)
        return client

    def _connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self._outage(f"broker refused the connection: {reason}")
            return
        options = SubscribeOptions(qos=1)
        share = f"$share/{self.config.share_group}/" if self.config.share_group else ""
        topics = [
            (f"{share}{self._prefix}/+/events", options),
            (f"{self._prefix}/+/status", options),
            (f"{self._prefix}/+/reply/+", options),
        ]
        if self.peers is not None:
            topics.append((f"{self._prefix}/{PRESENCE_LEVEL}/+", options))
            client.publish(self._presence_topic(self.config.client_id), UP, qos=1, retain=True)
        client.subscribe(topics)
        self.connects += 1
        self._outage_logged = False
        self._connected.set()
        logger.info("connected to the broker (session present: %s)", bool(flags.session_present))

    def _connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._outage(f"cannot reach broker {self.config.host}:{self.config.port}")

    def _disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._connected.clear()
        self._outage(f"lost the broker connection ({reason})")

    def _outage(self, what: str) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            logger.warning("%s; retrying with backoff up to 30 s", what)

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._handle(message)
        # Not reached when storing failed: the unacknowledged event comes again after a reconnect.
        if message.qos > 0:
            client.ack(message.mid, message.qos)

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        try:
            self._route(message)
        except ContractError as error:
            self.bad_messages += 1
            logger.warning("ignored a message on %s: %s", message.topic, error)

    def _handle_rescued(self, message: mqtt.MQTTMessage) -> None:
        """A message from a dead member's session: its events count, its view of the peers does not."""
        if f"/{PRESENCE_LEVEL}/" not in message.topic:
            self._handle(message)

    def _route(self, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        base = len(self._prefix.split("/"))
        if len(parts) < base + 2:
            return
        device_id, leaf = parts[base], parts[base + 1 :]
        if device_id == PRESENCE_LEVEL:
            if self.peers is not None and len(leaf) == 1 and self.peers.seen(leaf[0], message.payload):
                self._rescue(leaf[0])
        elif leaf == ["events"]:
            event, _seq, sender = decode_event(message.payload)
            if sender != device_id:
                raise ContractError(f"event of {sender!r} on the topic of {device_id!r}")
            self.events_received += 1
            self._on_event(device_id, event)
        elif leaf[0] == "reply" and len(leaf) == 2:
            self._on_reply(device_id, decode_reply(message.payload))
        elif leaf == ["status"]:
            self._on_status(device_id, message.payload)


def _guard(callback: Callable[..., None]) -> Callable[..., None]:
    """An exception in a paho callback would end paho's thread: log it instead."""

    def guarded(*args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            logger.exception("error in MQTT callback %s", callback.__name__)

    return guarded
