"""The MQTT JSON of contract version 1: the one place it is written and read.

Out: events, replies and status are encoded here (``encode_event``, ``encode_reply``,
``encode_status``, ``LAST_WILL``). In: command payloads are decoded and validated into
``firmware.commands`` objects by ``decode_command``, or refused with a ``CommandRejected`` that carries
the reply's error code. Nothing a payload contains is trusted, and no secret is ever part of a message.

The CRM's side of the same contract (the gateway uses it): ``encode_dial`` writes ``cmd/dial``,
``decode_event`` and ``decode_reply`` read what the phone publishes, raising ``ContractError``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from firmware.commands import (
    FORWARD_MODES,
    CancelDial,
    Command,
    Dial,
    Hangup,
    Reply,
    SetDoNotDisturb,
    SetForward,
    ShowCaller,
)
from firmware.events import SCHEMA_VERSION, CallRecord, Event, Forwarded, Remote, Transfer

MAX_PAYLOAD_BYTES = 4096
MAX_NUMBER_LEN = 32
MAX_ID_LEN = 128
MAX_DISPLAY_LEN = 64
MAX_TTL_S = 86_400
COMMAND_KINDS = ("dial", "cancel", "hangup", "caller", "forward", "dnd")
MAX_NO_ANSWER_S = 120
FORWARD_REASONS = ("unconditional", "user-busy", "no-answer")

_NUMBER_RE = re.compile(r"[0-9+*#]+")
# A request id becomes a topic level (reply/<id>): no MQTT wildcards, separators or control characters.
_ID_RE = re.compile(r"[A-Za-z0-9._:@=~-]+")

# Error codes of the contract.
INVALID_PAYLOAD = "invalid_payload"
INVALID_NUMBER = "invalid_number"
UNKNOWN_COMMAND = "unknown_command"
EXPIRED = "expired"
BUSY = "busy"
NOT_REGISTERED = "not_registered"
NOT_FOUND = "not_found"
ERROR_CODES = (INVALID_PAYLOAD, INVALID_NUMBER, UNKNOWN_COMMAND, EXPIRED, BUSY, NOT_REGISTERED, NOT_FOUND)

LAST_WILL = json.dumps({"v": SCHEMA_VERSION, "online": False}, separators=(",", ":")).encode()


class CommandRejected(ValueError):
    """A command payload that cannot be carried out; ``code`` is the reply's error code."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id

    def to_reply(self) -> Reply:
        return Reply.failure(self.request_id or "", self.code, self.message)


# --- out --------------------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def call_to_dict(call: CallRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "call_id": call.call_id,
        "sip_call_id": call.sip_call_id,
        "direction": call.direction,
        "origin": call.origin,
        "remote": {"number": call.remote.number, "name": call.remote.name},
        "crm": call.crm,
        "started_at": format_time(call.started_at),
        "answered_at": _time_or_none(call.answered_at),
        "ended_at": _time_or_none(call.ended_at),
        "ring_s": call.ring_s,
        "talk_s": call.talk_s,
        "disposition": call.disposition,
        "sip_code": call.sip_code,
        "reason": call.reason,
        "hangup_by": call.hangup_by,
    }
    # Added within contract v1: present only on calls that a transfer links.
    if call.transferred_from is not None:
        out["transferred_from"] = _transfer_to_dict(call.transferred_from)
    if call.transferred_to is not None:
        out["transferred_to"] = _transfer_to_dict(call.transferred_to)
    if call.forwarded_to is not None:  # added within v1: only on a call the phone forwarded
        out["forwarded_to"] = {"number": call.forwarded_to.number, "reason": call.forwarded_to.reason}
    return out


def _transfer_to_dict(transfer: Transfer) -> dict[str, Any]:
    remote = transfer.remote
    return {"call_id": transfer.call_id, "remote": {"number": remote.number, "name": remote.name}}


def event_to_dict(event: Event, seq: int, device_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "v": event.v,
        "event_id": event.event_id,
        "seq": seq,
        "type": event.type,
        "ts": format_time(event.ts),
        "device_id": device_id,
    }
    if event.call is not None:
        out["call"] = call_to_dict(event.call)
    out["data"] = _jsonable(event.data)
    return out


