"""Fixtures of the CRM bridge tests: the real mosquitto broker and a CRM-side MQTT client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.crm_bridge.crm import CrmClient
from tests.servers.mosquitto import Mosquitto, mosquitto  # noqa: F401 - the fixture is used by name


@pytest.fixture
def crm(mosquitto: Mosquitto) -> Iterator[CrmClient]:  # noqa: F811
    client = CrmClient(mosquitto.host, mosquitto.port)
    try:
        yield client
    finally:
        client.close()
