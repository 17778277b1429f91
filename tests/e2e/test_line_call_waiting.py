"""Call waiting: a second call during a call waits with a tone in the earpiece and the caller on the
display; a hook flash answers it and holds the first, a second flash swaps back; flash then 0 (from the
handset) or the CRM declines one; switched off, the second call gets 486. The CRM (a paho client on
mosquitto) sees both calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lab.servers.audio import write_sine_wav
from lab.servers.phone import events_of
from tests.e2e.crm_support import call_events, new_id, start_phone
from tests.e2e.line_support import dial_from_handset
from tests.e2e.test_plain_extension import RATE, listen, tone_in

pytestmark = pytest.mark.e2e

FIRST_HZ, SECOND_HZ, WAITING_TONE_HZ = 660.0, 880.0, 425.0
WIDE_FLASH = "[line]\nhook_flash_min_s = 0.05\nhook_flash_max_s = 2.5\n"


@pytest.fixture
def first_wav(tmp_path: Path) -> Path:
    return write_sine_wav(tmp_path / "first660.wav", freq=FIRST_HZ, seconds=60.0, rate=RATE, amplitude=0.3)


@pytest.fixture
def second_wav(tmp_path: Path) -> Path:
    return write_sine_wav(tmp_path / "second880.wav", freq=SECOND_HZ, seconds=60.0, rate=RATE, amplitude=0.3)


def share_at(samples: np.ndarray, freq: float, band: float = 10.0) -> float:
    """The share of the power of ``samples`` within ``band`` Hz of ``freq``."""
    x = samples.astype(np.float64)
    power = np.abs(np.fft.rfft(x - x.mean())) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(power[np.abs(freqs - freq) < band].sum() / max(power.sum(), 1e-9))


@pytest.fixture
def callers(baresip_factory, first_wav, second_wav):  # type: ignore[no-untyped-def]
    """1002 (the first call, 660 Hz) and 1003 (the waiting one, 880 Hz), both answering at once."""
    first = baresip_factory("1002", auto_answer=True, source_wav=first_wav)
    second = baresip_factory("1003", auto_answer=True, source_wav=second_wav)
    return first, second


def second_call_waits(phone, second, kamailio):  # type: ignore[no-untyped-def]
    second.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    return phone.wait_for(lambda s: s["waiting"], what="a waiting call")


def in_call_with_one_waiting(phone, callers, kamailio) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The phone talks to 1002 and 1003's call waits: both calls' ids."""
    first, second = callers
    first_id = dial_from_handset(phone, first)
    return first_id, second_call_waits(phone, second, kamailio)["waiting"]["call_id"]


def flash_and_choose(phone, key: str) -> dict:  # type: ignore[no-untyped-def]
    """Flash, see the choice on the display, press ``key``: the phone's state while it asked."""
    phone.client.flash(0.3)
    asking = phone.wait_for(lambda s: s["display"] == "0 reject 1 end 2 hold", what="the choice shown")
    phone.client.keys(key)
    return asking


def test_flash_takes_the_waiting_call_and_swaps_back(phone_factory, callers, kamailio, mosquitto, crm):  # type: ignore[no-untyped-def]
    first, second = callers
    phone = start_phone(phone_factory, mosquitto, extra=WIDE_FLASH)
    first_id = dial_from_handset(phone, first)
    before = listen(phone, 3.0)
    assert tone_in(before, FIRST_HZ) and share_at(before, WAITING_TONE_HZ) < 0.01

    waiting = second_call_waits(phone, second, kamailio)
    second_id = waiting["waiting"]["call_id"]
    assert waiting["display"] == "Waiting: 1003" and waiting["leds"]["line"] == "blink"
    assert waiting["call"]["call_id"] == first_id and waiting["ringer"] is None
    over_the_call = listen(phone, 4.0)
    assert share_at(over_the_call, WAITING_TONE_HZ) > 0.02, "no call-waiting tone in the earpiece"
    assert tone_in(over_the_call, FIRST_HZ), "the call went quiet for the waiting tone"

    phone.client.flash(0.3)
    second.wait_for_event("CALL_ESTABLISHED", timeout=10)
    taken = phone.wait_for(
        lambda s: (s["call"] or {}).get("call_id") == second_id and s["held"], what="the waiting call taken"
    )
    assert taken["held"]["call_id"] == first_id and taken["waiting"] is None and taken["display"] == "1003"
    phone.wait_for(lambda s: s["sip"]["calls"].get(first_id) == "held", what="the first call held")
    assert tone_in(listen(phone, 3.0), SECOND_HZ), "the second caller did not reach the earpiece"
    assert not tone_in(listen(phone, 2.0), FIRST_HZ, tolerance=5), "the held caller reached the earpiece"

    phone.client.flash(0.3)
    swapped = phone.wait_for(
        lambda s: (s["call"] or {}).get("call_id") == first_id and s["held"], what="the swap back"
    )
    assert swapped["held"]["call_id"] == second_id
    phone.wait_for(lambda s: s["sip"]["calls"].get(second_id) == "held", what="the second call held")
    phone.wait_for(lambda s: s["sip"]["calls"].get(first_id) == "confirmed", what="the first call resumed")
    assert tone_in(listen(phone, 3.0), FIRST_HZ), "the first caller did not come back"

    phone.client.hook(False)
    first.wait_for_event("CALL_CLOSED", timeout=10)
    second.wait_for_event("CALL_CLOSED", timeout=10)
    phone.wait_mode("idle")
    crm.wait_events(lambda events: len([e for e in events if e["type"] == "call.ended"]) >= 2)
    events = crm.events()
    assert [e["type"] for e in call_events(events, first_id)] == [
        "call.outgoing", "call.ringing", "call.answered", "call.ended"
    ]  # fmt: skip
    assert [e["type"] for e in call_events(events, second_id)] == [
        "call.incoming", "call.answered", "call.ended"
    ]  # fmt: skip
    second_end = call_events(events, second_id)[-1]["call"]
    assert second_end["remote"]["number"] == "1003" and second_end["disposition"] == "answered"
    assert second_end["direction"] == "inbound" and second_end["hangup_by"] == "local"
    assert phone.alive()


