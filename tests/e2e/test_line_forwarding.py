"""Call forwarding and do-not-disturb on real kamailio, baresip and mosquitto.

The phone (1001) answers a call it forwards with 302 (Contact: the target, Diversion: 1001 and why);
the lab kamailio follows it (``failure_route[FOLLOW_REDIRECT]``) to the target, a baresip that answers:
the caller ends up talking to the target, audio both ways. Each forward is set once from the config
(``[forward]``) and once by the CRM (``cmd/forward``); the CRM (a paho client) sees the call as
``call.incoming`` then ``call.ended`` with ``disposition: forwarded`` and ``forwarded_to``.
"""

from __future__ import annotations

import os
import stat
import wave
from pathlib import Path
from typing import Any

import pytest

from lab.servers.audio import dominant_frequency, read_wav, write_sine_wav
from lab.servers.baresip import Baresip
from lab.servers.mosquitto import Mosquitto
from lab.waiting import wait_until
from tests.e2e.crm_support import CrmView, new_id, start_phone
from tests.e2e.line_support import dial_from_handset
from tests.e2e.test_plain_extension import RATE

pytestmark = pytest.mark.e2e

CALLER_HZ, TARGET_HZ, OTHER_HZ = 440.0, 660.0, 880.0
EXTENSION, MOBILE = "1003", "0170123456"  # the mobile: a user of the lab registrar with a mobile's number
DIVERSION_REASON = {"always": "unconditional", "busy": "user-busy", "no_answer": "no-answer"}


@pytest.fixture
def target_wav(tmp_path: Path) -> Path:
    return write_sine_wav(tmp_path / "target660.wav", freq=TARGET_HZ, seconds=60.0, rate=RATE, amplitude=0.3)


@pytest.fixture
def other_wav(tmp_path: Path) -> Path:
    return write_sine_wav(tmp_path / "other880.wav", freq=OTHER_HZ, seconds=60.0, rate=RATE, amplitude=0.3)


def set_forward(crm: CrmView, mode: str, number: str | None, **more: Any) -> dict[str, Any]:
    request_id = new_id("fwd")
    crm.command("forward", {"v": 1, "id": request_id, "mode": mode, "number": number, **more})
    return crm.wait_reply(request_id)


def recorded_bytes(agent: Baresip) -> int:
    wav = agent.recorded_wav_path("dec")
    return wav.stat().st_size if wav is not None else 0


def heard(agent: Baresip) -> float | None:
    """The dominant frequency of the last second ``agent`` received (None: its recording is not
    closed yet)."""
    wav = agent.recorded_wav_path("dec")
    try:
        samples, rate = read_wav(wav) if wav is not None else ([], 0)
    except (EOFError, OSError, ValueError, wave.Error):
        return None
    return dominant_frequency(samples[-rate:], rate) if rate and len(samples) >= rate else None


def talk_until_both_hear(caller: Baresip, target: Baresip, timeout: float = 15.0) -> None:
    """Both record 3 s of the call, the caller hangs up: each heard the other's tone."""
    enough = 3 * RATE * 2
    wait_until(
        lambda: min(recorded_bytes(caller), recorded_bytes(target)) > enough, timeout, "3 s of the call"
    )
    caller.hangup()
    target.wait_for_event("CALL_CLOSED", timeout=10)
    caller_heard = wait_until(lambda: heard(caller), 10, "the caller's recording")
    target_heard = wait_until(lambda: heard(target), 10, "the target's recording")
    assert abs(caller_heard - TARGET_HZ) < 15, f"the caller heard {caller_heard:.0f} Hz, not the target"
    assert abs(target_heard - CALLER_HZ) < 15, f"the target heard {target_heard:.0f} Hz, not the caller"


def forwarded_call_ended(crm: CrmView, number: str, reason: str) -> dict[str, Any]:
    """The CRM's call.incoming and call.ended ``forwarded`` of one call; returns the ended call."""
    event = crm.wait_event("call.ended", lambda e: e["call"]["disposition"] == "forwarded")
    ended = event["call"]
    assert ended["forwarded_to"] == {"number": number, "reason": reason}
    assert ended["direction"] == "inbound" and ended["remote"]["number"] == "1002"
    assert ended["sip_code"] == 302 and ended["answered_at"] is None and ended["talk_s"] == 0
    incoming = crm.wait_event("call.incoming", lambda e: e["call"]["call_id"] == ended["call_id"])
    assert incoming["seq"] < event["seq"]
    return ended


