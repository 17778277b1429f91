"""Commands the phone must refuse, over a real mosquitto to the real daemon: each gets exactly one
reply with the right error, the phone never dials (kamailio sees no INVITE) and never crashes."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from lab.servers.phone import PHONE_PASSWORD
from tests.crm_bridge.crm import Received
from tests.e2e.crm_support import BASE, CrmView, kamailio_invites, start_phone

pytestmark = pytest.mark.e2e


def refused(crm: CrmView, request_id: str) -> dict[str, Any]:
    reply = crm.wait_reply(request_id)
    assert reply["ok"] is False and reply["id"] == request_id, reply
    assert set(reply["error"]) == {"code", "message"} and reply["error"]["message"]
    return reply["error"]


def test_dial_while_in_a_call_is_refused_busy(phone_factory, baresip_factory, mosquitto, crm, kamailio):  # type: ignore[no-untyped-def]
    far = baresip_factory("1002", auto_answer=True)
    phone = start_phone(phone_factory, mosquitto)
    phone.client.hook(True)
    phone.client.keys("1002#")
    far.wait_for_event("CALL_ESTABLISHED", timeout=10)
    phone.wait_mode("in_call")
    invites = kamailio_invites(kamailio)

    request_id = crm.dial("1003", crm={"x": 1})
    assert refused(crm, request_id)["code"] == "busy"
    state = phone.wait_mode("in_call")
    assert state["call"]["remote"] == "1002"
    assert kamailio_invites(kamailio) == invites == [f"sip:1002@{kamailio.domain}"]
    assert not [e for e in crm.events() if e["type"].startswith("click_to_call.")]
    phone.client.hook(False)
    phone.wait_mode("idle")
    assert crm.replies(request_id) == [crm.wait_reply(request_id)]


def test_dial_while_not_registered_is_refused(phone_factory, mosquitto, crm, kamailio):  # type: ignore[no-untyped-def]
    phone = start_phone(phone_factory, mosquitto, password="wrong-pw-55", register_password=PHONE_PASSWORD)
    phone.wait_for(
        lambda s: any(e["type"] == "registration.changed" for e in s["events"]), what="registration attempt"
    )
    assert phone.state()["registered"] is False
    request_id = crm.dial("1002")
    error = refused(crm, request_id)
    assert error["code"] == "not_registered"
    assert "wrong-pw-55" not in json.dumps(crm.wait_reply(request_id))
    assert phone.state()["phone_state"] == "idle"
    assert kamailio_invites(kamailio) == []
    assert "wrong-pw-55" not in phone.log_text()


BAD_NUMBERS = [
    "1002&1003",
    "sip:evil@x",
    "1" * 33,
    "",
    "1002 ",
    "1002;transport=tcp",
    "<sip:1002@127.0.0.2>",
    "\uff11\uff10\uff10\uff12",  # fullwidth digits
    "1002\r\nRoute: <sip:x>",
]


def test_bad_numbers_are_refused_and_never_dialled(phone_factory, mosquitto, crm, kamailio):  # type: ignore[no-untyped-def]
    phone = start_phone(phone_factory, mosquitto)
    for lifted in (False, True):  # with the handset up a valid number would be dialled at once
        phone.client.hook(lifted)
        phone.wait_mode("dialing" if lifted else "idle")
        for number in BAD_NUMBERS:
            request_id = crm.dial(number, crm={"n": number})
            error = refused(crm, request_id)
            assert error["code"] == "invalid_number", (number, error)
            assert not number or number not in error["message"], "the message echoes what was sent"
    phone.client.hook(False)
    state = phone.wait_mode("idle")
    assert kamailio_invites(kamailio) == []
    assert not [e for e in state["events"] if e["type"].startswith(("call.", "click_to_call."))]
    assert not [e for e in crm.events() if e["type"].startswith(("call.", "click_to_call."))]
    replies = [m for m in crm.messages() if m.topic.startswith(f"{BASE}/reply/")]
    assert len(replies) == 2 * len(BAD_NUMBERS), "not exactly one reply per command"


# --- property-based fuzz of command payloads, against the real phone --------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9._:@=~-]{1,20}", fullmatch=True),
    st.text(max_size=20),
    st.just("a" * 129),
    st.just("x/y"),
    st.just("+"),
    json_scalars,
)
numbers = st.one_of(
    st.text(alphabet="0123456789+*#", min_size=0, max_size=40),
    st.text(alphabet="0123456789+*#&:@ ;<>.siptel\\r\\n", max_size=40),
    st.text(max_size=40),
    json_values,
)
times = st.one_of(
    st.just("2000-01-01T00:00:00.000Z"),
    st.just("2999-01-01T00:00:00Z"),
    st.just("2024-05-01T12:00:00"),  # no zone
    st.text(max_size=30),
    json_scalars,
)
WILD = {
    "v": st.one_of(st.just(2), st.just("1"), json_scalars),
    "id": ids,
    "number": numbers,
    "ttl_s": st.one_of(st.integers(-5, 100_000), st.floats(allow_nan=False), json_scalars),
    "expires_at": times,
    "display": st.one_of(st.text(max_size=80), json_values),
    "crm": json_values,
    "call_id": st.one_of(st.text(max_size=20), json_scalars),
}


@st.composite
def command_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed command with up to three fields dropped or replaced by something wild."""
    obj: dict[str, Any] = {
        "v": 1,
        "id": draw(st.from_regex(r"[A-Za-z0-9._:@=~-]{1,24}", fullmatch=True)),
        "number": draw(st.text(alphabet="0123456789+*#", min_size=1, max_size=32)),
        "ttl_s": draw(st.integers(1, 600)),
    }
    if draw(st.booleans()):
        obj["display"] = draw(st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), max_size=64))
    if draw(st.integers(0, 3)) == 0:
        obj["expires_at"] = draw(times)
    if draw(st.integers(0, 3)) == 0:
        obj["number"] = draw(numbers)
    if draw(st.booleans()):
        obj["crm"] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(WILD)))
        if draw(st.booleans()):
            obj.pop(key, None)
        else:
            obj[key] = draw(WILD[key])
    if draw(st.booleans()):
        obj[draw(st.text(max_size=10))] = draw(json_values)  # unknown fields are ignored
    return obj


