"""The gateway's storage: one small interface, so that another database can stand in for SQLite.

It holds three things, and ``record`` writes the first two in one transaction:

- the state of every call (``CallState``, which is also the call record kept for statistics);
- one durable outbox per CRM adapter: ``CrmRequest``s in ``seq`` order, appended before they are
  sent and deleted only once the CRM has accepted them (``pending``/``delete``/``defer``/``bury``);
- small values an adapter keeps (the CRM's id for one of our calls, OAuth tokens): ``get``/``put``.

Implementations must be safe to call from several threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .calls import CallState, CrmRequest


@dataclass(frozen=True)
class OutboxEntry:
    """A request waiting for one adapter; ``attempts`` counts the tries that did not succeed."""

    adapter: str
    seq: int
    request: CrmRequest
    attempts: int = 0
    last_error: str = ""


Outboxes = Mapping[str, Sequence[CrmRequest]]
# What a call's change computes from its stored state: the new state and the adapters' requests, or
# None when nothing changes.
CallChange = Callable[[CallState | None], tuple[CallState, Outboxes] | None]


class GatewayStore(ABC):
    """What the gateway keeps. Subclasses implement every abstract method and may override
    ``update_call`` (the default is right for one gateway process, which serialises its own calls)."""

    # How often an idle outbox pump looks for requests it was not woken for (queued by another instance).
    idle_poll_s: float = 5.0

    def update_call(self, call_id: str, change: CallChange) -> tuple[CallState, Outboxes] | None:
        """Load the call, let ``change`` compute its next state and requests, and save them.

        A store shared by several gateway instances does all three in one transaction that no other
        instance can interleave for the same call, so one event handled by two instances (or two events
        of one call handled at once) never queues a request twice."""
        result = change(self.load_call(call_id))
        if result is not None:
            self.record(*result)
        return result

    @abstractmethod
    def load_call(self, call_id: str) -> CallState | None:
        """The call's state, or None if the gateway has never seen it."""

    @abstractmethod
    def record(self, state: CallState, outboxes: Mapping[str, Sequence[CrmRequest]]) -> None:
        """Save ``state`` and append each adapter's requests to its outbox, in one transaction."""

    @abstractmethod
    def pending(self, adapter: str, limit: int = 50) -> list[OutboxEntry]:
        """The adapter's waiting requests, oldest first."""

    @abstractmethod
    def delete(self, adapter: str, seq: int) -> None:
        """The CRM accepted the request: forget it."""

    @abstractmethod
    def defer(self, adapter: str, seq: int, error: str) -> None:
        """A try failed and will be repeated: count it and keep why (never a secret)."""

    @abstractmethod
    def bury(self, adapter: str, seq: int, error: str) -> None:
        """The CRM refused the request for good: move it out of the outbox, kept for a person to see."""

    def settle(
        self,
        adapter: str,
        delivered: Sequence[int] = (),
        deferred: Sequence[tuple[int, str]] = (),
        buried: Sequence[tuple[int, str]] = (),
    ) -> None:
        """The outcomes of one round trip (a batch): ``delete``, ``defer`` and ``bury`` at once. A
        store with transactions does them in one, rather than one commit (and fsync) per request."""
        for seq in delivered:
            self.delete(adapter, seq)
        for seq, error in deferred:
            self.defer(adapter, seq, error)
        for seq, error in buried:
            self.bury(adapter, seq, error)

    def put_many(self, scope: str, values: Mapping[str, str]) -> None:
        """``put`` of several values (in one transaction where the store has them)."""
        for key, value in values.items():
            self.put(scope, key, value)

    @abstractmethod
    def buried(self, adapter: str) -> list[OutboxEntry]:
        """Requests the CRM refused for good."""

    @abstractmethod
    def get(self, scope: str, key: str) -> str | None:
        """A value an adapter stored under ``scope``/``key``."""

    @abstractmethod
    def put(self, scope: str, key: str, value: str) -> None:
        """Store (or replace) a value of an adapter."""

    @abstractmethod
    def calls(self, since: datetime | None = None, until: datetime | None = None) -> list[CallState]:
        """Call records whose start lies in ``[since, until)``, oldest first."""

    @abstractmethod
    def close(self) -> None:
        """Release the database."""
