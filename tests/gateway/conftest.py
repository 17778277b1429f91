"""Fixtures of the gateway tests: the fake Bitrix24 portal, the office inventory, the gateway process."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab.bitrix24.portal import FakePortal
from lab.servers.gateway import GatewayProcess, start_gateway
from lab.servers.mosquitto import Mosquitto

OFFICE_CSV = """device_id,extension,name,crm_user
desk-test,1001,Anna,7
desk-acct,1003,Accounts,
desk-recep,1004,Reception,8
"""
ANNA, VERA_WITHOUT_DESK = 7, 9
ACME = ("ACME GmbH", "1002")

GatewayFactory = Callable[..., GatewayProcess]


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[FakePortal]:
    fake = FakePortal(tmp_path / "portal")
    fake.add_user(ANNA, "Anna Schmidt")
    fake.add_user(8, "Rita Reception")
    fake.add_user(VERA_WITHOUT_DESK, "Vera Field")
    fake.add_contact(42, ACME[0], ACME[1], ANNA)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def office_csv(tmp_path: Path) -> Path:
    path = tmp_path / "office.csv"
    path.write_text(OFFICE_CSV)
    return path


@pytest.fixture
def gateway_factory(tmp_path: Path, mosquitto: Mosquitto, office_csv: Path) -> Iterator[GatewayFactory]:
    started: list[GatewayProcess] = []
    counter = itertools.count(1)

    def start(**config: Any) -> GatewayProcess:
        gateway = start_gateway(
            tmp_path / f"gateway-{next(counter)}", mqtt_port=mosquitto.port, inventory=office_csv, **config
        )
        started.append(gateway)
        return gateway

    try:
        yield start
    finally:
        for gateway in started:
            gateway.stop()


@pytest.fixture
def b24_gateway(gateway_factory: GatewayFactory, portal: FakePortal) -> GatewayProcess:
    """A gateway with the local application installed in the fake portal."""
    gateway = gateway_factory(portal=portal)
    answer = portal.install(f"{gateway.url}/bitrix24/install")
    assert answer.status_code == 200, answer.text
    return gateway


def health(gateway: GatewayProcess) -> dict[str, Any]:
    return httpx.get(f"{gateway.url}/healthz", timeout=5).json()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One scratch PostgreSQL for the session (Debian's, via initdb/pg_ctl); tests take a database each."""
    from lab.servers.postgres import Postgres, available

    if not available():
        pytest.skip("postgresql is not installed")
    server = Postgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


_databases = itertools.count(1)


@pytest.fixture
def postgres_dsn(postgres_server: Any) -> str:
    """A fresh, empty database on the session's server."""
    return str(postgres_server.create_database(f"test_{next(_databases)}"))
