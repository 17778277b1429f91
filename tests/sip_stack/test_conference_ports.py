"""No conference port outlives its call, however short the call (pjmedia's bridge takes a port out only
on its clock's next tick, and the agent stops that clock when no call has audio)."""

from __future__ import annotations

import threading
import time

import pytest

from lab.waiting import wait_until
from sip_stack.events import CallAnswered, CallEnded, IncomingCall, RegistrationChanged
from tests.sip_stack.conftest import phone_settings

pytestmark = pytest.mark.e2e
pj = pytest.importorskip("pjsua2")

QUICK_CALLS = 12
ADMISSION_SPACING_S = 0.3  # below sip_stack.admission's 4 new calls/s


def conference_ports(ua) -> list[str]:
    """The names of the conference bridge's ports, enumerated on the ``sip`` thread."""
    names: list[str] = []
    done = threading.Event()

    def job() -> None:
        try:
            names.extend(media.getPortInfo().name for media in pj.Endpoint.instance().mediaEnumPorts2())
        finally:
            done.set()

    ua._post(job)
    assert done.wait(10), "the sip thread did not run the job"
    return names


@pytest.mark.parametrize(
    ("routed", "calls"), [(True, QUICK_CALLS), (False, 4)], ids=["routed", "never-routed"]
)
def test_calls_shorter_than_a_media_tick_leave_no_conference_port(
    kamailio, baresip_factory, ua_factory, routed: bool, calls: int
) -> None:
    """Screen-pop cycles: answered (and the audio routed to the call, as the firmware does with the
    handset up; or not, and the media clock never runs for it), hung up by the far end at once."""
    bob = baresip_factory("bob", auto_answer=False)
    ua, rec = ua_factory(phone_settings(kamailio))
    rec.wait_for(RegistrationChanged, lambda e: e.registered)
    idle = conference_ports(ua)
    assert not any(name.startswith("sip:") for name in idle)
    uri = f"sip:phone@{kamailio.host}:{kamailio.port}"
    for n in range(calls):
        time.sleep(ADMISSION_SPACING_S)  # pacing, not waiting for anything
        bob.dial(uri)
        incoming = rec.wait_for(IncomingCall, lambda e, n=n: e.call_id == f"in-{n + 1}")
        ua.answer(incoming.call_id)
        if routed:
            ua.route_audio(incoming.call_id, microphone=True)
        rec.wait_for(CallAnswered, lambda e, c=incoming.call_id: e.call_id == c)
        bob.wait_for_event("CALL_ESTABLISHED")
        bob.hangup()  # a few ms after the answer: the media clock may not have ticked once
        rec.wait_for(CallEnded, lambda e, c=incoming.call_id: e.call_id == c)
        bob.wait_for_event("CALL_CLOSED")
        if routed:
            ua.route_audio(None, microphone=False)
        try:
            wait_until(lambda: conference_ports(ua) == idle, 5, "bridge back to its idle ports", 0.05)
        except TimeoutError:
            pytest.fail(f"call {n + 1}: the bridge holds {conference_ports(ua)}, with no call {idle}")
    # ... and the media clock still stops once nothing has audio.
    wait_until(lambda: not ua.audio.wait_for_media(0), 5, "the media clock's stop", 0.05)
