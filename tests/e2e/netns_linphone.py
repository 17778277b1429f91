"""Linphone transfers the phone (blind, attended, to an unknown number), and the phone transfers a
caller to linphone (hook flash, blind and attended). Collected only inside the network namespace that
``test_linphone_transfer.py`` makes (the file name keeps pytest off it otherwise)."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.servers.audio import dominant_frequency, read_wav, rms_dbfs, write_sine_wav
from lab.servers.kamailio import Kamailio
from lab.servers.linphone import Linphone
from lab.servers.phone import events_of
from tests.e2e.line_support import assert_no_call_reuse
from tests.e2e.test_plain_extension import listen, tone_in


@pytest.fixture(autouse=True)
def only_loopback() -> None:
    names = [name for _, name in socket.if_nameindex()]
    assert names == ["lo"], f"run these only in a network namespace with only lo, not {names}"


@pytest.fixture
def linphone_factory(kamailio: Kamailio, tmp_path: Path, tone_wav: Path) -> Iterator[Callable[..., Linphone]]:
    started: list[Linphone] = []
    counter = itertools.count(1)

    def start(
        user: str, password: str = "pw", auto_answer: bool = True, source_wav: Path | None = None
    ) -> Linphone:
        kamailio.add_user(user, password)
        agent = Linphone(
            tmp_path / f"linphone-{user}-{next(counter)}",
            user=user,
            password=password,
            registrar=f"{kamailio.host}:{kamailio.port}",
            source_wav=source_wav or tone_wav,
            auto_answer=auto_answer,
        )
        started.append(agent)
        agent.start()
        return agent

    try:
        yield start
    finally:
        for agent in reversed(started):
            agent.stop()


@pytest.fixture
def carol(baresip_factory, tmp_path: Path):  # type: ignore[no-untyped-def]
    wav = write_sine_wav(tmp_path / "carol660.wav", freq=660.0, seconds=60.0, rate=16000, amplitude=0.3)
    return baresip_factory("1003", auto_answer=True, source_wav=wav)


def call_linphone(phone, lp: Linphone) -> str:  # type: ignore[no-untyped-def]
    phone.wait_for(lambda s: s["registered"], what="registration")
    phone.client.hook(True)
    phone.wait_mode("dialing")
    phone.client.keys("1004#")
    try:
        state = phone.wait_mode("in_call", timeout=15)
    except TimeoutError as exc:
        ended = events_of(phone.state(), "call.ended")
        raise AssertionError(f"{exc}\n{ended}\nlinphone:\n{lp.output()[-3000:]}") from None
    assert tone_in(listen(phone, 1.5), 440.0), "linphone's 440 Hz did not reach the earpiece"
    return state["call"]["call_id"]


def assert_put_through_to_carol(phone, carol, first_id: str) -> None:  # type: ignore[no-untyped-def]
    state = phone.wait_for(
        lambda s: s["phone_state"] == "in_call" and (s["call"] or {}).get("remote") == "1003",
        timeout=15,
        what="in a call with 1003",
    )
    assert state["display"] == "1003" and state["leds"]["line"] == "on"
    assert tone_in(listen(phone, 2.0), 660.0), "the new party's 660 Hz did not reach the earpiece"
    phone.client.hook(False)
    carol.wait_for_event("CALL_CLOSED", timeout=10)
    state = phone.wait_mode("idle")
    ended = {e["call"]["call_id"]: e["call"] for e in events_of(state, "call.ended")}
    assert ended[first_id]["transferred_to"]["remote"]["number"] == "1003"
    new_id = ended[first_id]["transferred_to"]["call_id"]
    assert ended[new_id]["transferred_from"]["call_id"] == first_id
    assert ended[new_id]["hangup_by"] == "local"
    assert_no_call_reuse(phone)


def test_blind_transfer_by_linphone(phone_factory, linphone_factory, carol, kamailio) -> None:  # type: ignore[no-untyped-def]
    lp = linphone_factory("1004")
    phone = phone_factory()
    first_id = call_linphone(phone, lp)
    lp.command(f"transfer sip:1003@{kamailio.host}:{kamailio.port}")
    assert_put_through_to_carol(phone, carol, first_id)


def test_attended_transfer_by_linphone(phone_factory, linphone_factory, carol, kamailio) -> None:  # type: ignore[no-untyped-def]
    lp = linphone_factory("1004")
    phone = phone_factory()
    first_id = call_linphone(phone, lp)
    mark = lp.mark()
    lp.command("pause")  # linphone holds the phone's call (it calls no one else while one is active)
    lp.wait_for(r"paused", 10, "the phone's call on hold", since=mark)
    state = phone.wait_for(lambda s: s["display"] == "On hold: 1004", what="the display saying we are held")
    assert state["leds"]["line"] == "blink"
    lp.command(f"call sip:1003@{kamailio.host}:{kamailio.port}")
    try:
        carol.wait_for_event("CALL_ESTABLISHED", timeout=10)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\nlinphone:\n{lp.output()[-2000:]}") from None
    lp.command("transfer 1 --to-call 2")  # a REFER to the phone with Replaces of linphone's call 2
    assert_put_through_to_carol(phone, carol, first_id)
    assert "(attended) as call" in phone.log_text()


def test_transfer_to_an_unknown_number_leaves_the_call_with_linphone(
    phone_factory, linphone_factory, kamailio
) -> None:  # type: ignore[no-untyped-def]
    lp = linphone_factory("1004")
    phone = phone_factory()
    first_id = call_linphone(phone, lp)
    lp.command(f"transfer sip:4040@{kamailio.host}:{kamailio.port}")
    state = phone.wait_for(
        lambda s: any(e["call"]["call_id"] != first_id for e in events_of(s, "call.ended")),
        what="the transfer call's end",
    )
    (failed,) = [e["call"] for e in events_of(state, "call.ended") if e["call"]["call_id"] != first_id]
    assert failed["disposition"] == "failed" and failed["sip_code"] == 404
    state = phone.state()
    assert state["phone_state"] == "in_call" and state["call"]["call_id"] == first_id
    assert tone_in(listen(phone, 2.0), 440.0), "the first call did not go on"
    phone.client.hook(False)
    state = phone.wait_mode("idle")
    (first,) = [e["call"] for e in events_of(state, "call.ended") if e["call"]["call_id"] == first_id]
    assert first["hangup_by"] == "local" and "transferred_to" not in first
    assert_no_call_reuse(phone)


# --- the phone transfers a caller (baresip 1002) to linphone (1004) -----------------------------------

WIDE_FLASH = "[line]\nhook_flash_min_s = 0.05\nhook_flash_max_s = 2.5\n"
CALLER_HZ, LINPHONE_HZ = 660.0, 440.0


def hold_caller_and_dial_linphone(phone, caller: str = "1002") -> str:  # type: ignore[no-untyped-def]
    """Call ``caller``, hold it with a hook flash, dial linphone 1004; the held call's id."""
    phone.wait_for(lambda s: s["registered"], what="registration")
    phone.client.hook(True)
    phone.wait_mode("dialing")
    phone.client.keys(f"{caller}#")
    held_id = phone.wait_mode("in_call", timeout=15)["call"]["call_id"]
    phone.client.flash(0.3)
    phone.wait_for(lambda s: s["held"] and s["phone_state"] == "dialing", what="the caller held")
    phone.client.keys("1004#")
    return held_id


