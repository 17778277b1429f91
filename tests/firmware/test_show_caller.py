"""``cmd/caller``: the CRM's name for a ringing caller replaces what the display showed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_bridge.codec import CommandRejected, decode_command, encode_caller
from firmware.commands import LiftHandset, ShowCaller
from firmware.effects import SendReply, ShowText
from firmware.events import Remote
from firmware.inputs import CallEnded, IncomingCall
from tests.firmware.test_phone import registered_phone

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_name_replaces_the_display_while_ringing_and_stays_in_the_record() -> None:
    phone = registered_phone()
    phone.send(IncomingCall("in1", "sip-in1", Remote("+4930123", None)))
    assert phone.state.mode == "ringing_in"
    effects = phone.send(ShowCaller("caller-1", "in1", "ACME GmbH"))
    assert [e.text for e in effects if isinstance(e, ShowText)] == ["ACME GmbH"]
    assert phone.reply().ok and phone.reply().result == {"status": "shown", "call_id": "in1"}
    phone.send(LiftHandset())
    phone.send(CallEnded("in1", by_remote=True, code=200, reason="BYE"), after=2)
    (ended,) = phone.events()
    assert ended.call.remote == Remote("+4930123", "ACME GmbH")


def test_a_name_for_another_or_a_finished_call_is_refused() -> None:
    phone = registered_phone()
    phone.send(ShowCaller("caller-2", "in9", "Nobody"))
    assert phone.reply().error_code == "not_found"
    assert not [e for e in phone.effects if isinstance(e, ShowText)]
    assert all(isinstance(e, SendReply) for e in phone.effects)


def test_codec_round_trip_and_refusals() -> None:
    command = decode_command("caller", encode_caller("caller-3", "in1", "+4930", "Müller AG"), NOW)
    assert command == ShowCaller("caller-3", "in1", "Müller AG")
    for payload, problem in [
        (b'{"v":1,"id":"x","name":"A"}', "missing 'call_id'"),
        (b'{"v":1,"id":"x","call_id":"in1","name":"\\u0007"}', "printable"),
        (b'{"v":1,"id":"x","call_id":"in1"}', "printable"),
    ]:
        with pytest.raises(CommandRejected, match=problem):
            decode_command("caller", payload, NOW)
