"""The ``outbox-<adapter>`` thread: hands one adapter's waiting requests to its CRM, in order.

Pop-ups (``register``) go before everything else that waits, since a card that shows late is the
known complaint; a call's own requests keep their order (its register is always older than its
finish). A request leaves the outbox only once the CRM has accepted it. While the CRM is down or
rate-limits us, what was sent is retried with backoff (up to ``max_backoff_s``), so nothing
overtakes it; the outage is logged once, not once per retry.

A batching adapter (Bitrix24) coalesces: the pump reads the outbox only when the CRM's rate limit
lets the next round trip go (``send_in_s``), so whatever queued meanwhile shares it, and requests
that are not pop-ups may wait ``linger_s`` for company first.
"""

from __future__ import annotations

import logging
import threading
import time

from .adapters.base import CrmAdapter, Delivered, Refused, RetryLater
from .store import GatewayStore, OutboxEntry

logger = logging.getLogger(__name__)

LOOK_AHEAD = 1000  # waiting requests read at a time: the pop-ups among them go first


def delivery_order(entries: list[OutboxEntry]) -> list[OutboxEntry]:
    """Registers (pop-ups) first, then the rest, each group in ``seq`` order."""
    return sorted(entries, key=lambda e: (e.request.kind != "register", e.seq))


class OutboxPump:
    def __init__(
        self,
        store: GatewayStore,
        adapter: CrmAdapter,
        *,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.store = store
        self.adapter = adapter
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"outbox-{adapter.name}", daemon=True)
        adapter.wake_outbox = self.wake
        self._backoff = 0.0
        self._outage_since: float | None = None
        self._lingering_since: float | None = None
        self.delivered = 0
        self.refused = 0
        self.retries = 0

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self._once()
            except Exception:
                logger.exception("%s: outbox pump failed; retrying", self.adapter.name)
                worked = False
                self._pause(self.max_backoff_s)
            if not worked:
                self._wake.wait(self.store.idle_poll_s)
                self._wake.clear()

    def _once(self) -> bool:
        """Deliver what waits; False when the outbox is empty."""
        wait = self.adapter.send_in_s()
        if wait > 0:  # the rate limit: what queues meanwhile goes in the next round trip
            self._stop.wait(min(wait, 1.0))
            return True
        entries = delivery_order(self.store.pending(self.adapter.name, LOOK_AHEAD))
        if not entries and not self.adapter.has_queries():
            self._lingering_since = None
            return False
        linger = self.adapter.linger_s(entries)
        if linger > 0:
            now = time.monotonic()
            self._lingering_since = self._lingering_since or now
            left = self._lingering_since + linger - now
            if left > 0:
                self._wake.wait(left)
                self._wake.clear()
                return True
        self._lingering_since = None
        try:
            outcomes = self.adapter.deliver(entries)
        except Exception as error:  # an adapter bug or an unexpected library error: never lose the entry
            logger.exception(
                "%s: delivering seq %d raised", self.adapter.name, entries[0].seq if entries else -1
            )
            outcomes = [(entries[0], RetryLater(f"{type(error).__name__} in the adapter"))] if entries else []
        retry: RetryLater | None = None
        delivered: list[int] = []
        deferred: list[tuple[int, str]] = []
        buried: list[tuple[int, str]] = []
        for entry, outcome in outcomes:
            if isinstance(outcome, Delivered):
                delivered.append(entry.seq)
            elif isinstance(outcome, Refused):
                buried.append((entry.seq, outcome.reason))
                logger.error(
                    "%s refused %s of call %s for good: %s",
                    self.adapter.name,
                    entry.request.kind,
                    entry.request.call.call_id,
                    outcome.reason,
                )
            else:
                deferred.append((entry.seq, outcome.reason))
                retry = outcome
        self.store.settle(self.adapter.name, delivered, deferred, buried)  # one commit per round trip
        self.delivered += len(delivered)
        self.refused += len(buried)
        self.retries += len(deferred)
        if delivered:
            self._recovered()
        if retry is not None:
            self._outage(retry.reason)
            self._pause(retry.after_s)
        return True

    def _pause(self, hint_s: float | None) -> None:
        self._backoff = min(self.max_backoff_s, max(self.min_backoff_s, self._backoff * 2))
        self._stop.wait(hint_s if hint_s is not None else self._backoff)

    def _outage(self, reason: str) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            logger.warning(
                "%s: CRM not accepting requests (%s); retrying with backoff", self.adapter.name, reason
            )
        else:
            logger.debug("%s: still failing: %s", self.adapter.name, reason)

    def _recovered(self) -> None:
        self._backoff = 0.0
        if self._outage_since is not None:
            logger.info(
                "%s: CRM accepts requests again after %.1f s",
                self.adapter.name,
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None
