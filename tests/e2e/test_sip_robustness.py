"""Malformed and unusual SIP (the RFC 4475 torture messages) never crash the phone or its registration."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from lab.servers.phone import events_of

pytestmark = pytest.mark.e2e

TORTURE_DIR = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "rfc4475"


def torture_messages() -> list[Path]:
    return sorted(p for p in TORTURE_DIR.glob("*.dat"))


@pytest.mark.skipif(not TORTURE_DIR.is_dir(), reason=f"no RFC 4475 corpus at {TORTURE_DIR}")
def test_every_rfc4475_message_leaves_the_phone_running_and_able_to_call(  # type: ignore[no-untyped-def]
    phone_factory, baresip_factory, kamailio
):
    messages = torture_messages()
    assert len(messages) >= 49
    far = baresip_factory("1002", auto_answer=True)
    phone = phone_factory()
    phone.wait_for(lambda s: s["registered"], what="registration")

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.05)
        for path in messages:
            sock.sendto(path.read_bytes(), ("127.0.0.1", phone.sip_port))
            time.sleep(0.05)
            assert phone.alive(), f"the phone died on {path.name}:\n{phone.log_text()[-3000:]}"
            try:
                while True:
                    sock.recv(65535)  # answers are allowed; we only drain them
            except TimeoutError:
                pass

    # A few torture messages are valid INVITEs from callers that never hang up: the phone rings for
    # them like for any call, and the user picks up and hangs up, as at a real desk.
    deadline = time.monotonic() + 30
    while (state := phone.state())["phone_state"] != "idle":
        assert time.monotonic() < deadline, f"phone stuck in {state['phone_state']}"
        if state["phone_state"] == "ringing_in":
            phone.client.hook(True)
            phone.wait_for(lambda s: s["phone_state"] != "ringing_in", what="answer")
            phone.client.hook(False)
        time.sleep(0.2)
    assert state["registered"] is True
    assert all(e["data"].get("registered") for e in events_of(state, "registration.changed")[-1:])

    phone.call_and_hang_up(far, "1002")
    state = phone.wait_for(
        lambda s: any(e["call"]["remote"]["number"] == "1002" for e in events_of(s, "call.ended")),
        what="call.ended of the call to 1002",
    )
    ours = [e for e in events_of(state, "call.ended") if e["call"]["remote"]["number"] == "1002"]
    assert [e["call"]["disposition"] for e in ours] == ["answered"]
    assert phone.alive()
