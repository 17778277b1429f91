"""The codec: events/replies/status out, command payloads in (with a fuzz of malformed payloads)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_bridge.codec import (
    LAST_WILL,
    MAX_PAYLOAD_BYTES,
    CommandRejected,
    decode_command,
    encode_event,
    encode_reply,
    encode_status,
    format_time,
)
from firmware.commands import CancelDial, Dial, Hangup, Reply
from firmware.events import CallRecord, Event, Remote

NOW = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def dial(payload: object, *, expiry: int | None = None, raw: bytes | None = None) -> object:
    data = raw if raw is not None else json.dumps(payload).encode()
    return decode_command("dial", data, NOW, expiry)


def rejected(kind: str, payload: bytes, expiry: int | None = None) -> CommandRejected:
    with pytest.raises(CommandRejected) as info:
        decode_command(kind, payload, NOW, expiry)
    return info.value


def test_times_are_utc_with_milliseconds() -> None:
    assert format_time(NOW) == "2024-05-01T12:00:00.123Z"
    other_zone = NOW.astimezone(__import__("datetime").timezone(timedelta(hours=2)))
    assert format_time(other_zone) == "2024-05-01T12:00:00.123Z"
    assert format_time(datetime(2024, 5, 1)) == "2024-05-01T00:00:00.000Z"


def ended_call() -> CallRecord:
    return CallRecord(
        call_id="c1",
        direction="outbound",
        origin="crm",
        remote=Remote("1002", "Bob"),
        started_at=NOW,
        sip_call_id="abc@host",
        crm={"ticket": 7},
        answered_at=NOW + timedelta(seconds=3.5),
        ended_at=NOW + timedelta(seconds=63.75),
        disposition="answered",
        sip_code=200,
        reason="BYE",
        hangup_by="remote",
    )


def test_call_ended_carries_the_whole_record() -> None:
    out = json.loads(encode_event(Event(type="call.ended", ts=NOW, call=ended_call()), 42, "dev1"))
    assert out["v"] == 1 and out["seq"] == 42 and out["device_id"] == "dev1" and out["type"] == "call.ended"
    assert out["ts"] == "2024-05-01T12:00:00.123Z"
    call = out["call"]
    assert call["ring_s"] == 3.5 and call["talk_s"] == 60.25
    assert call["crm"] == {"ticket": 7}
    assert call["remote"] == {"number": "1002", "name": "Bob"}
    assert call["answered_at"] == "2024-05-01T12:00:03.623Z"
    assert call["disposition"] == "answered" and call["hangup_by"] == "remote" and call["sip_code"] == 200


def test_missed_call_has_zero_talk_time() -> None:
    call = CallRecord("c2", "inbound", "manual", Remote("555"), NOW, ended_at=NOW + timedelta(seconds=9))
    out = json.loads(encode_event(Event(type="call.ended", call=call), 1, "d"))
    assert (
        out["call"]["ring_s"] == 9.0 and out["call"]["talk_s"] == 0.0 and out["call"]["answered_at"] is None
    )


def test_event_data_is_encoded() -> None:
    event = Event(type="registration.changed", data={"registered": True, "at": NOW})
    out = json.loads(encode_event(event, 3, "d"))
    assert out["data"] == {"registered": True, "at": "2024-05-01T12:00:00.123Z"} and "call" not in out


def test_replies() -> None:
    assert json.loads(encode_reply(Reply.success("r1", status="accepted"))) == {
        "v": 1,
        "id": "r1",
        "ok": True,
        "result": {"status": "accepted"},
    }
    assert json.loads(encode_reply(Reply.failure("r2", "busy", "in a call"))) == {
        "v": 1,
        "id": "r2",
        "ok": False,
        "error": {"code": "busy", "message": "in a call"},
    }


def test_status_and_last_will() -> None:
    out = json.loads(
        encode_status(registered=True, state="idle", extension="1001", firmware="1.2", since=NOW)
    )
    assert out == {
        "v": 1,
        "online": True,
        "registered": True,
        "state": "idle",
        "extension": "1001",
        "firmware": "1.2",
        "since": "2024-05-01T12:00:00.123Z",
    }
    assert json.loads(LAST_WILL) == {"v": 1, "online": False}


def test_dial_with_ttl() -> None:
    cmd = dial(
        {"v": 1, "id": "r1", "number": "+49301234*5#", "ttl_s": 60, "display": "ACME", "crm": {"a": 1}}
    )
    assert cmd == Dial("r1", "+49301234*5#", NOW + timedelta(seconds=60), "crm", "ACME", {"a": 1})


def test_dial_expiry_is_the_earliest_of_ttl_expires_at_and_message_expiry() -> None:
    at = format_time(NOW + timedelta(seconds=30))
    cmd = dial({"id": "r", "number": "1", "ttl_s": 60, "expires_at": at}, expiry=45)
    assert isinstance(cmd, Dial) and cmd.expires_at == datetime.fromisoformat(at.replace("Z", "+00:00"))
    cmd = dial({"id": "r", "number": "1", "ttl_s": 60}, expiry=5)
    assert isinstance(cmd, Dial) and cmd.expires_at == NOW + timedelta(seconds=5)
    cmd = dial({"id": "r", "number": "1"}, expiry=5)
    assert isinstance(cmd, Dial) and cmd.expires_at == NOW + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("payload", "expiry"),
    [
        ({"id": "r", "number": "1", "expires_at": "2024-05-01T11:59:59.000Z"}, None),
        ({"id": "r", "number": "1", "ttl_s": 60}, 0),
    ],
)
def test_dial_already_expired(payload: dict[str, object], expiry: int | None) -> None:
    err = rejected("dial", json.dumps(payload).encode(), expiry)
    assert (err.code, err.request_id) == ("expired", "r")


def test_cancel_and_hangup() -> None:
    assert decode_command("cancel", b'{"v":1,"id":"r9"}', NOW, None) == CancelDial("r9")
    assert decode_command("hangup", b'{"id":"h1"}', NOW, None) == Hangup("h1", None)
    assert decode_command("hangup", b'{"id":"h1","call_id":"c7"}', NOW, None) == Hangup("h1", "c7")


@pytest.mark.parametrize(
    ("kind", "payload", "code", "words", "request_id"),
    [
        ("dial", b"not json", "invalid_payload", "not valid JSON", None),
        ("dial", b"\xff\xfe", "invalid_payload", "not UTF-8", None),
        ("dial", b"[1,2]", "invalid_payload", "JSON object", None),
        ("dial", b'{"number":"1","ttl_s":5}', "invalid_payload", "missing 'id'", None),
        ("dial", b'{"id":5,"number":"1","ttl_s":5}', "invalid_payload", "'id' must be a string", None),
        ("dial", b'{"id":"a/b","number":"1","ttl_s":5}', "invalid_payload", "'id' may contain", None),
        ("dial", b'{"id":"r","ttl_s":5}', "invalid_payload", "missing 'number'", "r"),
        ("dial", b'{"id":"r","number":1002,"ttl_s":5}', "invalid_payload", "'number' must be a string", "r"),
        ("dial", b'{"id":"r","number":"1002"}', "invalid_payload", "'ttl_s' or 'expires_at'", "r"),
        ("dial", b'{"id":"r","number":"1","ttl_s":"5"}', "invalid_payload", "'ttl_s'", "r"),
        ("dial", b'{"id":"r","number":"1","ttl_s":-5}', "invalid_payload", "'ttl_s'", "r"),
        ("dial", b'{"id":"r","number":"1","ttl_s":NaN}', "invalid_payload", "not valid JSON", None),
        ("dial", b'{"id":"r","number":"1","expires_at":"tomorrow"}', "invalid_payload", "'expires_at'", "r"),
        (
            "dial",
            b'{"id":"r","number":"1","expires_at":"2030-01-01T00:00:00"}',
            "invalid_payload",
            "zone",
            "r",
        ),
        ("dial", b'{"id":"r","number":"1","ttl_s":5,"crm":[1]}', "invalid_payload", "'crm'", "r"),
        ("dial", b'{"id":"r","number":"1","ttl_s":5,"display":3}', "invalid_payload", "'display'", "r"),
        ("dial", b'{"id":"r","number":"1","ttl_s":5,"v":2}', "invalid_payload", "'v'", "r"),
        ("dial", b'{"id":"r","number":"sip:1002@evil","ttl_s":5}', "invalid_number", "digits", "r"),
        ("dial", b'{"id":"r","number":"1002&1003","ttl_s":5}', "invalid_number", "digits", "r"),
        ("dial", b'{"id":"r","number":"","ttl_s":5}', "invalid_number", "digits", "r"),
        (
            "dial",
            b'{"id":"r","number":"123456789012345678901234567890123","ttl_s":5}',
            "invalid_number",
            "32",
            "r",
        ),
        ("hangup", b'{"id":"r","call_id":7}', "invalid_payload", "'call_id'", "r"),
        ("reboot", b'{"id":"r"}', "unknown_command", "reboot", "r"),
    ],
)
def test_malformed(kind: str, payload: bytes, code: str, words: str, request_id: str | None) -> None:
    err = rejected(kind, payload)
    assert err.code == code
    assert words in err.message
    assert err.request_id == request_id
    assert err.to_reply().error_code == code


def test_oversized() -> None:
    payload = json.dumps({"id": "r", "number": "1", "ttl_s": 5, "pad": "x" * MAX_PAYLOAD_BYTES}).encode()
    err = rejected("dial", payload)
    assert err.code == "invalid_payload" and "limit" in err.message


def test_messages_do_not_echo_payload_content() -> None:
    secret = "hunter2-password"
    err = rejected("dial", json.dumps({"id": "r", "number": secret, "ttl_s": 5}).encode())
    assert secret not in err.message
    err = rejected("dial", json.dumps({"id": secret + "/x", "number": "1", "ttl_s": 5}).encode())
    assert secret not in err.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
dial_like = st.fixed_dictionaries(
    {},
    optional={
        "v": json_values,
        "id": st.one_of(st.text(max_size=140), json_values),
        "number": st.one_of(st.text(alphabet="0123456789+*#abc:@&; ", max_size=40), json_values),
        "ttl_s": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(), json_values),
        "expires_at": st.one_of(
            st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=30), json_values
        ),
        "display": json_values,
        "crm": json_values,
        "call_id": json_values,
    },
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    dial_like.map(lambda v: json.dumps(v).encode()),
)
CODES = {"invalid_payload", "invalid_number", "unknown_command", "expired"}


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["dial", "cancel", "hangup", "reboot", ""]),
    payload=payloads,
    expiry=st.none() | st.integers(min_value=0, max_value=10**6),
)
def test_fuzz_every_payload_decodes_or_is_rejected_with_a_code(
    kind: str, payload: bytes, expiry: int | None
) -> None:
    try:
        command = decode_command(kind, payload, NOW, expiry)
    except CommandRejected as err:
        assert err.code in CODES
        assert err.message
        assert err.request_id is None or "/" not in err.request_id
        encode_reply(err.to_reply())
        return
    assert isinstance(command, Dial | CancelDial | Hangup)
    if isinstance(command, Dial):
        assert command.number and set(command.number) <= set("0123456789+*#") and len(command.number) <= 32
        assert command.expires_at > NOW
