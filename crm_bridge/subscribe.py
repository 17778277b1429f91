"""CRM → phone: the command topics, decoded into ``firmware.commands`` and handed to ``submit``.

Runs on the paho network thread. A payload that does not decode is answered right here with an error
reply and never reaches ``submit``; one that does is handed over (the daemon posts it to the core
thread, which sends the reply once it has decided).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from firmware.commands import Command, Dial

from .codec import CommandRejected, decode_command
from .publish import ReplyRoute, ReplyRouter

logger = logging.getLogger(__name__)

_MAX_RESPONSE_TOPIC_LEN = 256


class CommandSubscriber:
    """Subscribes to ``<base>/cmd/+`` and turns each message into a command or an error reply."""

    def __init__(
        self,
        client: mqtt.Client,
        base_topic: str,
        submit: Callable[[Command], None],
        replies: ReplyRouter,
        clock: Callable[[], datetime],
    ) -> None:
        self._client = client
        self._prefix = f"{base_topic}/cmd/"
        self._submit = submit
        self._replies = replies
        self._clock = clock
        self.received = 0
        self.rejected = 0

    @property
    def topic_filter(self) -> str:
        return self._prefix + "+"

    def subscribe(self) -> None:
        """Called on every connect: the broker may have lost the session."""
        props = Properties(PacketTypes.SUBSCRIBE)
        self._client.subscribe(self.topic_filter, options=SubscribeOptions(qos=1), properties=props)

    def on_message(self, message: mqtt.MQTTMessage) -> None:
        received_at = self._clock()
        if not message.topic.startswith(self._prefix):
            return
        kind = message.topic[len(self._prefix) :]
        self.received += 1
        expiry, route = message_properties(message)
        try:
            command = decode_command(kind, message.payload, received_at, expiry)
        except CommandRejected as rejected:
            self.rejected += 1
            logger.info("refused cmd/%s (request %s): %s", kind, rejected.request_id, rejected.code)
            self._replies.send(rejected.to_reply(), route)
            return
        request_id = getattr(command, "request_id", "")
        if route is not None:
            self._replies.remember(request_id, route)
        if isinstance(command, Dial):
            logger.info("cmd/dial request %s, expires %s", request_id, command.expires_at.isoformat())
        else:
            logger.info("cmd/%s request %s", kind, request_id)
        try:
            self._submit(command)
        except Exception:
            logger.exception("submitting cmd/%s request %s failed", kind, request_id)


def message_properties(message: Any) -> tuple[int | None, ReplyRoute | None]:
    """The MQTT 5 message expiry and response route of an incoming message, if it has them."""
    props = getattr(message, "properties", None)
    expiry = getattr(props, "MessageExpiryInterval", None)
    topic = getattr(props, "ResponseTopic", None)
    correlation = getattr(props, "CorrelationData", None)
    route = None
    if (
        isinstance(topic, str)
        and 0 < len(topic) <= _MAX_RESPONSE_TOPIC_LEN
        and not set(topic) & {"+", "#", "\0"}
    ):
        route = ReplyRoute(topic, bytes(correlation) if correlation is not None else None)
    return (int(expiry) if expiry is not None else None), route
