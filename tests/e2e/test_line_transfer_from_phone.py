"""Transfer from the phone: hold the caller with a hook flash, dial the third party, hang up. Blind
(the third party still rings: a REFER to its number) and attended (it answered: REFER with Replaces),
with baresip as the held party and the third party; the CRM records say who went where."""

from __future__ import annotations

import pytest

from lab.servers.phone import events_of
from tests.e2e.line_support import dial_from_handset

pytestmark = pytest.mark.e2e

WIDE_FLASH = "[line]\nhook_flash_min_s = 0.05\nhook_flash_max_s = 2.5\n"


def hold_1002_and_dial_1003(phone, caller):  # type: ignore[no-untyped-def]
    phone.wait_for(lambda s: s["registered"], what="registration")
    held_id = dial_from_handset(phone, caller)
    phone.client.flash(0.3)
    phone.wait_for(lambda s: s["held"] and s["phone_state"] == "dialing", what="the call held")
    phone.client.keys("1003#")
    return held_id


def ended_records(phone, held_id):  # type: ignore[no-untyped-def]
    phone.wait_mode("idle")  # the hang-up waits out the flash window
    state = phone.wait_for(lambda s: len(events_of(s, "call.ended")) == 2, what="both calls' records")
    ended = {e["call"]["call_id"]: e["call"] for e in events_of(state, "call.ended")}
    held = ended.pop(held_id)
    (other,) = ended.values()
    return state, held, other


def test_blind_transfer_while_the_third_party_rings(phone_factory, baresip_factory):  # type: ignore[no-untyped-def]
    caller = baresip_factory("1002", auto_answer=True)
    third = baresip_factory("1003", auto_answer=False)
    phone = phone_factory(extra=WIDE_FLASH)
    held_id = hold_1002_and_dial_1003(phone, caller)
    third.wait_for_event("CALL_INCOMING", timeout=10)
    phone.wait_for(lambda s: s["phone_state"] == "outgoing", what="the third party ringing")

    phone.client.hook(False)
    state, held, other = ended_records(phone, held_id)
    assert state["phone_state"] == "idle" and state["held"] is None
    assert held["transferred_to"]["remote"]["number"] == "1003" and held["hangup_by"] == "local"
    assert other["disposition"] == "cancelled" and other["transferred_from"]["call_id"] == held_id

    # the held party calls the third party itself: a second incoming call there, from 1002
    third.wait_for_event("CALL_CLOSED", timeout=10)  # our own call to it, cancelled
    from_caller = third.wait_for_event("CALL_INCOMING", timeout=15)
    assert "1002" in str(from_caller), from_caller
    third.accept()
    third.wait_for_event("CALL_ESTABLISHED", timeout=10)
    assert phone.wait_for(lambda s: not s["sip"]["calls"], what="the phone's calls gone", timeout=20)
    assert phone.alive()


def test_attended_transfer_after_the_third_party_answered(phone_factory, baresip_factory):  # type: ignore[no-untyped-def]
    caller = baresip_factory("1002", auto_answer=True, via_registrar=True)
    third = baresip_factory("1003", auto_answer=True)
    phone = phone_factory(extra=WIDE_FLASH)
    held_id = hold_1002_and_dial_1003(phone, caller)
    third.wait_for_event("CALL_ESTABLISHED", timeout=10)
    phone.wait_mode("in_call")

    phone.client.hook(False)
    _, held, other = ended_records(phone, held_id)
    assert held["transferred_to"] == {"call_id": other["call_id"], "remote": {"number": "1003", "name": None}}
    assert other["transferred_from"]["call_id"] == held_id and other["disposition"] == "answered"
    # the held party's INVITE with Replaces reaches the third party, who is now in a call with it
    established = third.wait_for_event("CALL_ESTABLISHED", timeout=15)
    assert "1002" in str(established), established
    assert phone.wait_for(lambda s: not s["sip"]["calls"], what="the phone's calls gone", timeout=20)
    assert phone.alive()