def test_the_crm_declines_a_waiting_call_and_the_first_goes_on(
    phone_factory, callers, kamailio, mosquitto, crm
):  # type: ignore[no-untyped-def]
    first, second = callers
    phone = start_phone(phone_factory, mosquitto, extra=WIDE_FLASH)
    first_id, second_id = in_call_with_one_waiting(phone, callers, kamailio)

    request_id = new_id("h")
    crm.command("hangup", {"v": 1, "id": request_id, "call_id": second_id})
    assert crm.wait_reply(request_id)["result"] == {"status": "ended", "call_id": second_id}
    second.wait_for_event("CALL_CLOSED", timeout=10)
    state = phone.wait_for(lambda s: s["waiting"] is None, what="the waiting call gone")
    assert state["call"]["call_id"] == first_id and state["display"] == "1002"
    assert tone_in(listen(phone, 3.0), FIRST_HZ), "the first call did not go on"
    ended = crm.wait_event("call.ended")
    assert ended["call"]["call_id"] == second_id and ended["call"]["disposition"] == "rejected"
    assert ended["call"]["sip_code"] == 603
    phone.client.hook(False)
    first.wait_for_event("CALL_CLOSED", timeout=10)


def test_flash_then_0_declines_the_waiting_call_and_the_first_goes_on(
    phone_factory, callers, kamailio, mosquitto, crm
):  # type: ignore[no-untyped-def]
    first, second = callers
    phone = start_phone(phone_factory, mosquitto, extra=WIDE_FLASH + "call_waiting_choice_s = 8\n")
    first_id, second_id = in_call_with_one_waiting(phone, callers, kamailio)

    asking = flash_and_choose(phone, "0")
    assert asking["waiting"]["call_id"] == second_id and asking["call"]["call_id"] == first_id
    closed = second.wait_for_event("CALL_CLOSED", timeout=10)
    assert "603" in str(closed), closed
    state = phone.wait_for(lambda s: s["waiting"] is None, what="the waiting call gone")
    assert state["call"]["call_id"] == first_id and state["held"] is None and state["display"] == "1002"
    assert state["sip"]["calls"].get(first_id) == "confirmed", "the first call was held"
    assert tone_in(listen(phone, 3.0), FIRST_HZ), "the first call did not go on"
    assert not first.received_dtmf(), "the choice key reached the first call as DTMF"
    ended = crm.wait_event("call.ended")["call"]
    assert ended["call_id"] == second_id and ended["disposition"] == "rejected"
    assert ended["sip_code"] == 603 and ended["hangup_by"] == "local" and ended["remote"]["number"] == "1003"
    phone.client.hook(False)
    first.wait_for_event("CALL_CLOSED", timeout=10)
    assert phone.alive()


def test_flash_then_1_ends_the_call_and_takes_the_waiting_one(
    phone_factory, callers, kamailio, mosquitto, crm
):  # type: ignore[no-untyped-def]
    first, second = callers
    phone = start_phone(phone_factory, mosquitto, extra=WIDE_FLASH + "call_waiting_choice_s = 8\n")
    first_id, second_id = in_call_with_one_waiting(phone, callers, kamailio)
    flash_and_choose(phone, "1")
    first.wait_for_event("CALL_CLOSED", timeout=10)
    second.wait_for_event("CALL_ESTABLISHED", timeout=10)
    state = phone.wait_for(lambda s: (s["call"] or {}).get("call_id") == second_id, what="the second call")
    assert state["held"] is None and state["waiting"] is None
    assert tone_in(listen(phone, 3.0), SECOND_HZ), "the second caller did not reach the earpiece"
    phone.client.hook(False)
    second.wait_for_event("CALL_CLOSED", timeout=10)
    crm.wait_events(lambda events: len([e for e in events if e["type"] == "call.ended"]) >= 2)
    ended = {e["call"]["call_id"]: e["call"] for e in crm.events() if e["type"] == "call.ended"}
    assert ended[first_id]["disposition"] == "answered" and ended[first_id]["hangup_by"] == "local"
    assert ended[second_id]["disposition"] == "answered"


def test_with_call_waiting_off_a_second_call_is_busy(phone_factory, baresip_factory, kamailio):  # type: ignore[no-untyped-def]
    first = baresip_factory("1002", auto_answer=True)
    second = baresip_factory("1003", auto_answer=True)
    phone = phone_factory(extra="[line]\ncall_waiting = false\n")
    phone.wait_for(lambda s: s["registered"], what="registration")
    dial_from_handset(phone, first)
    second.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    second.wait_for_event("CALL_CLOSED", timeout=10)
    state = phone.wait_for(lambda s: len(events_of(s, "call.ended")) == 1, what="the refused call's record")
    (refused,) = events_of(state, "call.ended")
    assert refused["call"]["sip_code"] == 486 and refused["call"]["disposition"] == "rejected"
    assert state["waiting"] is None and state["phone_state"] == "in_call"
    phone.client.hook(False)
    first.wait_for_event("CALL_CLOSED", timeout=10)
