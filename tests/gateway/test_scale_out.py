"""Several gateway instances on one mosquitto and one PostgreSQL store, sharing the phones' events
through an MQTT 5 shared subscription: exactly one card (one register, one finish) per call with two
and three instances, also when one of them is SIGKILLed while events it was given wait unacknowledged
in its session (SIGSTOPped first, so that they certainly do): a live instance takes over that session,
and the store's unique keys keep every request single."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.bitrix24.portal import FakePortal
from lab.fleet import SimPhone, call_events
from lab.servers.gateway import GatewayProcess, start_gateway
from lab.servers.mosquitto import Mosquitto
from lab.waiting import wait_until
from tests.gateway.conftest import health
from tests.gateway.support import portal_call_id, register_of

DESKS = [(f"desk-{300 + n}", f"{300 + n}", 20 + n) for n in range(1, 7)]

pytestmark = pytest.mark.e2e


@pytest.fixture
def big_portal(tmp_path: Path) -> Iterator[FakePortal]:
    """A portal whose rate limit stays out of the way: this test is about instances, not the bucket."""
    portal = FakePortal(tmp_path / "portal", burst=1000, drain_per_s=500)
    for _, _, user in DESKS:
        portal.add_user(user, f"Manager {user}")
    portal.start()
    try:
        yield portal
    finally:
        portal.stop()


@pytest.fixture
def phones(mosquitto: Mosquitto) -> Iterator[list[SimPhone]]:
    fleet = [SimPhone(device, mosquitto.port) for device, _, _ in DESKS]
    for phone in fleet:
        phone.start()
    try:
        yield fleet
    finally:
        for phone in fleet:
            phone.stop()


def place_calls(phones: list[SimPhone], count: int, first: int) -> list[str]:
    """``count`` calls spread over the desks, every event acknowledged by the broker; their ids."""
    ids, infos = [], []
    for n in range(first, first + count):
        phone = phones[n % len(phones)]
        answered = n % 3 != 0
        events = call_events(
            f"+4930777{n:04d}",
            "inbound" if n % 2 else "outbound",
            talk_s=12.0 if answered else None,
            call_id=f"scale-{n:03d}",
        )
        ids.append(events[0].call.call_id)  # type: ignore[union-attr]
        infos.extend(phone.publish(event) for event in events)
    for info in infos:
        info.wait_for_publish(20)
    return ids


def cards(portal: FakePortal, call_id: str) -> tuple[int, int]:
    registered = register_of(portal, call_id)
    finished = sum(len(portal.finishes(portal_call_id(r))) for r in registered)
    return len(registered), finished


def all_carded(portal: FakePortal, ids: list[str]) -> bool:
    return all(cards(portal, call_id) == (1, 1) for call_id in ids)


@pytest.mark.parametrize("instances", [2, 3])
def test_one_card_per_call_with_several_instances_and_one_killed(  # type: ignore[no-untyped-def]
    instances: int, tmp_path: Path, mosquitto: Mosquitto, big_portal: FakePortal, phones, postgres_dsn: str
) -> None:
    inventory = tmp_path / "office.csv"
    inventory.write_text("device_id,extension,crm_user\n" + "".join(f"{d},{e},{u}\n" for d, e, u in DESKS))
    gateways: list[GatewayProcess] = []
    try:
        for n in range(1, instances + 1):
            gateways.append(
                start_gateway(
                    tmp_path / f"gw-{n}",
                    mqtt_port=mosquitto.port,
                    inventory=inventory,
                    portal=big_portal,
                    client_id=f"gw-{n}",
                    share_group="crm",
                    postgres_dsn=postgres_dsn,
                )
            )
            if n == 1:  # the tokens land in the shared store: every instance uses them
                answer = big_portal.install(f"{gateways[0].url}/bitrix24/install")
                assert answer.status_code == 200, answer.text

        calm = place_calls(phones, 12, 0)
        wait_until(lambda: all_carded(big_portal, calm), 60, "one card per call with all instances up")
        handled = [health(g)["facts"] for g in gateways]
        assert sum(handled) >= 12 * 3 and all(h > 0 for h in handled), handled  # the work was shared

        victim = gateways[-1]
        assert victim.proc is not None
        os.kill(victim.proc.pid, signal.SIGSTOP)  # it is given events and acknowledges none
        stormy = place_calls(phones, 18, 100)
        victim.kill()  # SIGKILL, with its share of those events unacknowledged in its session
        survivors = gateways[:-1]
        pattern = re.compile(
            rf"took over the session of {victim.workdir.name} \(session present: True\): (\d+) events"
        )

        def rescues() -> list[int]:
            return [int(m.group(1)) for g in survivors for m in pattern.finditer(g.log_text())]

        took_over = wait_until(rescues, 60, "a survivor taking over the killed instance's session")
        assert len(took_over) == 1 and took_over[0] > 0, took_over
        wait_until(lambda: all_carded(big_portal, stormy), 90, "one card per call after the kill")
        for gateway in survivors:
            wait_until(lambda g=gateway: not any(health(g)["pending"].values()), 30, "outboxes empty")
        for call_id in calm + stormy:
            assert cards(big_portal, call_id) == (1, 1), call_id
    finally:
        for gateway in gateways:
            gateway.stop()