def assert_kamailio_followed(kamailio: Any, number: str, reason: str) -> None:
    """kamailio followed the 302 to ``number``: its only Contact (not the phone's own), the reason
    in its Diversion header."""
    lines = [line for line in kamailio.log_text().splitlines() if f"REDIRECT sip:{number}@" in line]
    assert lines, "kamailio did not follow the phone's 302"
    contacts = lines[-1].split("contacts <", 1)[1].split("> diversion", 1)[0]
    assert contacts.count("sip:") == 1, f"the 302 named more than the target: {contacts}"
    assert f";reason={reason}" in lines[-1] and "<sip:1001@" in lines[-1]


def phone_with(phone_factory: Any, mosquitto: Mosquitto, source: str, mode: str, number: str, **more: Any):  # type: ignore[no-untyped-def]
    """A phone forwarding ``mode`` to ``number``, set by ``source``: "config" or "mqtt"."""
    line = more.pop("line", "")
    table = ""
    if source == "config":
        table = f'[forward]\n{mode} = "{number}"\n' + "".join(f"{k} = {v}\n" for k, v in more.items())
    return start_phone(phone_factory, mosquitto, extra=table + line)


@pytest.mark.parametrize("source", ["config", "mqtt"])
def test_forward_always_puts_the_caller_through_to_the_target(
    source, phone_factory, baresip_factory, kamailio, mosquitto, crm, target_wav
):  # type: ignore[no-untyped-def]
    caller = baresip_factory("1002", auto_answer=False)
    target = baresip_factory(EXTENSION, auto_answer=True, source_wav=target_wav)
    phone = phone_with(phone_factory, mosquitto, source, "always", EXTENSION)
    if source == "mqtt":
        reply = set_forward(crm, "always", EXTENSION)
        assert reply["ok"] and reply["result"]["forward"]["always"] == EXTENSION
    state = phone.wait_for(lambda s: s["display"] == f"Fwd -> {EXTENSION}", what="the forward on the display")
    assert state["forward"]["always"] == EXTENSION
    status = crm.wait_status(lambda s: s.get("forward", {}).get("always") == EXTENSION)
    assert status["dnd"] is False

    caller.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    target.wait_for_event("CALL_ESTABLISHED", timeout=15)
    caller.wait_for_event("CALL_ESTABLISHED", timeout=10)
    assert phone.state()["ringer"] is None and phone.state()["phone_state"] == "idle"
    talk_until_both_hear(caller, target)

    forwarded_call_ended(crm, EXTENSION, "unconditional")
    assert_kamailio_followed(kamailio, EXTENSION, "unconditional")


@pytest.mark.parametrize("source", ["config", "mqtt"])
def test_forward_on_busy_sends_a_second_call_to_the_mobile(
    source, phone_factory, baresip_factory, kamailio, mosquitto, crm, target_wav, other_wav
):  # type: ignore[no-untyped-def]
    talking_to = baresip_factory("1004", auto_answer=True, source_wav=other_wav)
    caller = baresip_factory("1002", auto_answer=False)
    mobile = baresip_factory(MOBILE, auto_answer=True, source_wav=target_wav)
    phone = phone_with(
        phone_factory, mosquitto, source, "busy", MOBILE, line="[line]\ncall_waiting = false\n"
    )
    if source == "mqtt":
        assert set_forward(crm, "busy", MOBILE)["ok"]
    phone.wait_for(lambda s: s["forward"]["busy"] == MOBILE, what="forward on busy set")
    dial_from_handset(phone, talking_to, "1004")

    caller.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    mobile.wait_for_event("CALL_ESTABLISHED", timeout=15)
    caller.wait_for_event("CALL_ESTABLISHED", timeout=10)
    talk_until_both_hear(caller, mobile)
    forwarded_call_ended(crm, MOBILE, "user-busy")
    assert_kamailio_followed(kamailio, MOBILE, "user-busy")
    state = phone.state()
    assert state["phone_state"] == "in_call" and state["waiting"] is None, "the first call goes on"
    phone.client.hook(False)
    phone.wait_mode("idle")


@pytest.mark.parametrize("source", ["config", "mqtt"])
def test_forward_on_no_answer_rings_first_then_puts_the_caller_through(
    source, phone_factory, baresip_factory, kamailio, mosquitto, crm, target_wav
):  # type: ignore[no-untyped-def]
    caller = baresip_factory("1002", auto_answer=False)
    target = baresip_factory(EXTENSION, auto_answer=True, source_wav=target_wav)
    phone = phone_with(phone_factory, mosquitto, source, "no_answer", EXTENSION, no_answer_s=3)
    if source == "mqtt":
        reply = set_forward(crm, "no_answer", EXTENSION, no_answer_s=3)
        assert reply["result"]["forward"] == {"always": None, "busy": None, "no_answer": EXTENSION,
                                              "no_answer_s": 3}  # fmt: skip
    phone.wait_for(lambda s: s["forward"]["no_answer"] == EXTENSION, what="forward on no answer set")

    caller.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    state = phone.wait_mode("ringing_in")
    assert state["ringer"] == "normal"
    assert not target.events_of("CALL_INCOMING"), "the target rang before the phone's no-answer time"
    target.wait_for_event("CALL_ESTABLISHED", timeout=20)
    caller.wait_for_event("CALL_ESTABLISHED", timeout=10)
    state = phone.wait_mode("idle")
    assert state["ringer"] is None and state["missed_call"] is False
    talk_until_both_hear(caller, target)
    ended = forwarded_call_ended(crm, EXTENSION, "no-answer")
    assert ended["ring_s"] > 0
    assert_kamailio_followed(kamailio, EXTENSION, "no-answer")


