"""Waiting on the gateway and the portal (conditions with generous timeouts, never fixed sleeps)."""

from __future__ import annotations

from typing import Any

from lab.bitrix24.portal import FakePortal, Record
from lab.servers.gateway import GatewayProcess
from lab.waiting import wait_until
from tests.gateway.conftest import health


def settled(gateway: GatewayProcess, facts_at_least: int, timeout: float = 30.0) -> dict[str, Any]:
    """The gateway has handled ``facts_at_least`` call facts and every outbox is empty."""

    def done() -> dict[str, Any] | None:
        h = health(gateway)
        ok = h["facts"] >= facts_at_least and not any(h["pending"].values())
        return h if ok else None

    return wait_until(
        done, timeout, f"gateway settled after {facts_at_least} facts ({gateway.log_text()[-1500:]})"
    )


def registers(portal: FakePortal, number: str | None = None) -> list[Record]:
    return [
        r
        for r in portal.requests("telephony.externalcall.register", ok=True)
        if number is None or r.params.get("PHONE_NUMBER") == number
    ]


def register_of(portal: FakePortal, our_call_id: str) -> list[Record]:
    return [r for r in registers(portal) if r.params.get("EXTERNAL_CALL_ID") == our_call_id]


def portal_call_id(record: Record) -> str:
    return str(record.answer["result"]["CALL_ID"])
