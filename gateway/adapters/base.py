"""The interface between the gateway and one CRM.

A subclass must implement ``deliver_one`` and may override ``deliver`` (to send several requests in
one round trip, such as Bitrix24's ``batch``), ``send_in_s``, ``linger_s``, ``has_queries``,
``caller_name``, ``wants``, ``dial_accepted`` and ``close``.

``deliver`` gets the adapter's waiting requests, pop-ups first, and returns an outcome for each
request it sent (by default only the first; a batching adapter picks several, never two of one call,
so that a call's requests keep their order). Delivery must be idempotent by our call id: a request is
repeated after a timeout or a restart, and the CRM must not make a second card for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..calls import CrmRequest
from ..store import OutboxEntry


@dataclass(frozen=True)
class Delivered:
    """The CRM accepted the request."""


@dataclass(frozen=True)
class RetryLater:
    """Not now (the CRM is down, slow or rate-limits us); ``after_s``: the CRM's own hint, if any."""

    reason: str
    after_s: float | None = None


@dataclass(frozen=True)
class Refused:
    """The CRM will never accept this request (kept aside for a person, never retried)."""

    reason: str


Outcome = Delivered | RetryLater | Refused


class CrmAdapter(ABC):
    """One CRM. ``name`` names its outbox; it must stay the same across restarts."""

    name: str = ""
    # Set by the adapter's outbox pump: wakes it (a look-up waits for the pump's next round trip).
    wake_outbox: Callable[[], None] = staticmethod(lambda: None)

    def wants(self, request: CrmRequest) -> bool:
        """Whether this CRM takes requests of this kind at all (unwanted ones are never queued)."""
        return True

    def deliver(self, entries: list[OutboxEntry]) -> list[tuple[OutboxEntry, Outcome]]:
        """Send waiting requests; by default only the first, one round trip."""
        return [(entries[0], self.deliver_one(entries[0]))] if entries else []

    def send_in_s(self) -> float:
        """How long until the CRM's rate limit lets the next round trip go (0: now)."""
        return 0.0

    def linger_s(self, entries: list[OutboxEntry]) -> float:
        """How long requests like these may wait for others to share their round trip (0: send now)."""
        return 0.0

    def has_queries(self) -> bool:
        """Whether look-ups (``caller_name``) wait for the outbox's next round trip."""
        return False

    @abstractmethod
    def deliver_one(self, entry: OutboxEntry) -> Outcome:
        """Send one request."""

    def dial_accepted(self, crm: dict[str, Any] | None) -> None:  # noqa: B027 - optional hook
        """A phone accepted a click-to-call carrying ``crm`` (its call is now in progress)."""

    def caller_name(self, number: str) -> str | None:
        """The CRM's name for a phone number, or None; called off the outbox, never queued."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters hold nothing to release
        """Release connections."""
