"""Click-to-call towards the phones: publish ``cmd/dial``, hand back the phone's one reply.

Both HTTP faces (Bitrix24's ``ONEXTERNALCALLSTART`` and ``POST /v1/calls``) end here with the same
``firmware.commands.Dial``. The reply arrives on paho's thread and completes a
``concurrent.futures.Future``; nothing waits on another thread.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future
from datetime import datetime

from crm_bridge.codec import encode_dial
from firmware.commands import Dial, Reply

from .mqtt import PhonesLink

logger = logging.getLogger(__name__)


def new_request_id(prefix: str = "gw") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class Dialer:
    def __init__(self, link: PhonesLink) -> None:
        self._link = link
        self._lock = threading.Lock()
        self._waiting: dict[str, Future[Reply]] = {}

    def dial(self, device_id: str, dial: Dial, now: datetime) -> Future[Reply]:
        """Publish ``cmd/dial`` to ``device_id``; the future completes with the phone's reply."""
        future: Future[Reply] = Future()
        with self._lock:
            self._waiting[dial.request_id] = future
        ttl = max(1.0, (dial.expires_at - now).total_seconds())
        payload = encode_dial(
            dial.request_id, dial.number, ttl_s=round(ttl, 3), display=dial.display, crm=dial.crm
        )
        # The MQTT 5 expiry bounds the wait at the broker too: a phone back after the TTL never dials.
        self._link.command(device_id, "dial", payload, expiry_s=int(ttl))
        logger.info("cmd/dial %s to %s", dial.request_id, device_id)
        return future

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._waiting.pop(request_id, None)

    def on_reply(self, device_id: str, reply: Reply) -> None:
        with self._lock:
            future = self._waiting.pop(reply.request_id, None)
        if future is not None and not future.done():
            future.set_result(reply)
