"""Linphone transfers the phone (blind, attended, to an unknown number). Collected only inside the
network namespace that ``test_linphone_transfer.py`` makes (the file name keeps pytest off it otherwise)."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.servers.audio import write_sine_wav
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

    def start(user: str, password: str = "pw") -> Linphone:
        kamailio.add_user(user, password)
        agent = Linphone(
            tmp_path / f"linphone-{user}-{next(counter)}",
            user=user,
            password=password,
            registrar=f"{kamailio.host}:{kamailio.port}",
            source_wav=tone_wav,
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