def transfer_records(phone, held_id: str) -> dict:  # type: ignore[no-untyped-def]
    """The CRM's records of both calls (their call.ended events) say who went where; the other call's."""
    phone.wait_mode("idle")
    state = phone.wait_for(lambda s: len(events_of(s, "call.ended")) == 2, what="both calls' records")
    ended = {e["call"]["call_id"]: e["call"] for e in events_of(state, "call.ended")}
    held = ended.pop(held_id)
    (other,) = ended.values()
    assert held["transferred_to"] == {"call_id": other["call_id"], "remote": {"number": "1004", "name": None}}
    assert other["transferred_from"]["call_id"] == held_id and held["hangup_by"] == "local"
    return other


def assert_caller_and_linphone_hear_each_other(caller, lp: Linphone, since: int) -> None:
    """Audio both ways on the call the transfer made, the phone out of it: each hears the other's tone."""
    lp.wait_for(r"Call \d+ with .*1002.* connected", 15, "the transferred call", since=since)
    time.sleep(3.0)  # a few seconds of the call, recorded at both ends
    caller.hangup()
    caller.wait_for_event("CALL_CLOSED", timeout=10)
    lp.wait_for(r"Call \d+ with .*1002.* ended", 10, "the end of the transferred call", since=since)
    heard = caller.recorded_wav_path("dec")  # a new call at baresip: a recording of its own
    assert heard is not None
    for who, (samples, rate), hz in (
        ("the caller", read_wav(heard), LINPHONE_HZ),
        ("linphone", read_wav(lp.record_path), CALLER_HZ),  # a recording of its last call
    ):
        tail = samples[-rate * 2 : -rate // 2]
        assert abs(dominant_frequency(tail, rate) - hz) < 15, f"{who} did not hear the other"
        assert rms_dbfs(tail) > -35, f"{who} heard the other too quietly"


def test_the_phone_blind_transfers_a_caller_to_linphone(
    phone_factory, baresip_factory, linphone_factory, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    wav = write_sine_wav(tmp_path / "caller660.wav", freq=CALLER_HZ, seconds=60.0, rate=16000, amplitude=0.3)
    caller = baresip_factory("1002", auto_answer=True, via_registrar=True, source_wav=wav)
    lp = linphone_factory("1004", auto_answer=False)
    phone = phone_factory(extra=WIDE_FLASH)
    mark = lp.mark()
    held_id = hold_caller_and_dial_linphone(phone)
    lp.wait_for(r"Receiving new incoming call", 10, "the phone's call", since=mark)
    phone.wait_for(lambda s: s["phone_state"] == "outgoing", what="linphone ringing")
    mark = lp.mark()
    phone.client.hook(False)  # blind: a REFER to 1004 while it rings
    other = transfer_records(phone, held_id)
    assert other["disposition"] == "cancelled"
    lp.wait_for(r"Receiving new incoming call from .*1002", 15, "the caller's call", since=mark)
    lp.command("answer")
    caller.wait_for_event("CALL_ESTABLISHED", timeout=15)
    assert_caller_and_linphone_hear_each_other(caller, lp, mark)
    assert phone.wait_for(lambda s: not s["sip"]["calls"], what="the phone's calls gone", timeout=20)
    assert_no_call_reuse(phone)


def test_the_phone_attended_transfers_a_linphone_caller_to_linphone(
    phone_factory, linphone_factory, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # The held party is linphone too: baresip 1.0 carries a Refer-To's Replaces into the To URI of its
    # INVITE, not into a Replaces header, so a target that honours Replaces sees a new call (it rings).
    wav = write_sine_wav(tmp_path / "caller660.wav", freq=CALLER_HZ, seconds=60.0, rate=16000, amplitude=0.3)
    caller = linphone_factory("1005", source_wav=wav)
    target = linphone_factory("1004")
    phone = phone_factory(extra=WIDE_FLASH)
    held_id = hold_caller_and_dial_linphone(phone, caller="1005")
    phone.wait_mode("in_call")
    assert tone_in(listen(phone, 1.5), LINPHONE_HZ), "linphone 1004 did not reach the earpiece"
    caller_mark, target_mark = caller.mark(), target.mark()
    phone.client.hook(False)  # attended: a REFER with Replaces of the phone's call with 1004
    other = transfer_records(phone, held_id)
    assert other["disposition"] == "answered"
    target.wait_for(
        r"Call \d+ with .*1005.* connected", 15, "the caller's INVITE with Replaces", since=target_mark
    )
    caller.wait_for(r"Call \d+ with .*1004.* connected", 15, "the call to 1004", since=caller_mark)
    # 1004 took the caller's INVITE with Replaces in place of its call with the phone and ended that one
    assert phone.wait_for(lambda s: not s["sip"]["calls"], what="the phone's calls gone", timeout=20)
    time.sleep(3.0)  # a few seconds of the call, recorded at both ends
    caller.command("terminate all")
    target.wait_for(r"Call \d+ with .*1005.* ended", 10, "the end of the call", since=target_mark)
    caller.wait_for(r"Call \d+ with .*1004.* ended", 10, "the end of the call", since=caller_mark)
    for who, agent, hz in (("the caller", caller, LINPHONE_HZ), ("1004", target, CALLER_HZ)):
        samples, rate = read_wav(agent.record_path)  # linphone records each call over the last one
        tail = samples[-rate * 2 :]
        assert abs(dominant_frequency(tail, rate) - hz) < 15, f"{who} did not hear the other"
        assert rms_dbfs(tail) > -35, f"{who} heard the other too quietly"
    assert_no_call_reuse(phone)
