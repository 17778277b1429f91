"""Any CRM: one signed JSON call card per finished call (and, with ``steps``, the ring/answer steps).

``POST <url>`` with ``Content-Type: application/json``, ``X-Deskphone-Signature: sha256=<hex>``
(HMAC-SHA256 of the exact body with the shared secret) and ``Idempotency-Key: <call id>:<step>``:
the same card is sent again, byte for byte, until the receiver answers 2xx, so a receiver that
keeps the keys it has seen never files one twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from crm_bridge.codec import format_time

from ..calls import CallState, CrmRequest
from ..config import WebhookConfig
from ..store import OutboxEntry
from .base import CrmAdapter, Delivered, Outcome, RetryLater

SIGNATURE_HEADER = "X-Deskphone-Signature"
STEP_OF_KIND = {"register": "call.ringing", "answered": "call.answered", "finish": "call.finished"}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def card(request: CrmRequest) -> dict[str, Any]:
    """The JSON of one step of a call (``call.finished`` carries the complete record)."""
    call: CallState = request.call
    return {
        "v": 1,
        "type": STEP_OF_KIND[request.kind],
        "id": f"{call.call_id}:{STEP_OF_KIND[request.kind]}",
        "call": {
            "call_id": call.call_id,
            "desk": call.device_id,
            "extension": call.extension,
            "crm_user": call.crm_user,
            "direction": call.direction,
            "origin": call.origin,
            "remote": {"number": call.remote_number, "name": call.remote_name},
            "crm": call.crm,
            "started_at": format_time(call.started_at),
            "answered_at": format_time(call.answered_at) if call.answered_at else None,
            "ended_at": format_time(call.ended_at) if call.ended_at else None,
            "ring_s": call.ring_s,
            "talk_s": call.talk_s if call.phase == "ended" else None,
            "disposition": call.disposition if call.phase == "ended" else None,
            "sip_code": call.sip_code,
            "reason": call.reason,
            "hangup_by": call.hangup_by,
        },
    }


class WebhookAdapter(CrmAdapter):
    name = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self._client = httpx.Client(timeout=config.timeout_s, follow_redirects=False)

    def wants(self, request: CrmRequest) -> bool:
        return request.kind == "finish" or (self.config.steps and request.kind in ("register", "answered"))

    def deliver_one(self, entry: OutboxEntry) -> Outcome:
        payload = card(entry.request)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.config.secret.reveal(), body),
            "Idempotency-Key": payload["id"],
            "User-Agent": "deskphone-gateway",
        }
        try:
            response = self._client.post(self.config.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return RetryLater(f"cannot reach the webhook ({type(error).__name__})")
        if 200 <= response.status_code < 300:
            return Delivered()
        retry_after = response.headers.get("retry-after", "")
        return RetryLater(
            f"the webhook answered HTTP {response.status_code}",
            float(retry_after) if retry_after.isdigit() else None,
        )

    def close(self) -> None:
        self._client.close()