kinds = st.sampled_from(["dial"] * 6 + ["cancel", "hangup", "reboot", "Dial", "", "dial.x"])


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    choice = draw(st.sampled_from(["object", "object", "object", "json", "bytes", "oversized"]))
    if choice == "object":
        return json.dumps(draw(command_objects())).encode()
    if choice == "json":
        return json.dumps(draw(json_values)).encode()
    if choice == "bytes":
        return draw(st.binary(max_size=64))
    obj = draw(command_objects())
    obj["pad"] = "x" * 4100
    return json.dumps(obj).encode()


def test_fuzzed_commands_each_get_exactly_one_reply_and_never_dial(phone_factory, mosquitto, crm, kamailio):  # type: ignore[no-untyped-def]
    phone = start_phone(phone_factory, mosquitto)
    reply_topic = f"crm-fuzz/{uuid.uuid4().hex[:8]}"
    cleanup_topic = f"{reply_topic}/cleanup"
    crm.client.subscribe(reply_topic)
    crm.client.subscribe(cleanup_topic)
    sent: list[bytes] = []
    outcomes: list[str] = []

    def replies_to(correlation: bytes) -> list[Received]:
        return [m for m in crm.client.on(reply_topic) if m.correlation == correlation]

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(kind=kinds, payload=payloads())
    # The random draws may miss one of the two outcomes the end of the test requires: name both.
    @example(kind="dial", payload=json.dumps({"v": 1, "id": "ok", "number": "1002", "ttl_s": 30}).encode())
    @example(kind="dial", payload=b"{not json")
    def one_command(kind: str, payload: bytes) -> None:
        correlation = uuid.uuid4().bytes
        sent.append(correlation)
        crm.command(kind, payload, response_topic=reply_topic, correlation=correlation)
        crm.client.wait_for(lambda msgs: bool(replies_to(correlation)), timeout=10)
        (message,) = replies_to(correlation)
        reply = message.json
        assert reply["v"] == 1 and isinstance(reply["ok"], bool)
        event("accepted" if reply["ok"] else reply["error"]["code"])
        outcomes.append("accepted" if reply["ok"] else reply["error"]["code"])
        if reply["ok"]:
            # Only a well-formed dial of a valid number can be accepted: it alerts, never dials.
            assert kind == "dial" and reply["result"] == {"status": "accepted"}, reply
            cleanup = uuid.uuid4().bytes
            crm.command(
                "cancel", {"v": 1, "id": reply["id"]}, response_topic=cleanup_topic, correlation=cleanup
            )
            crm.client.wait_for(lambda msgs: any(m.correlation == cleanup for m in msgs), timeout=10)
            phone.wait_mode("idle")  # cancelled, or its time to live ran out first
        else:
            assert reply["error"]["code"] in {
                "invalid_payload",
                "invalid_number",
                "unknown_command",
                "expired",
                "not_found",
            }, reply
            if kind not in ("dial", "cancel", "hangup") and reply["error"]["code"] != "invalid_payload":
                assert reply["error"]["code"] == "unknown_command"
        assert phone.alive()

    one_command()
    assert {"accepted", "invalid_payload"} <= set(outcomes), outcomes

    # A last command through the core: when its reply is in, every earlier reply is too.
    sentinel = uuid.uuid4().bytes
    crm.command("cancel", {"v": 1, "id": "sentinel"}, response_topic=reply_topic, correlation=sentinel)
    crm.client.wait_for(lambda msgs: bool(replies_to(sentinel)), timeout=10)
    time.sleep(0.2)  # let a wrongly duplicated reply arrive, if there were one
    for correlation in sent:
        assert len(replies_to(correlation)) == 1, "not exactly one reply"
    assert len(crm.client.on(reply_topic)) == len(sent) + 1
    assert not [m for m in crm.messages() if m.topic.startswith(f"{BASE}/reply/")], "reply ignored route"
    state = phone.wait_mode("idle")
    assert phone.alive() and state["registered"]
    assert kamailio_invites(kamailio) == []
    assert not [e for e in crm.events() if e["type"].startswith("call.")]
    assert "Traceback" not in phone.log_text()