def encode_event(event: Event, seq: int, device_id: str) -> bytes:
    return _dumps(event_to_dict(event, seq, device_id))


def encode_reply(reply: Reply) -> bytes:
    out: dict[str, Any] = {"v": SCHEMA_VERSION, "id": reply.request_id or None, "ok": reply.ok}
    if reply.ok:
        out["result"] = _jsonable(reply.result)
    else:
        out["error"] = {"code": reply.error_code or INVALID_PAYLOAD, "message": reply.error_message or ""}
    return _dumps(out)


def encode_status(
    *,
    registered: bool,
    state: str,
    extension: str,
    firmware: str,
    since: datetime,
    online: bool = True,
    settings: dict[str, Any] | None = None,
) -> bytes:
    """``settings`` (added within v1): ``dnd`` and ``forward``, what sends the phone's calls elsewhere."""
    out: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "online": online,
        "registered": registered,
        "state": state,
        "extension": extension,
        "firmware": firmware,
        "since": format_time(since),
    }
    return _dumps(out | (settings or {}))


def _jsonable(value: Any) -> Any:
    """Event data and reply results may hold datetimes; everything else must already be JSON."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# --- in ---------------------------------------------------------------------------------------------


def decode_command(
    kind: str, payload: bytes, received_at: datetime, message_expiry_s: int | None = None
) -> Command:
    """Decode the payload of ``cmd/<kind>`` into a command, or raise ``CommandRejected``.

    ``received_at`` is when the phone got the message; ``message_expiry_s`` the MQTT 5 message expiry
    interval as delivered (the broker has already taken off the time the message waited).
    """
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandRejected(
            INVALID_PAYLOAD, f"payload is {len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}"
        )
    obj = _parse_object(payload)
    request_id = _request_id(obj)
    if kind not in COMMAND_KINDS:
        raise CommandRejected(
            UNKNOWN_COMMAND,
            f"unknown command {_shorten(kind)!r}; known: {', '.join(COMMAND_KINDS)}",
            request_id,
        )
    if request_id is None:
        raise CommandRejected(INVALID_PAYLOAD, _id_problem(obj))
    version = obj.get("v", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:
        raise CommandRejected(INVALID_PAYLOAD, f"'v' must be {SCHEMA_VERSION}", request_id)
    if kind == "dial":
        return _decode_dial(obj, request_id, received_at, message_expiry_s)
    if kind == "cancel":
        return CancelDial(request_id=request_id)
    if kind == "caller":
        return _decode_caller(obj, request_id)
    if kind == "forward":
        return _decode_forward(obj, request_id)
    if kind == "dnd":
        return _decode_dnd(obj, request_id)
    call_id = _optional_str(obj, "call_id", request_id, MAX_ID_LEN)
    return Hangup(request_id=request_id, call_id=call_id)


def _parse_object(payload: bytes) -> dict[str, Any]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandRejected(INVALID_PAYLOAD, "payload is not UTF-8") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise CommandRejected(INVALID_PAYLOAD, "payload is not valid JSON") from None
    if not isinstance(obj, dict):
        raise CommandRejected(INVALID_PAYLOAD, f"payload must be a JSON object, not {_json_type(obj)}")
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _request_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("id")
    if isinstance(value, str) and len(value) <= MAX_ID_LEN and _ID_RE.fullmatch(value):
        return value
    return None


def _id_problem(obj: dict[str, Any]) -> str:
    if "id" not in obj:
        return "missing 'id'"
    value = obj["id"]
    if not isinstance(value, str):
        return f"'id' must be a string, not {_json_type(value)}"
    if not value:
        return "'id' must not be empty"
    if len(value) > MAX_ID_LEN:
        return f"'id' is longer than {MAX_ID_LEN} characters"
    return "'id' may contain only letters, digits and . _ : @ = ~ -"


def _decode_dial(
    obj: dict[str, Any], request_id: str, received_at: datetime, message_expiry_s: int | None
) -> Dial:
    if "number" not in obj:
        raise CommandRejected(INVALID_PAYLOAD, "missing 'number'", request_id)
    number = obj["number"]
    if not isinstance(number, str):
        raise CommandRejected(
            INVALID_PAYLOAD, f"'number' must be a string, not {_json_type(number)}", request_id
        )
    if not number or len(number) > MAX_NUMBER_LEN or not _NUMBER_RE.fullmatch(number):
        raise CommandRejected(
            INVALID_NUMBER,
            f"'number' must be 1 to {MAX_NUMBER_LEN} characters of digits, '+', '*' and '#'",
            request_id,
        )
    display = _optional_str(obj, "display", request_id, MAX_DISPLAY_LEN)
    if display is not None and not display.isprintable():
        raise CommandRejected(INVALID_PAYLOAD, "'display' must not contain control characters", request_id)
    crm = obj.get("crm")
    if crm is not None and not isinstance(crm, dict):
        raise CommandRejected(INVALID_PAYLOAD, f"'crm' must be an object, not {_json_type(crm)}", request_id)
    expires_at = _expiry(obj, request_id, received_at, message_expiry_s)
    if expires_at <= received_at:
        raise CommandRejected(EXPIRED, f"the request expired at {format_time(expires_at)}", request_id)
    return Dial(
        request_id=request_id,
        number=number,
        expires_at=expires_at,
        origin="crm",
        display=display,
        crm=crm,
    )


def _decode_caller(obj: dict[str, Any], request_id: str) -> ShowCaller:
    call_id = _optional_str(obj, "call_id", request_id, MAX_ID_LEN)
    name = _optional_str(obj, "name", request_id, MAX_DISPLAY_LEN)
    if not call_id:
        raise CommandRejected(INVALID_PAYLOAD, "missing 'call_id'", request_id)
    if not name or not name.isprintable():
        raise CommandRejected(INVALID_PAYLOAD, "'name' must be 1 to 64 printable characters", request_id)
    return ShowCaller(request_id=request_id, call_id=call_id, name=name)


def _decode_forward(obj: dict[str, Any], request_id: str) -> SetForward:
    mode = obj.get("mode")
    if mode not in FORWARD_MODES:
        raise CommandRejected(
            INVALID_PAYLOAD, f"'mode' must be one of {', '.join(FORWARD_MODES)}", request_id
        )
    if "number" not in obj:
        raise CommandRejected(INVALID_PAYLOAD, "missing 'number' (null stops forwarding)", request_id)
    number = obj["number"]
    if number is not None and not isinstance(number, str):
        raise CommandRejected(
            INVALID_PAYLOAD, f"'number' must be a string or null, not {_json_type(number)}", request_id
        )
    if number is not None and not (len(number) <= MAX_NUMBER_LEN and _NUMBER_RE.fullmatch(number)):
        raise CommandRejected(
            INVALID_NUMBER,
            f"'number' must be 1 to {MAX_NUMBER_LEN} characters of digits, '+', '*' and '#'",
            request_id,
        )
    seconds = obj.get("no_answer_s")
    if seconds is not None and (
        type(seconds) is not int or not 1 <= seconds <= MAX_NO_ANSWER_S or mode != "no_answer"
    ):
        raise CommandRejected(
            INVALID_PAYLOAD,
            f"'no_answer_s' must be a whole number of seconds, 1 to {MAX_NO_ANSWER_S}, with mode no_answer",
            request_id,
        )
    return SetForward(request_id=request_id, mode=mode, number=number, no_answer_s=seconds)


def _decode_dnd(obj: dict[str, Any], request_id: str) -> SetDoNotDisturb:
    enabled = obj.get("enabled")
    if not isinstance(enabled, bool):
        raise CommandRejected(INVALID_PAYLOAD, "'enabled' must be true or false", request_id)
    return SetDoNotDisturb(enabled=enabled, request_id=request_id)


def encode_forward(request_id: str, mode: str, number: str | None, no_answer_s: int | None = None) -> bytes:
    """The ``cmd/forward`` payload (the CRM's side); ``number`` None stops forwarding ``mode``."""
    out: dict[str, Any] = {"v": SCHEMA_VERSION, "id": request_id, "mode": mode, "number": number}
    if no_answer_s is not None:
        out["no_answer_s"] = no_answer_s
    return _dumps(out)


def _expiry(
    obj: dict[str, Any], request_id: str, received_at: datetime, message_expiry_s: int | None
) -> datetime:
    """The earliest of ``ttl_s`` (from receipt), ``expires_at`` and the MQTT 5 message expiry."""
    candidates: list[datetime] = []
    if obj.get("ttl_s") is not None:
        ttl = obj["ttl_s"]
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
            raise CommandRejected(INVALID_PAYLOAD, "'ttl_s' must be a number of seconds", request_id)
        if not 0 < ttl <= MAX_TTL_S:
            raise CommandRejected(
                INVALID_PAYLOAD, f"'ttl_s' must be more than 0 and at most {MAX_TTL_S}", request_id
            )
        candidates.append(received_at + timedelta(seconds=ttl))
    if obj.get("expires_at") is not None:
        candidates.append(_parse_time(obj["expires_at"], "expires_at", request_id))
    if message_expiry_s is not None:
        candidates.append(received_at + timedelta(seconds=max(0, message_expiry_s)))
    if not candidates:
        raise CommandRejected(INVALID_PAYLOAD, "one of 'ttl_s' or 'expires_at' is required", request_id)
    return min(candidates)


def _parse_time(value: Any, key: str, request_id: str) -> datetime:
    problem = f"'{key}' must be an ISO 8601 time with a time zone, such as 2024-05-01T12:00:00.000Z"
    if not isinstance(value, str) or len(value) > 40:
        raise CommandRejected(INVALID_PAYLOAD, problem, request_id)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandRejected(INVALID_PAYLOAD, problem, request_id) from None
    if moment.tzinfo is None:
        raise CommandRejected(INVALID_PAYLOAD, problem, request_id)
    return moment.astimezone(UTC)


def _optional_str(obj: dict[str, Any], key: str, request_id: str, max_len: int) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problem = f"'{key}' must be a string, not {_json_type(value)}"
        raise CommandRejected(INVALID_PAYLOAD, problem, request_id)
    if len(value) > max_len:
        raise CommandRejected(INVALID_PAYLOAD, f"'{key}' is longer than {max_len} characters", request_id)
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shorten(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# --- the CRM's side: commands out, events and replies in -------------------------------------------


class ContractError(ValueError):
    """A message on a phone's topic that does not follow contract version 1."""


def encode_dial(
    request_id: str,
    number: str,
    *,
    ttl_s: float | None = None,
    expires_at: datetime | None = None,
    display: str | None = None,
    crm: dict[str, Any] | None = None,
) -> bytes:
    """The ``cmd/dial`` payload; at least one of ``ttl_s`` and ``expires_at`` is required."""
    if ttl_s is None and expires_at is None:
        raise ValueError("a dial needs ttl_s or expires_at")
    out: dict[str, Any] = {"v": SCHEMA_VERSION, "id": request_id, "number": number}
    if ttl_s is not None:
        out["ttl_s"] = ttl_s
    if expires_at is not None:
        out["expires_at"] = format_time(expires_at)
    if display:
        out["display"] = display[:MAX_DISPLAY_LEN]
    if crm is not None:
        out["crm"] = crm
    return _dumps(out)


def encode_caller(request_id: str, call_id: str, number: str, name: str) -> bytes:
    """The ``cmd/caller`` payload: the CRM's name for the caller of a ringing call."""
    return _dumps(
        {
            "v": SCHEMA_VERSION,
            "id": request_id,
            "call_id": call_id,
            "number": number,
            "name": name[:MAX_DISPLAY_LEN],
        }
    )


def decode_reply(payload: bytes) -> Reply:
    """A ``reply/<id>`` payload as a ``Reply``."""
    obj = _contract_object(payload)
    request_id = obj.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ContractError("reply 'id' must be a string or null")
    if not isinstance(obj.get("ok"), bool):
        raise ContractError("reply 'ok' must be true or false")
    if obj["ok"]:
        result = obj.get("result") or {}
        if not isinstance(result, dict):
            raise ContractError("reply 'result' must be an object")
        return Reply(request_id=request_id or "", ok=True, result=result)
    error = obj.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        raise ContractError("reply 'error' must be an object with a 'code'")
    return Reply.failure(request_id or "", error["code"], str(error.get("message") or ""))


def decode_event(payload: bytes) -> tuple[Event, int, str]:
    """An ``events`` payload as ``(event, seq, device_id)``."""
    obj = _contract_object(payload)
    try:
        event_type = obj["type"]
        seq = obj["seq"]
        device_id = obj["device_id"]
        if not isinstance(event_type, str) or not isinstance(device_id, str):
            raise ContractError("event 'type' and 'device_id' must be strings")
        if type(seq) is not int:
            raise ContractError("event 'seq' must be an integer")
        data = obj.get("data") or {}
        if not isinstance(data, dict):
            raise ContractError("event 'data' must be an object")
        call = _call_from_dict(obj["call"]) if obj.get("call") is not None else None
        event = Event(
            type=event_type,  # type: ignore[arg-type]
            ts=_contract_time(obj["ts"]),
            call=call,
            data=data,
            event_id=str(obj["event_id"]),
        )
    except KeyError as missing:
        raise ContractError(f"event without {missing.args[0]!r}") from None
    return event, seq, device_id


def _call_from_dict(obj: Any) -> CallRecord:
    if not isinstance(obj, dict):
        raise ContractError("event 'call' must be an object")
    remote = obj.get("remote") or {}
    if not isinstance(remote, dict) or not isinstance(remote.get("number", ""), str):
        raise ContractError("call 'remote' must be an object with a 'number'")
    crm = obj.get("crm")
    if crm is not None and not isinstance(crm, dict):
        raise ContractError("call 'crm' must be an object or null")
    sip_code = obj.get("sip_code")
    if sip_code is not None and type(sip_code) is not int:
        raise ContractError("call 'sip_code' must be an integer or null")
    try:
        return CallRecord(
            call_id=str(obj["call_id"]),
            direction=obj["direction"],
            origin=obj["origin"],
            remote=Remote(number=str(remote.get("number") or ""), name=remote.get("name")),
            started_at=_contract_time(obj["started_at"]),
            sip_call_id=obj.get("sip_call_id"),
            crm=crm,
            answered_at=_contract_time(obj["answered_at"]) if obj.get("answered_at") else None,
            ended_at=_contract_time(obj["ended_at"]) if obj.get("ended_at") else None,
            disposition=obj.get("disposition"),
            sip_code=sip_code,
            reason=obj.get("reason"),
            hangup_by=obj.get("hangup_by"),
            transferred_from=_transfer_from_dict(obj.get("transferred_from")),
            transferred_to=_transfer_from_dict(obj.get("transferred_to")),
            forwarded_to=_forwarded_from_dict(obj.get("forwarded_to")),
        )
    except KeyError as missing:
        raise ContractError(f"call without {missing.args[0]!r}") from None


def _transfer_from_dict(obj: Any) -> Transfer | None:
    if obj is None:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("remote"), dict):
        raise ContractError("a transfer must be an object with 'call_id' and 'remote'")
    remote = obj["remote"]
    return Transfer(
        str(obj.get("call_id") or ""), Remote(str(remote.get("number") or ""), remote.get("name"))
    )


def _forwarded_from_dict(obj: Any) -> Forwarded | None:
    if obj is None:
        return None
    if not isinstance(obj, dict) or obj.get("reason") not in FORWARD_REASONS:
        raise ContractError("'forwarded_to' must be an object with 'number' and a known 'reason'")
    return Forwarded(str(obj.get("number") or ""), obj["reason"])


def _contract_object(payload: bytes) -> dict[str, Any]:
    try:
        obj = _parse_object(payload)
    except CommandRejected as rejected:
        raise ContractError(rejected.message) from None
    if obj.get("v") != SCHEMA_VERSION:
        raise ContractError(f"'v' must be {SCHEMA_VERSION}")
    return obj


def _contract_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ContractError("times must be ISO 8601 strings")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ContractError(f"not an ISO 8601 time: {_shorten(value)!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
