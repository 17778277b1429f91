"""The gateway's wiring: store, CRM adapters and their outbox pumps, the broker link, the HTTP face.

Starts in dependency order (store, adapters, pumps, broker, HTTP) and stops in reverse. Events are
handled on paho's thread: fact -> ``step`` -> one store transaction -> pumps woken -> the message
acknowledged. Caller-name look-ups run on the ``caller-lookup`` pool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_bridge.codec import encode_caller
from firmware.commands import Dial, Reply
from firmware.events import Event

from .adapters.base import CrmAdapter
from .calls import CallFact, CallState, CrmRequest, Desk
from .config import Config
from .desks import Desks
from .dialer import Dialer, new_request_id
from .facts import fact_from_event, refused_dial_fact
from .mqtt import PhonesLink
from .pump import OutboxPump
from .step import step
from .store import GatewayStore
from .stores import open_store

logger = logging.getLogger(__name__)

NO_DESK = "no_desk"
LOOKUP_THREADS = 32
LOOKUP_STALE_S = 30.0  # a caller's name found later than this is no use to the ringing phone
TIMEOUT = "timeout"


@dataclass(frozen=True)
class ClickToCall:
    """A CRM asks a desk to call ``number``; ``crm`` is echoed in every event of the call."""

    desk: Desk | None
    number: str
    ttl_s: float
    display: str | None = None
    crm: dict[str, Any] | None = None
    request_id: str = ""
    who: str = ""  # for messages: "Bitrix24 user 7"


class Gateway:
    def __init__(self, config: Config, adapters: list[CrmAdapter] | None = None) -> None:
        self.config = config
        self.desks = Desks.load(config.inventory.file)
        self.store: GatewayStore = open_store(config.storage)
        if adapters is None:
            from .adapters.registry import build_adapters

            adapters = build_adapters(config, self.store)
        self.adapters = adapters
        self.pumps = [
            OutboxPump(
                self.store,
                adapter,
                min_backoff_s=config.outbox.retry_min_s,
                max_backoff_s=config.outbox.retry_max_s,
            )
            for adapter in adapters
        ]
        self.link = PhonesLink(config.mqtt, self.on_event, self._on_reply, self._on_status)
        self.dialer = Dialer(self.link)
        # A Bitrix24 look-up waits for the outbox's next batch: enough threads for a batch's worth.
        self._lookups = ThreadPoolExecutor(max_workers=LOOKUP_THREADS, thread_name_prefix="caller-lookup")
        self._lock = threading.Lock()
        self.http: Any = None
        self.facts_applied = 0

    def start(self) -> None:
        from .http_api import HttpFace

        for pump in self.pumps:
            pump.start()
        self.link.start()
        self.http = HttpFace(self.config.http, self)
        self.http.start()
        logger.info(
            "gateway up: %d desks (%d with a CRM user), CRMs: %s",
            len(self.desks.desks),
            sum(1 for d in self.desks.desks if d.crm_user),
            ", ".join(a.name for a in self.adapters) or "none",
        )

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
        self.link.stop()
        self._lookups.shutdown(wait=False, cancel_futures=True)
        for pump in reversed(self.pumps):
            pump.stop()
        for adapter in reversed(self.adapters):
            adapter.close()
        self.store.close()

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` shows: the broker link, events handled, requests waiting per CRM."""
        return {
            "ok": True,
            "broker": self.link.connected,
            "events": self.link.events_received,
            "facts": self.facts_applied,
            "pending": {a.name: len(self.store.pending(a.name, 10_000)) for a in self.adapters},
            "buried": {a.name: len(self.store.buried(a.name)) for a in self.adapters},
        }

    def adapter(self, name: str) -> CrmAdapter | None:
        return next((a for a in self.adapters if a.name == name), None)

    # --- phones -> CRMs ---------------------------------------------------------------------------

    def on_event(self, device_id: str, event: Event) -> None:
        fact = fact_from_event(event, device_id, self.desks)
        if fact is not None:
            self.apply(fact)

    def apply(self, fact: CallFact) -> None:
        seen: list[CallState | None] = []
        requests: list[CrmRequest] = []

        def change(state: CallState | None) -> tuple[CallState, dict[str, list[CrmRequest]]] | None:
            seen.append(state)
            new, requests[:] = step(state, fact)
            if new is None or new is state:
                return None
            return new, {a.name: [r for r in requests if r.queued and a.wants(r)] for a in self.adapters}

        with self._lock:
            result = self.store.update_call(fact.call.call_id, change)
            self.facts_applied += 1
        if result is None:
            return
        new, state = result[0], seen[-1]
        for pump in self.pumps:
            pump.wake()
        if new.skipped and state is None:
            logger.info("call %s of %s not reported: %s", new.call_id, new.device_id, new.skipped)
        for request in requests:
            if request.kind == "lookup_caller":
                self._lookups.submit(self._show_caller_name, request.call)

    def _show_caller_name(self, call: CallState) -> None:
        if (datetime.now(UTC) - call.started_at).total_seconds() > LOOKUP_STALE_S:
            return  # waited too long behind others (an overload): the call has stopped ringing
        for adapter in self.adapters:
            try:
                name = adapter.caller_name(call.remote_number)
            except Exception:
                logger.exception("%s: caller name look-up failed", adapter.name)
                continue
            if name:
                payload = encode_caller(new_request_id("caller"), call.call_id, call.remote_number, name)
                self.link.command(call.device_id, "caller", payload, expiry_s=60)
                return

    def _on_reply(self, device_id: str, reply: Reply) -> None:
        self.dialer.on_reply(device_id, reply)

    def _on_status(self, device_id: str, payload: bytes) -> None:
        pass

    # --- CRMs -> phones ---------------------------------------------------------------------------

    async def click_to_call(self, click: ClickToCall) -> Reply:
        """Dial from a desk; a refusal (or no desk) finishes the CRM's card so none is left dangling."""
        request_id = click.request_id or new_request_id()
        now = datetime.now(UTC)
        loop = asyncio.get_running_loop()
        if click.desk is None:
            message = f"no desk phone for {click.who or 'that CRM user'} in the inventory"
            fact = refused_dial_fact(request_id, None, click.number, click.crm, now, NO_DESK, message)
            await loop.run_in_executor(None, self.apply, fact)
            return Reply.failure(request_id, NO_DESK, message)
        dial = Dial(
            request_id=request_id,
            number=click.number,
            expires_at=now + timedelta(seconds=click.ttl_s),
            origin="crm",
            display=click.display,
            crm=click.crm,
        )
        future = self.dialer.dial(click.desk.device_id, dial, now)
        try:
            reply = await asyncio.wait_for(asyncio.wrap_future(future), self.config.api.reply_timeout_s)
        except TimeoutError:
            self.dialer.forget(request_id)
            reply = Reply.failure(request_id, TIMEOUT, "the phone did not answer the request in time")
        if reply.ok:
            for adapter in self.adapters:
                await loop.run_in_executor(None, adapter.dial_accepted, click.crm)
        else:
            code, message = reply.error_code or "failed", reply.error_message or ""
            fact = refused_dial_fact(request_id, click.desk, click.number, click.crm, now, code, message)
            await loop.run_in_executor(None, self.apply, fact)
        return reply
