"""Bitrix24 ``batch``: a burst of calls reaches the fake portal in few requests, inside its limit.

The real adapter, store and outbox pump in this process against the fake portal over HTTPS (a
strict leaky bucket: above ``burst`` it answers 503); no MQTT. Each test queues its calls first, then
lets the pump go, and asserts on what the portal received.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from configschema.values import Secret
from gateway.adapters.bitrix24 import Bitrix24Adapter
from gateway.calls import CallState, CrmRequest
from gateway.config import Bitrix24Config
from gateway.pump import OutboxPump
from gateway.sqlite_store import SqliteStore
from lab.bitrix24.portal import FakePortal, Record
from lab.waiting import wait_until

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BURST, PER_S = 5, 2.0
OUTBOX = "bitrix24"
USERS = range(1, 11)


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[FakePortal]:
    fake = FakePortal(tmp_path / "portal", burst=BURST, drain_per_s=PER_S)
    for user in USERS:
        fake.add_user(user, f"Manager {user}")
    fake.add_contact(42, "ACME GmbH", "+4930999042", 1)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


class Setup:
    def __init__(self, tmp_path: Path, portal: FakePortal, **config: object) -> None:
        self.portal = portal
        self.store = SqliteStore(tmp_path / "state")
        settings = Bitrix24Config(
            enabled=True,
            domain=portal.domain,
            client_id=portal.client_id,
            client_secret=Secret(portal.client_secret),
            oauth_server=portal.url,
            ca_file=portal.ca_file,
            rate_burst=portal.burst,
            rate_per_s=portal.drain_per_s,
            batch_linger_ms=200,
            **config,  # type: ignore[arg-type]
        )
        self.adapter = Bitrix24Adapter(settings, "http://127.0.0.1:1", self.store)
        auth = portal.issue_tokens() | {"application_token": portal.application_token}
        self.store.put(OUTBOX, "auth", json.dumps(auth))
        self.pump = OutboxPump(self.store, self.adapter, min_backoff_s=0.05, max_backoff_s=0.2)

    def queue(self, calls: list[CallState], kinds: tuple[str, ...] = ("register", "finish")) -> None:
        for call in calls:
            self.store.record(call, {OUTBOX: [CrmRequest(kind, call) for kind in kinds]})  # type: ignore[arg-type]

    def run_until_empty(self, timeout: float = 60.0) -> None:
        wait_until(lambda: not self.store.pending(OUTBOX), timeout, "the outbox emptied")

    def stop(self) -> None:
        self.pump.stop()
        self.store.close()


@pytest.fixture
def setup(tmp_path: Path, portal: FakePortal, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(portal.ca_file))  # the adapter sets it; put it back after
    made = Setup(tmp_path, portal)
    try:
        yield made
    finally:
        made.stop()


def missed_calls(count: int, user: int | None = None, prefix: str = "c") -> list[CallState]:
    return [
        CallState(
            f"{prefix}-{n:04d}",
            f"desk-{n}",
            "ended",
            "inbound",
            "pbx",
            f"+49301{n:06d}",
            T0 + timedelta(seconds=n),
            str(user or USERS[n % len(USERS)]),
        ).advanced(ended_at=T0 + timedelta(seconds=n + 5), disposition="missed", sip_code=487)
        for n in range(count)
    ]


def cards(portal: FakePortal) -> dict[str, list[Record]]:
    """Our call id -> the finishes its portal CALL_ID got (successful ones)."""
    portal_ids = {
        str(r.answer["result"]["CALL_ID"]): str(r.params["EXTERNAL_CALL_ID"])
        for r in portal.requests("telephony.externalcall.register", ok=True)
    }
    out: dict[str, list[Record]] = {ours: [] for ours in portal_ids.values()}
    for finish in portal.finishes():
        out.setdefault(portal_ids.get(str(finish.params["CALL_ID"]), "?"), []).append(finish)
    return out


def assert_inside_the_limit(portal: FakePortal) -> None:
    """No 503 from the portal, and no stretch of requests faster than its bucket allows."""
    assert not [r for r in portal.records if r.status == 503]
    times = [r.at for r in portal.http_requests()]
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= BURST + PER_S * (times[j] - first) + 1


def test_a_burst_of_calls_goes_in_few_batches_inside_the_limit_one_card_each(setup: Setup) -> None:
    calls = missed_calls(100)
    setup.queue(calls)
    names: list[str | None] = []
    lookups = [
        threading.Thread(target=lambda: names.append(setup.adapter.caller_name("+4930999042")))
        for _ in range(5)
    ]
    for thread in lookups:
        thread.start()
    setup.pump.start()
    setup.run_until_empty()
    for thread in lookups:
        thread.join(30)

    portal = setup.portal
    commands = 2 * len(calls) + len(lookups)
    http = portal.http_requests()
    assert len(http) <= math.ceil(commands / 50) + 2, [r.method for r in http]
    assert sum(r.method == "batch" for r in http) >= math.ceil(commands / 50) - 1
    assert_inside_the_limit(portal)
    by_call = cards(portal)
    assert sorted(by_call) == sorted(c.call_id for c in calls)
    assert all(len(finishes) == 1 for finishes in by_call.values()), by_call
    assert len(portal.state.calls) == len(calls) == len(portal.state.statistics)
    assert names == ["ACME GmbH"] * len(lookups), "look-ups ride along in a batch"
    first_finish = min(r.at for r in portal.finishes())
    assert all(r.at <= first_finish for r in portal.requests("telephony.externalcall.register")), (
        "pop-ups first"
    )
    assert setup.store.buried(OUTBOX) == []


def test_a_refused_command_is_buried_alone_and_the_rest_of_its_batch_is_done(setup: Setup) -> None:
    good = missed_calls(8)
    stranger = missed_calls(1, user=999, prefix="stranger")  # no such user at the portal: register refused
    gone = [  # a click-to-call whose CALL_ID the portal does not know: its finish is refused
        replace(c, origin="crm", crm={"b24": {"call_id": "externalCall.unknown.1", "user_id": 1}})
        for c in missed_calls(1, prefix="gone")
    ]
    setup.queue(good[:4] + stranger + good[4:])
    setup.queue(gone, kinds=("finish",))
    setup.pump.start()
    setup.run_until_empty()

    buried = sorted(
        (e.request.kind, e.request.call.call_id, e.last_error) for e in setup.store.buried(OUTBOX)
    )
    assert [(kind, call_id) for kind, call_id, _ in buried] == [
        ("finish", "gone-0000"),
        ("finish", "stranger-0000"),
        ("register", "stranger-0000"),
    ]
    assert all("not found" in error for _, _, error in buried), buried
    by_call = cards(setup.portal)
    assert sorted(by_call) == sorted(c.call_id for c in good)
    assert all(len(finishes) == 1 for finishes in by_call.values())
    assert [r for r in setup.portal.http_requests() if r.method == "batch"], "the good ones went in batches"
    assert_inside_the_limit(setup.portal)


def test_a_batch_whose_answer_was_lost_is_retried_without_a_second_card(setup: Setup) -> None:
    calls = missed_calls(20)
    setup.portal.lose_answers = 1  # the registers are made, the answer never arrives
    setup.queue(calls, kinds=("register",))
    setup.pump.start()
    setup.run_until_empty()
    setup.portal.lose_answers = 1  # the finishes are made, the answer never arrives
    setup.queue(calls, kinds=("finish",))
    setup.run_until_empty()

    lost = [r for r in setup.portal.http_requests() if r.status == 502]
    assert [r.method for r in lost] == ["batch", "batch"]
    assert len(setup.portal.state.calls) == len(calls), "a retried register made a second call"
    assert len(setup.portal.state.statistics) == len(calls), "one card per call"
    by_call = cards(setup.portal)
    assert sorted(by_call) == sorted(c.call_id for c in calls)
    assert all(len(finishes) == 1 for finishes in by_call.values())
    assert setup.store.buried(OUTBOX) == []


def test_with_batch_off_every_request_goes_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = FakePortal(tmp_path / "fast", burst=1000, drain_per_s=1000)
    for user in USERS:
        fast.add_user(user, f"Manager {user}")
    fast.start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fast.ca_file))
    alone = Setup(tmp_path, fast, batch=False)
    try:
        calls = missed_calls(6)
        alone.queue(calls)
        alone.pump.start()
        alone.run_until_empty()
        methods = [r.method for r in fast.http_requests()]
        assert methods.count("batch") == 0
        assert len(methods) == 2 * len(calls)
        assert all(len(finishes) == 1 for finishes in cards(fast).values())
    finally:
        alone.stop()
        fast.stop()
