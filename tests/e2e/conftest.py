"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import sniff
from lab.servers.audio import write_sine_wav
from lab.servers.mosquitto import Mosquitto
from tests.e2e.crm_support import CrmView

RATE = 16000


@pytest.fixture
def mic_wav(tmp_path: Path) -> Path:
    """The phone's microphone: a 1 kHz sine, two minutes long."""
    return write_sine_wav(tmp_path / "mic1k.wav", freq=1000.0, seconds=120.0, rate=RATE, amplitude=0.3)


@pytest.fixture
def sniffer() -> Iterator[sniff.Sniffer]:
    """A loopback sniffer (the phone's RTP as it leaves); skips without root or CAP_NET_RAW."""
    if not sniff.available():
        pytest.skip("a loopback sniffer needs root or CAP_NET_RAW")
    with sniff.Sniffer() as running:
        yield running


@pytest.fixture
def crm(mosquitto: Mosquitto) -> Iterator[CrmView]:
    """The CRM's side of the broker: it sees the phone's topics and sends commands (a test file may
    override it, as test_crm_outages.py does for a persistent session)."""
    view = CrmView(mosquitto)
    try:
        yield view
    finally:
        view.close()
