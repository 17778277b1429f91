"""Code and document in step: the codec's real outputs validate against docs/mqtt/asyncapi.yaml,
the document is valid AsyncAPI 3 (official parser when node is available, plus a structural check of
our own that always runs), and the examples in docs/MQTT.md validate too."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest

from crm_bridge.codec import ERROR_CODES, LAST_WILL, encode_event, encode_reply, encode_status
from firmware.commands import Reply
from firmware.events import CallRecord, Disposition, Event, EventType, Forwarded, Remote, Transfer

jsonschema = pytest.importorskip("jsonschema")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI = ROOT / "docs" / "mqtt" / "asyncapi.yaml"
MQTT_MD = ROOT / "docs" / "MQTT.md"
NODE_PROJECT = Path(__file__).parent / "asyncapi"
NOW = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.safe_load(ASYNCAPI.read_text())


def validator(doc: dict[str, Any], name: str) -> Any:
    root = {**doc, "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft7Validator(root, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def check(doc: dict[str, Any], name: str, payload: bytes) -> None:
    errors = [e.message for e in validator(doc, name).iter_errors(json.loads(payload))]
    assert not errors, f"{name}: {errors} in {payload!r}"


def sample_call(ended: bool) -> CallRecord:
    return CallRecord(
        call_id="c1",
        direction="inbound",
        origin="pbx",
        remote=Remote("1002", None),
        started_at=NOW,
        sip_call_id="x@y",
        crm={"k": "v"} if ended else None,
        answered_at=NOW + timedelta(seconds=2) if ended else None,
        ended_at=NOW + timedelta(seconds=5) if ended else None,
        disposition="answered" if ended else None,
        sip_code=200 if ended else None,
        reason="BYE" if ended else None,
        hangup_by="remote" if ended else None,
    )


@pytest.mark.parametrize("event_type", get_args(EventType))
def test_every_event_type_matches_the_schema(doc: dict[str, Any], event_type: str) -> None:
    call = sample_call(event_type == "call.ended") if event_type.startswith("call.") else None
    data = {"request_id": "r1", "number": "1002", "crm": {"k": 1}} if "click_to_call" in event_type else {}
    check(doc, "Event", encode_event(Event(type=event_type, ts=NOW, call=call, data=data), 7, "dev1"))  # type: ignore[arg-type]


def test_calls_linked_by_a_transfer_match_the_schema(doc: dict[str, Any]) -> None:
    link = Transfer("xfer-1", Remote("1003", "Carol"))
    for call in (
        replace(sample_call(True), transferred_to=link),
        replace(sample_call(False), transferred_from=link),
    ):
        payload = encode_event(Event(type="call.ended", ts=NOW, call=call), 8, "dev1")
        check(doc, "Event", payload)
        encoded = json.loads(payload)["call"]
        assert {"call_id": "xfer-1", "remote": {"number": "1003", "name": "Carol"}} in encoded.values()
    plain = json.loads(encode_event(Event(type="call.ended", ts=NOW, call=sample_call(True)), 9, "d"))
    assert "transferred_to" not in plain["call"] and "transferred_from" not in plain["call"]


def test_a_forwarded_call_and_the_forwarding_status_match_the_schema(doc: dict[str, Any]) -> None:
    call = replace(sample_call(True), answered_at=None, disposition="forwarded", sip_code=302,
                   forwarded_to=Forwarded("0170123456", "no-answer"))  # fmt: skip
    check(doc, "Event", encode_event(Event(type="call.ended", ts=NOW, call=call), 9, "dev1"))
    settings = {
        "dnd": True,
        "forward": {"always": None, "busy": "1003", "no_answer": None, "no_answer_s": 20},
    }
    status = encode_status(registered=True, state="idle", extension="1001", firmware="1", since=NOW,
                           settings=settings)  # fmt: skip
    check(doc, "Status", status)
    check(doc, "Reply", encode_reply(Reply.success("f1", status="set", **settings)))
    disposition = doc["components"]["schemas"]["Call"]["properties"]["disposition"]["oneOf"][0]["enum"]
    assert set(disposition) == set(get_args(Disposition))


def test_the_schema_knows_exactly_the_event_types_of_the_code(doc: dict[str, Any]) -> None:
    assert set(doc["components"]["schemas"]["Event"]["properties"]["type"]["enum"]) == set(
        get_args(EventType)
    )


def test_a_call_event_without_call_object_is_refused_by_the_schema(doc: dict[str, Any]) -> None:
    assert list(
        validator(doc, "Event").iter_errors(json.loads(encode_event(Event(type="call.ended"), 1, "d")))
    )


def test_replies_match_the_schema(doc: dict[str, Any]) -> None:
    check(doc, "Reply", encode_reply(Reply.success("r1", status="accepted")))
    for code in ERROR_CODES:
        check(doc, "Reply", encode_reply(Reply.failure("r1", code, "because")))
    check(doc, "Reply", encode_reply(Reply.failure("", "invalid_payload", "missing 'id'")))
    schema_codes = doc["components"]["schemas"]["ReplyError"]["properties"]["error"]["properties"]["code"][
        "enum"
    ]
    assert set(schema_codes) == set(ERROR_CODES)


def test_status_and_will_match_the_schema(doc: dict[str, Any]) -> None:
    check(
        doc, "Status", encode_status(registered=True, state="idle", extension="1001", firmware="1", since=NOW)
    )
    check(doc, "Status", LAST_WILL)


def test_examples_in_the_human_page_validate(doc: dict[str, Any]) -> None:
    """Each ```json block of docs/MQTT.md is preceded by a line `<!-- schema: Name -->`."""
    blocks = re.findall(r"<!-- schema: (\w+) -->\s*```json\n(.*?)```", MQTT_MD.read_text(), re.S)
    assert len(blocks) >= 8
    for name, text in blocks:
        check(doc, name, text.encode())


# A structural schema of our own for the parts of AsyncAPI 3.0 this document uses; always runs.
_STRUCTURE = {
    "type": "object",
    "required": ["asyncapi", "info", "channels", "operations", "components"],
    "properties": {
        "asyncapi": {"const": "3.0.0"},
        "info": {"type": "object", "required": ["title", "version"]},
        "channels": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["address", "messages"],
                "properties": {"address": {"type": "string", "pattern": "^[^/#+].*[^/]$"}},
            },
        },
        "operations": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["action", "channel"],
                "properties": {"action": {"enum": ["send", "receive"]}},
            },
        },
    },
}


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_asyncapi_structure_and_references(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, _STRUCTURE)
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    for ref in refs:
        _resolve(doc, ref)
    for name, channel in doc["channels"].items():
        params = set(re.findall(r"{(\w+)}", channel["address"]))
        assert params == set(channel.get("parameters", {})), name
    for schema in doc["components"]["schemas"].values():
        jsonschema.Draft7Validator.check_schema(schema)


def test_asyncapi_document_passes_the_official_parser() -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not installed: the official AsyncAPI parser cannot run")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deskphone-asyncapi-check"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "validate.mjs"):
        shutil.copy(NODE_PROJECT / name, cache / name)
    if not (cache / "node_modules" / "@asyncapi" / "parser").exists():
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=cache, check=True, timeout=300
        )
    result = subprocess.run(
        [node, "validate.mjs", str(ASYNCAPI)], cwd=cache, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
