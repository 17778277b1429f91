"""The interface between the gateway and one CRM.

A subclass must implement ``deliver_one`` and may override ``deliver`` (to send several requests in
one round trip, such as Bitrix24's ``batch``), ``caller_name``, ``wants``, ``dial_accepted`` and
``close``.

``deliver`` gets the adapter's waiting requests, oldest first, and returns outcomes for a prefix of
them, in the same order. Delivery must be idempotent by our call id: a request is repeated after a
timeout or a restart, and the CRM must not make a second card for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
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

    def wants(self, request: CrmRequest) -> bool:
        """Whether this CRM takes requests of this kind at all (unwanted ones are never queued)."""
        return True

    def deliver(self, entries: list[OutboxEntry]) -> list[Outcome]:
        """Send waiting requests; by default only the first, one round trip."""
        return [self.deliver_one(entries[0])] if entries else []

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