def test_do_not_disturb_from_the_crm_gives_the_caller_busy_and_says_why(
    phone_factory, baresip_factory, kamailio, mosquitto, crm
):  # type: ignore[no-untyped-def]
    caller = baresip_factory("1002", auto_answer=False)
    phone = start_phone(phone_factory, mosquitto)
    request_id = new_id("dnd")
    crm.command("dnd", {"v": 1, "id": request_id, "enabled": True})
    reply = crm.wait_reply(request_id)
    assert reply["ok"] and reply["result"]["dnd"] is True
    assert crm.wait_status(lambda s: s.get("dnd") is True)["state"] == "idle"
    phone.wait_for(lambda s: s["display"] == "DND" and s["dnd"], what="DND on the display")

    caller.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    closed = caller.wait_for_event("CALL_CLOSED", timeout=10)
    assert "486" in str(closed.get("param", "")) or "Busy" in str(closed.get("param", ""))
    ended = crm.wait_event("call.ended")["call"]
    assert (ended["disposition"], ended["sip_code"], ended["reason"]) == ("rejected", 486, "Do Not Disturb")
    assert phone.state()["ringer"] is None

    request_id = new_id("dnd")
    crm.command("dnd", {"v": 1, "id": request_id, "enabled": False})
    assert crm.wait_reply(request_id)["result"]["dnd"] is False
    phone.wait_for(lambda s: s["display"] == "" and not s["dnd"], what="DND off")


def test_crm_forward_survives_a_restart_refuses_bad_payloads_and_clearing_restores_ringing(
    phone_factory, baresip_factory, kamailio, mosquitto, crm
):  # type: ignore[no-untyped-def]
    caller = baresip_factory("1002", auto_answer=False)
    phone = start_phone(phone_factory, mosquitto)
    assert set_forward(crm, "always", EXTENSION)["ok"]
    kept = phone.workdir / "state" / "line_settings.json"
    wait_until(kept.exists, 10, "the forward kept on disk")
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600

    phone.stop()
    phone.start()
    phone.wait_for(
        lambda s: s["registered"] and s["forward"]["always"] == EXTENSION, what="the forward after a restart"
    )

    bad = {
        "no mode": ({"number": "1003"}, "invalid_payload"),
        "unknown mode": ({"mode": "sometimes", "number": "1003"}, "invalid_payload"),
        "no number": ({"mode": "busy"}, "invalid_payload"),
        "a SIP URI": ({"mode": "busy", "number": "sip:evil@example.com"}, "invalid_number"),
        "a number as number": ({"mode": "busy", "number": 1003}, "invalid_payload"),
        "seconds out of range": (
            {"mode": "no_answer", "number": "1003", "no_answer_s": 0},
            "invalid_payload",
        ),
        "own extension": ({"mode": "always", "number": "1001"}, "invalid_number"),
    }
    for name, (fields, code) in bad.items():
        request_id = new_id("bad")
        crm.command("forward", {"v": 1, "id": request_id, **fields})
        reply = crm.wait_reply(request_id)
        assert not reply["ok"] and reply["error"]["code"] == code, name
        assert reply["error"]["message"], name
    request_id = new_id("bad")
    crm.command("dnd", {"v": 1, "id": request_id, "enabled": "yes"})
    assert crm.wait_reply(request_id)["error"]["code"] == "invalid_payload"
    state = phone.state()
    assert state["forward"] == {"always": EXTENSION, "busy": None, "no_answer": None, "no_answer_s": 20}
    assert state["dnd"] is False

    reply = set_forward(crm, "always", None)
    assert reply["ok"] and reply["result"]["forward"]["always"] is None
    phone.wait_for(lambda s: s["display"] == "", what="the forward gone from the display")
    caller.dial(f"sip:1001@{kamailio.host}:{kamailio.port}")
    state = phone.wait_mode("ringing_in")
    assert state["ringer"] == "normal"
    caller.hangup()
    phone.wait_mode("idle")
