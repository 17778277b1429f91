"""cmd/forward and cmd/dnd decode into commands or are refused with a clear code and message."""

import json
from datetime import UTC, datetime

import pytest

from crm_bridge.codec import (
    CommandRejected,
    decode_command,
    decode_event,
    encode_event,
    encode_forward,
    encode_status,
)
from firmware.commands import SetDoNotDisturb, SetForward
from firmware.events import CallRecord, Event, Forwarded, Remote

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def decode(kind, obj):
    return decode_command(kind, json.dumps(obj).encode(), NOW)


def test_forward_set_and_clear():
    assert decode("forward", {"v": 1, "id": "f1", "mode": "always", "number": "1003"}) == SetForward(
        "f1", "always", "1003"
    )
    assert decode("forward", {"v": 1, "id": "f2", "mode": "busy", "number": None}) == SetForward(
        "f2", "busy", None
    )
    command = decode("forward", {"v": 1, "id": "f3", "mode": "no_answer", "number": "+4917012345",
                                 "no_answer_s": 15})  # fmt: skip
    assert command == SetForward("f3", "no_answer", "+4917012345", 15)
    assert decode_command("forward", encode_forward("f3", "no_answer", "+4917012345", 15), NOW) == command


@pytest.mark.parametrize(
    ("fields", "code", "says"),
    [
        ({"number": "1003"}, "invalid_payload", "'mode'"),
        ({"mode": "ALWAYS", "number": "1003"}, "invalid_payload", "'mode'"),
        ({"mode": "always"}, "invalid_payload", "missing 'number'"),
        ({"mode": "always", "number": 1003}, "invalid_payload", "'number' must be a string or null"),
        ({"mode": "always", "number": ""}, "invalid_number", "'number'"),
        ({"mode": "always", "number": "sip:1003@evil"}, "invalid_number", "'number'"),
        ({"mode": "always", "number": "1" * 33}, "invalid_number", "'number'"),
        ({"mode": "no_answer", "number": "1003", "no_answer_s": 0}, "invalid_payload", "no_answer_s"),
        ({"mode": "no_answer", "number": "1003", "no_answer_s": 2.5}, "invalid_payload", "no_answer_s"),
        ({"mode": "no_answer", "number": "1003", "no_answer_s": True}, "invalid_payload", "no_answer_s"),
        ({"mode": "busy", "number": "1003", "no_answer_s": 10}, "invalid_payload", "no_answer_s"),
    ],
)
def test_bad_forward_payloads_are_refused(fields, code, says):
    with pytest.raises(CommandRejected) as refused:
        decode("forward", {"v": 1, "id": "f9", **fields})
    assert refused.value.code == code and says in refused.value.message
    assert refused.value.request_id == "f9"


def test_dnd_on_off_and_a_bad_value():
    assert decode("dnd", {"v": 1, "id": "d1", "enabled": True}) == SetDoNotDisturb(True, "d1")
    assert decode("dnd", {"v": 1, "id": "d2", "enabled": False}) == SetDoNotDisturb(False, "d2")
    for bad in ({}, {"enabled": "on"}, {"enabled": 1}, {"enabled": None}):
        with pytest.raises(CommandRejected) as refused:
            decode("dnd", {"v": 1, "id": "d3", **bad})
        assert refused.value.code == "invalid_payload" and "'enabled'" in refused.value.message


def test_a_forwarded_call_round_trips_through_the_event_codec():
    forwarded = Forwarded("1003", "user-busy")
    call = CallRecord("in-1", "inbound", "manual", Remote("1002"), NOW, ended_at=NOW,
                      disposition="forwarded", sip_code=302, forwarded_to=forwarded)  # fmt: skip
    payload = encode_event(Event(type="call.ended", ts=NOW, call=call), 3, "d")
    assert json.loads(payload)["call"]["forwarded_to"] == {"number": "1003", "reason": "user-busy"}
    assert decode_event(payload)[0].call.forwarded_to == Forwarded("1003", "user-busy")


def test_the_status_carries_dnd_and_forwarding_only_when_given():
    settings = {
        "dnd": True,
        "forward": {"always": None, "busy": "1003", "no_answer": None, "no_answer_s": 20},
    }
    status = json.loads(encode_status(registered=True, state="idle", extension="1001", firmware="1",
                                      since=NOW, settings=settings))  # fmt: skip
    assert status["dnd"] is True and status["forward"]["busy"] == "1003"
    plain = json.loads(
        encode_status(registered=True, state="idle", extension="1001", firmware="1", since=NOW)
    )
    assert "dnd" not in plain and "forward" not in plain
