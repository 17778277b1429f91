"""A webhook CRM for the lab: a real HTTP server that checks each card's HMAC-SHA256 signature and
records what it accepted. ``stop()``/``start()`` on the same port; ``fail_next`` answers 500."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lab.servers.asgi import ThreadedServer
from lab.servers.ports import LOOPBACK, free_port


@dataclass(frozen=True)
class Delivery:
    at: float
    key: str
    status: int
    card: dict[str, Any] | None


class WebhookReceiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}/deskphone/calls"
        self.deliveries: list[Delivery] = []
        self.fail_next = 0
        self._lock = threading.Lock()
        self._server: ThreadedServer | None = None
        self.app = Starlette(routes=[Route("/deskphone/calls", self._receive, methods=["POST"])])

    def accepted(self) -> list[dict[str, Any]]:
        """Cards answered 2xx, in arrival order."""
        with self._lock:
            return [d.card for d in self.deliveries if d.status == 200 and d.card is not None]

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        given = request.headers.get("x-deskphone-signature", "")
        key = request.headers.get("idempotency-key", "")
        if not hmac.compare_digest(expected, given):
            return self._answer(key, 401, None)
        with self._lock:
            failing = self.fail_next > 0
            self.fail_next -= 1 if failing else 0
        if failing:
            return self._answer(key, 500, None)
        return self._answer(key, 200, json.loads(body))

    def _answer(self, key: str, status: int, card: dict[str, Any] | None) -> Response:
        with self._lock:
            self.deliveries.append(Delivery(time.time(), key, status, card))
        return JSONResponse({"ok": status == 200}, status_code=status)

    def start(self, timeout: float = 10.0) -> None:
        self._server = ThreadedServer(self.app, self.port, "webhook-crm")
        self._server.start(timeout)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None
