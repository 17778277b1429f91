"""kamailio restarts during a call: the call goes on, the phone registers again and takes calls."""

from __future__ import annotations

import time

import numpy as np
import pytest

import lab.servers.kamailio as kamailio_module
from lab.servers.audio import dominant_frequency

pytestmark = pytest.mark.e2e

RATE = 16000


@pytest.fixture(autouse=True)
def short_registrations(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registrar grants 15 s registrations, so a lost binding is renewed within the test."""
    monkeypatch.setattr(
        kamailio_module,
        "_CONFIG",
        kamailio_module._CONFIG.replace('"max_expires", 3600', '"max_expires", 15'),
    )


def _earpiece_tail(phone, seconds: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    start = phone.earpiece_path.stat().st_size
    deadline = time.monotonic() + 10
    while phone.earpiece_path.stat().st_size < start + int(seconds * RATE) * 2:
        assert time.monotonic() < deadline, "earpiece stream stalled"
        time.sleep(0.05)
    raw = phone.earpiece_path.read_bytes()[start:]
    return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")


def test_registrar_restarted_during_a_call(phone_factory, baresip_factory, kamailio):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)  # plays 440 Hz
    phone = phone_factory()
    phone.wait_for(lambda s: s["registered"], what="registration")
    phone.client.hook(True)
    phone.wait_mode("dialing")
    phone.client.keys("1002#")
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    phone.wait_mode("in_call")

    kamailio.stop()
    time.sleep(1.0)
    kamailio.start()  # same port, empty location table

    time.sleep(2.0)
    assert phone.state()["phone_state"] == "in_call"
    tail = _earpiece_tail(phone, 1.0)
    assert abs(dominant_frequency(tail, RATE) - 440.0) < 15, "audio stopped after the registrar restart"

    # The phone renews its binding (granted 15 s) at the new kamailio ...
    deadline = time.monotonic() + 30
    register_line = f"from 127.0.0.1:{phone.sip_port} "
    # kamailio's log file starts afresh with the restart
    while not any("REQ REGISTER" in ln and register_line in ln for ln in kamailio.log_text().splitlines()):
        assert time.monotonic() < deadline, "the phone did not register again"
        time.sleep(0.2)
    # ... the call still ends normally through it ...
    phone.client.hook(False)
    far.wait_for_event("CALL_CLOSED", timeout=10)
    ended = phone.wait_event("call.ended")
    assert ended["call"]["disposition"] == "answered"
    # ... and the phone is reachable again.
    far.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    phone.wait_mode("ringing_in", timeout=10)
    far.hangup()
    phone.wait_mode("idle")
