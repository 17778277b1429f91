"""Fixtures of the CRM bridge tests: the real mosquitto broker and a CRM-side MQTT client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.servers.mosquitto import Mosquitto
from tests.crm_bridge.crm import CrmClient


@pytest.fixture
def crm(mosquitto: Mosquitto) -> Iterator[CrmClient]:
    client = CrmClient(mosquitto.host, mosquitto.port)
    try:
        yield client
    finally:
        client.close()
