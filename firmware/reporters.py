"""Reporters that need no broker: the log, and the recent events the simulator's socket shows."""

from __future__ import annotations

import collections
import json
import logging
import threading
from typing import Any

from crm_bridge.codec import encode_reply, event_to_dict
from firmware.commands import Reply
from firmware.events import Event

logger = logging.getLogger(__name__)


class LogReporter:
    """One log line per event and per reply, so a phone without a broker still leaves a record."""

    def publish_event(self, event: Event) -> None:
        call = event.call
        if call is None:
            logger.info("event %s %s", event.type, event.data or "")
            return
        logger.info(
            "event %s call=%s %s remote=%s disposition=%s ring_s=%s talk_s=%s",
            event.type, call.call_id, call.direction, call.remote.number, call.disposition,
            call.ring_s, call.talk_s,
        )  # fmt: skip

    def send_reply(self, reply: Reply) -> None:
        logger.info("reply %s", encode_reply(reply).decode())


class RecentEvents:
    """The last events in their MQTT shape, numbered locally; read by other threads as a copy."""

    def __init__(self, device_id: str, keep: int = 200) -> None:
        self._device_id = device_id
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._replies: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._seq = 0

    def publish_event(self, event: Event) -> None:
        with self._lock:
            self._seq += 1
            self._events.append(event_to_dict(event, self._seq, self._device_id))

    def send_reply(self, reply: Reply) -> None:
        with self._lock:
            self._replies.append(json.loads(encode_reply(reply)))

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def replies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._replies)
