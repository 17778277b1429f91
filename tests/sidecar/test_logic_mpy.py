"""The busy light's state logic under real MicroPython (the WebAssembly port under Node.js).

The LED driver and the clock are JavaScript functions (``tests/sidecar/node/host.mjs``); each
scenario feeds MQTT messages as umqtt would (bytes) and checks what the driver was told to show.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import run_host

OFF, GREEN, AMBER, RED = [0, 0, 0], [0, 255, 0], [255, 120, 0], [255, 0, 0]
SINCE = "2024-05-01T08:00:00.000Z"
LATER = "2024-05-01T09:00:00.000Z"
A, B, C = "desk-a", "desk-b", "desk-c"


def status(state: str = "idle", registered: bool = True, since: str = SINCE) -> dict[str, Any]:
    return {
        "v": 1,
        "online": True,
        "registered": registered,
        "state": state,
        "extension": "1001",
        "firmware": "0.1.0",
        "since": since,
    }


WILL = {"v": 1, "online": False}


def event(
    etype: str, device: str = A, ts: str = LATER, call_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1,
        "event_id": "00000000-0000-4000-8000-000000000000",
        "seq": 1,
        "type": etype,
        "ts": ts,
        "device_id": device,
        "data": extra.pop("data", {}),
    }
    if etype.startswith("call."):
        body["call"] = {"call_id": call_id or "c-1", "direction": "inbound", **extra}
    return body


def msg(device: str, kind: str, body: Any, t: int | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {
        "topic": f"deskphone/{device}/{kind}",
        "payload": body if isinstance(body, str) else json.dumps(body),
    }
    if t is not None:
        step["t"] = t
    return step


def run(node: str, scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = run_host(node, "cases", stdin=json.dumps(scenarios))["results"]
    for result in results:
        for step in result["steps"]:
            assert step["error"] is None, step["error"]
    return results


# --- every status state ---------------------------------------------------------------------------

STATUS_TABLE = [
    (status("idle"), GREEN, "idle"),
    (status("ringing"), AMBER, "ringing"),
    (status("ringing_in"), AMBER, "ringing"),
    (status("alerting"), AMBER, "ringing"),
    (status("busy"), RED, "busy"),
    (status("dialing"), RED, "busy"),
    (status("outgoing"), RED, "busy"),
    (status("in_call"), RED, "busy"),
    (status("ended"), RED, "busy"),
    (status("idle", registered=False), OFF, "unregistered"),
    (status("busy", registered=False), OFF, "unregistered"),
    (WILL, OFF, "offline"),
]


def test_every_status_state(node: str) -> None:
    scenarios = [
        {"config": {"phones": [A]}, "steps": [msg(A, "status", body, t=0)]} for body, _, _ in STATUS_TABLE
    ]
    for (body, colour, kind), result in zip(STATUS_TABLE, run(node, scenarios), strict=True):
        step = result["steps"][0]
        assert step["kinds"] == [kind], body
        assert step["pixels"] == [colour], body
        assert result["counters"]["applied"] == 1


def test_nothing_heard_is_off_and_subscriptions_are_exact(node: str) -> None:
    [result] = run(node, [{"config": {"phones": [A, B], "topic_prefix": "acme/phones"}, "steps": [{"t": 0}]}])
    assert result["steps"][0]["kinds"] == ["offline", "offline"]
    assert result["subscriptions"] == [
        "acme/phones/desk-a/status",
        "acme/phones/desk-a/events",
        "acme/phones/desk-b/status",
        "acme/phones/desk-b/events",
    ]


# --- every event type, from each starting state -----------------------------------------------------

# (event, starting status state, expected kind afterwards)
EVENT_TABLE = [
    (event("hook.offhook"), "idle", "busy"),
    (event("hook.offhook"), "ringing", "busy"),
    (event("hook.onhook"), "busy", "idle"),
    (event("registration.changed", data={"registered": False}), "idle", "unregistered"),
    (event("registration.changed", data={"registered": True}), "idle", "idle"),
    (event("click_to_call.alerting", data={"request_id": "r"}), "idle", "ringing"),
    (event("click_to_call.alerting", data={"request_id": "r"}), "busy", "busy"),
    (event("click_to_call.expired", data={"request_id": "r"}), "ringing", "idle"),
    (event("click_to_call.cancelled", data={"request_id": "r"}), "ringing", "idle"),
    (event("click_to_call.expired", data={"request_id": "r"}), "busy", "busy"),
    (event("call.incoming"), "idle", "ringing"),
    (event("call.incoming", call_id="c-2"), "busy", "busy"),  # a second call: the phone refuses it
    (event("call.outgoing", direction="outbound"), "idle", "busy"),
    (event("call.ringing", direction="outbound"), "busy", "busy"),
    (event("call.answered"), "ringing", "busy"),
    (event("call.ended", disposition="answered"), "busy", "idle"),
    (event("call.ended", disposition="missed"), "ringing", "idle"),
    (event("call.ended", call_id="c-9", disposition="rejected"), "busy", "busy"),  # the refused second call
]


@pytest.mark.parametrize("case", range(len(EVENT_TABLE)))
def test_every_event_type(node: str, case: int) -> None:
    body, start, expected = EVENT_TABLE[case]
    steps = [msg(A, "status", status(start), t=0), msg(A, "events", body, t=100)]
    [result] = run(node, [{"config": {"phones": [A]}, "steps": steps}])
    assert result["steps"][1]["kinds"] == [expected], (body["type"], start)
    assert result["counters"]["applied"] == 2
    colour = {"idle": GREEN, "busy": RED, "ringing": AMBER, "unregistered": OFF}[expected]
    assert result["steps"][1]["pixels"] == [colour]


def test_the_event_table_covers_every_type_of_the_contract() -> None:
    import yaml  # the contract's own list of event types

    from .conftest import REPO

    spec = yaml.safe_load((REPO / "docs" / "mqtt" / "asyncapi.yaml").read_text())
    types: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "type" in node and isinstance(node["type"], dict) and "enum" in node["type"]:
                types.update(node["type"]["enum"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert types, "no event type enum found in docs/mqtt/asyncapi.yaml"
    assert types == {body["type"] for body, _, _ in EVENT_TABLE}


def test_a_whole_incoming_call_and_the_will(node: str) -> None:
    steps = [
        msg(A, "status", status("idle"), t=0),
        msg(A, "events", event("call.incoming", ts="2024-05-01T09:00:00.000Z"), t=1000),
        {"t": 1399},
        {"t": 1400},
        {"t": 1800},  # blinking: bright half first, then dark, then bright
        msg(A, "status", status("ringing", since="2024-05-01T09:00:00.000Z"), t=1900),
        msg(A, "events", event("hook.offhook", ts="2024-05-01T09:00:05.000Z"), t=2000),
        msg(A, "events", event("call.answered", ts="2024-05-01T09:00:05.010Z"), t=2010),
        msg(A, "status", status("busy", since="2024-05-01T09:00:05.000Z"), t=2020),
        {"t": 2500},
        msg(A, "events", event("call.ended", ts="2024-05-01T09:01:00.000Z", disposition="answered"), t=3000),
        msg(A, "status", status("idle", since="2024-05-01T09:01:00.000Z"), t=3010),
        msg(A, "status", WILL, t=4000),
    ]
    [result] = run(node, [{"config": {"phones": [A], "blink_ms": 400}, "steps": steps}])
    pixels = [s["pixels"][0] for s in result["steps"]]
    assert pixels == [GREEN, AMBER, AMBER, OFF, AMBER, AMBER, RED, RED, RED, RED, GREEN, GREEN, OFF]
    shows = [s["shows"] for s in result["steps"]]
    assert shows == [1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 1, 0, 1]  # the driver is told only about changes
    assert result["counters"]["stale"] == 0


def test_stale_events_are_ignored(node: str) -> None:
    """Events not newer than the status's ``since`` (e.g. replayed from the phone's outbox after a
    restart) do not move the light; events while the phone is offline neither."""
    steps = [
        msg(A, "status", status("idle", since="2024-05-01T12:00:00.000Z"), t=0),
        msg(A, "events", event("call.incoming", ts="2024-05-01T11:59:59.999Z"), t=10),
        msg(A, "events", event("hook.offhook", ts="2024-05-01T12:00:00.000Z"), t=20),
        msg(A, "status", WILL, t=30),
        msg(A, "events", event("hook.offhook", ts="2024-05-01T13:00:00.000Z"), t=40),
    ]
    [result] = run(node, [{"config": {"phones": [A]}, "steps": steps}])
    assert [s["kinds"][0] for s in result["steps"]] == ["idle", "idle", "idle", "offline", "offline"]
    assert result["counters"]["stale"] == 3


def test_several_phones_on_one_strip(node: str) -> None:
    steps = [
        msg(A, "status", status("idle"), t=0),
        msg(B, "status", status("busy"), t=0),
        msg(C, "events", event("call.incoming", device=C), t=0),  # no status yet: events say it is online
        msg(B, "status", WILL, t=10),
        msg("desk-x", "status", status("busy"), t=20),  # not watched
    ]
    [result] = run(node, [{"config": {"phones": [A, B, C]}, "steps": steps}])
    assert result["steps"][2]["pixels"] == [GREEN, RED, AMBER]
    assert result["steps"][3]["pixels"] == [GREEN, OFF, AMBER]
    assert result["steps"][4]["returned"] is False and result["steps"][4]["shows"] == 0
    assert result["counters"]["foreign"] == 1
    assert result["subscriptions"][-2:] == ["deskphone/desk-c/status", "deskphone/desk-c/events"]


def test_a_single_led_shows_the_most_urgent_phone(node: str) -> None:
    steps = [
        msg(A, "status", status("idle"), t=0),
        msg(B, "status", status("busy"), t=0),
        msg(C, "status", status("ringing"), t=0),
        msg(C, "status", status("idle"), t=10),
        msg(B, "status", status("idle"), t=20),
    ]
    [result] = run(node, [{"config": {"phones": [A, B, C], "pixels": 1}, "steps": steps}])
    assert [s["pixels"] for s in result["steps"]] == [[GREEN], [RED], [AMBER], [RED], [GREEN]]


def test_colour_plan_and_blink_from_config(node: str) -> None:
    config = {
        "phones": [A],
        "colours": {"busy": [0, 0, 255], "idle": [1, 2, 3]},
        "blink": ["busy"],
        "blink_ms": 100,
    }
    steps = [
        msg(A, "status", status("idle"), t=0),
        msg(A, "status", status("busy"), t=50),
        {"t": 149},
        {"t": 150},
    ]
    [result] = run(node, [{"config": config, "steps": steps}])
    assert [s["pixels"] for s in result["steps"]] == [[[1, 2, 3]], [[0, 0, 255]], [[0, 0, 255]], [OFF]]


MALFORMED = [
    ("status", "not json"),
    ("status", ""),
    ("status", "[]"),
    ("status", '"idle"'),
    ("status", '{"online": true, "registered": true, "state": "busy"}'),  # no v
    ("status", '{"v": 1, "online": "yes"}'),
    ("status", '{"v": 1, "online": true, "registered": 1, "state": "busy"}'),
    ("status", '{"v": 1, "online": true, "registered": true, "state": 5}'),
    ("status", '{"v": 1, "online": true, "registered": true, "state": "busy", "since": 7}'),
    ("events", '{"v": 1, "type": 3}'),
    ("events", '{"v": 1, "type": "call.incoming"}'),  # no call object
    ("events", '{"v": 1, "type": "call.ended", "call": {"call_id": 4}}'),
    ("events", '{"v": 1, "type": "registration.changed", "data": {"registered": "no"}}'),
    ("events", '{"v": 1, "type": "hook.offhook", "device_id": "desk-b"}'),  # another phone's event
    ("events", '{"v": 1, "type": "hook.offhook", "data": []}'),
    ("events", "{" * 5000),
]
UNKNOWN = [
    ("status", '{"v": 2, "online": true, "registered": true, "state": "busy"}'),
    ("status", '{"v": 1, "online": true, "registered": true, "state": "on_the_moon"}'),
    ("events", '{"v": 1, "type": "call.transferred", "call": {"call_id": "c"}}'),
]


def test_malformed_and_unknown_messages_are_counted_never_applied(node: str) -> None:
    steps = [msg(A, "status", status("idle"), t=0)]
    steps += [msg(A, kind, payload, t=10) for kind, payload in MALFORMED + UNKNOWN]
    steps += [{"topic": "deskphone/desk-a/status", "payload_b64": "/w==", "t": 20}]  # not UTF-8
    [result] = run(node, [{"config": {"phones": [A]}, "steps": steps}])
    assert all(s["returned"] is False and s["kinds"] == ["idle"] for s in result["steps"][1:])
    counters = result["counters"]
    assert counters["malformed"] == len(MALFORMED) + 1
    assert counters["unknown"] == len(UNKNOWN)
    assert counters["applied"] == 1 and counters["errors"] == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzz_of_malformed_payloads_never_escapes(node: str, seed: int) -> None:
    result = run_host(node, "fuzz", str(seed), "3000")
    assert result["escaped"] == []
    assert result["returned"] == {"boolean": 3000}
    counters = result["counters"]
    ignored = sum(counters[k] for k in ("malformed", "unknown", "foreign", "stale", "errors"))
    assert counters["received"] == counters["applied"] + ignored == 3001
    assert counters["errors"] == 0, "a message reached the catch-all: it should be classified"
    assert counters["malformed"] > 1000 and counters["foreign"] > 0
    assert result["alive"] == [True, "busy"]
