"""Which INVITEs count as a PBX click-to-call: the right header, from a trusted PBX only."""

from __future__ import annotations

import pytest

import sip_stack
from firmware import inputs
from firmware.sip_inputs import asks_auto_answer, is_trusted, to_input


@pytest.mark.parametrize(
    "headers",
    [
        {"Call-Info": "<sip:pbx.example>;answer-after=0"},
        {"call-info": "<sip:pbx.example>; Answer-After = 3"},
        {"Alert-Info": "<http://www.notused.com>;info=alert-autoanswer"},
        {"Alert-Info": "auto-answer"},
        {"Answer-Mode": "Auto"},
        {"Answer-Mode": "auto;require"},
    ],
)
def test_auto_answer_headers_are_recognised(headers: dict[str, str]) -> None:
    assert asks_auto_answer(headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Call-Info": "<sip:pbx.example>;purpose=icon"},
        {"Alert-Info": "<bellcore-dr2>"},
        {"Answer-Mode": "Manual"},
    ],
)
def test_other_headers_ring_as_usual(headers: dict[str, str]) -> None:
    assert not asks_auto_answer(headers)


@pytest.mark.parametrize(
    ("source", "trusted", "expected"),
    [
        ("127.0.0.1:5060", ["127.0.0.1"], True),
        ("127.0.0.2:5060", ["127.0.0.1"], False),
        ("10.1.2.3", ["10.1.0.0/16"], True),
        ("[::1]:5060", ["::1"], True),
        ("pbx.office.lan", ["PBX.office.lan"], True),
        ("127.0.0.1", [], False),
        ("127.0.0.1", ["not an address"], False),
    ],
)
def test_trust_is_by_source_address(source: str, trusted: list[str], expected: bool) -> None:
    assert is_trusted(source, trusted) is expected


def incoming(source: str) -> sip_stack.IncomingCall:
    return sip_stack.IncomingCall(
        call_id="in-1",
        sip_call_id="abc@pbx",
        remote_number="1002",
        remote_name="Reception",
        remote_uri="sip:1002@pbx",
        source_host=source,
        headers={"Call-Info": "<sip:pbx>;answer-after=0"},
    )


def test_trusted_pbx_click_to_call_becomes_auto_answer() -> None:
    result = to_input(incoming("127.0.0.1:5060"), ["127.0.0.1"])
    assert isinstance(result, inputs.IncomingCall)
    assert result.auto_answer is True
    assert result.remote.number == "1002"
    assert result.remote.name == "Reception"


def test_same_headers_from_elsewhere_ring_as_an_ordinary_call() -> None:
    result = to_input(incoming("127.0.0.2:5060"), ["127.0.0.1"])
    assert isinstance(result, inputs.IncomingCall)
    assert result.auto_answer is False


def test_call_ended_without_code_has_none() -> None:
    result = to_input(sip_stack.CallEnded("out-1", 0, "", by_remote=False), [])
    assert result == inputs.CallEnded("out-1", None, None, by_remote=False)
