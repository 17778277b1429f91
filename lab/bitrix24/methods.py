"""The REST methods of the fake portal, strictly as documented (apidocs.bitrix24.com, telephony).

Each method takes the portal state and the request's parameters and returns the ``result`` or raises
``ApiError`` with the documented error code, description and HTTP status.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STATUS_CODES = ("200", "304", "603", "603-S", "403", "404", "486", "484", "503", "480", "402", "423", "OTHER")
REREGISTER_WINDOW_S = 30 * 60
BOUNDABLE_EVENTS = ("ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART", "ONAPPUNINSTALL")


class ApiError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status


@dataclass
class PortalCall:
    call_id: str
    user_id: int
    phone_number: str
    call_type: int
    line_number: str
    external_call_id: str
    registered_at: float
    start_date: str
    crm_entity_type: str = ""
    crm_entity_id: int = 0
    shown_to: list[int] = field(default_factory=list)
    finished: dict[str, Any] | None = None


@dataclass
class PortalState:
    """What the portal knows: users, CRM contacts, lines, bound events, calls."""

    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    bindings: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, PortalCall] = field(default_factory=dict)
    statistics: list[dict[str, Any]] = field(default_factory=list)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def new_call_id(self) -> str:
        return f"externalCall.{next(self.ids):08x}{int(time.time())}.{int(time.time())}"


def _required(params: dict[str, Any], name: str, message: str | None = None) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise ApiError("ERROR_ARGUMENT", message or f"Argument '{name}' is null or empty")
    return value


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError("ERROR_ARGUMENT", f"Argument '{name}' must be an integer") from None


def _user(state: PortalState, params: dict[str, Any]) -> int:
    if params.get("USER_ID") not in (None, ""):
        user_id = _int(params["USER_ID"], "USER_ID")
    elif params.get("USER_PHONE_INNER") not in (None, ""):
        inner = str(params["USER_PHONE_INNER"])
        match = [uid for uid, u in state.users.items() if u.get("UF_PHONE_INNER") == inner]
        if not match:
            raise ApiError("ERROR_CORE", "User is not found or is not active")
        user_id = match[0]
    else:
        raise ApiError("ERROR_CORE", "USER_ID or USER_PHONE_INNER should be set")
    user = state.users.get(user_id)
    if user is None or not user.get("ACTIVE", True):
        raise ApiError("ERROR_CORE", "User is not found or is not active")
    return user_id


_ISO_WITH_TZ = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)")


def register(state: PortalState, p: dict[str, Any]) -> dict[str, Any]:
    user_id = _user(state, p)
    number = str(_required(p, "PHONE_NUMBER"))
    if not re.fullmatch(r"\+?[0-9*#]{1,32}", number):
        raise ApiError("ERROR_CORE", "Unsupported phone number format")
    call_type = _int(_required(p, "TYPE"), "TYPE")
    if call_type not in (1, 2, 3, 4, 5):
        raise ApiError("ERROR_CORE", "Unknown TYPE")
    start = str(p.get("CALL_START_DATE") or "")
    if start and not _ISO_WITH_TZ.fullmatch(start):
        raise ApiError("ERROR_CORE", "CALL_START_DATE should be in the ISO-8601 format")
    line = str(p.get("LINE_NUMBER") or "")
    external = str(p.get("EXTERNAL_CALL_ID") or "")
    now = time.time()
    for call in state.calls.values():  # re-registration: the same call within 30 min keeps its CALL_ID
        same = (call.phone_number, call.call_type, call.user_id, call.external_call_id) == (
            number,
            call_type,
            user_id,
            external,
        )
        recent = now - call.registered_at < REREGISTER_WINDOW_S
        if same and recent and (not line or call.line_number == line) and call.finished is None:
            return _register_result(call)
    call = PortalCall(
        call_id=state.new_call_id(),
        user_id=user_id,
        phone_number=number,
        call_type=call_type,
        line_number=line,
        external_call_id=external,
        registered_at=now,
        start_date=start or datetime.now().astimezone().isoformat(timespec="seconds"),
        crm_entity_type=str(p.get("CRM_ENTITY_TYPE") or ""),
        crm_entity_id=int(p.get("CRM_ENTITY_ID") or 0),
    )
    if str(p.get("SHOW", "1")) == "1":
        call.shown_to.append(user_id)
    state.calls[call.call_id] = call
    return _register_result(call)


def _register_result(call: PortalCall) -> dict[str, Any]:
    return {
        "CALL_ID": call.call_id,
        "CRM_CREATED_LEAD": None,
        "CRM_CREATED_ENTITIES": [],
        "CRM_ENTITY_TYPE": call.crm_entity_type or None,
        "CRM_ENTITY_ID": call.crm_entity_id or None,
        "LEAD_CREATION_ERROR": None,
    }


def finish(state: PortalState, p: dict[str, Any]) -> dict[str, Any]:
    call_id = str(_required(p, "CALL_ID"))
    user_id = _user(state, p)
    call = state.calls.get(call_id)
    if call is None or call.finished is not None:
        raise ApiError("ERROR_CORE", "Call is not found (call should be registered prior to finishing)")
    duration = _int(p.get("DURATION", 0), "DURATION")
    status = str(p.get("STATUS_CODE") or ("200" if duration > 0 else "304"))
    if status not in STATUS_CODES:
        raise ApiError("ERROR_ARGUMENT", f"Unknown STATUS_CODE {status!r}")
    record = {
        "ID": str(len(state.statistics) + 1),
        "CALL_ID": call.call_id,
        "EXTERNAL_CALL_ID": call.external_call_id or None,
        "PORTAL_USER_ID": str(user_id),
        "PHONE_NUMBER": call.phone_number,
        "PORTAL_NUMBER": call.line_number,
        "INCOMING": str(call.call_type),
        "CALL_DURATION": str(duration),
        "CALL_START_DATE": call.start_date,
        "CALL_STATUS": 1 if status == "200" else 0,
        "CALL_VOTE": p.get("VOTE"),
        "COST": p.get("COST"),
        "COST_CURRENCY": p.get("COST_CURRENCY"),
        "CALL_FAILED_CODE": status,
        "CALL_FAILED_REASON": str(p.get("FAILED_REASON") or ""),
        "REST_APP_ID": 1,
        "REST_APP_NAME": "deskphone gateway",
        "CRM_ACTIVITY_ID": len(state.statistics) + 100,
        "COMMENT": None,
        "CRM_ENTITY_TYPE": call.crm_entity_type or None,
        "CRM_ENTITY_ID": call.crm_entity_id or None,
        "ERRORS": [],
    }
    call.finished = record
    state.statistics.append(record)
    return record


def _show_or_hide(show: bool) -> Callable[[PortalState, dict[str, Any]], bool]:
    def method(state: PortalState, p: dict[str, Any]) -> bool:
        call = state.calls.get(str(_required(p, "CALL_ID")))
        if call is None:
            return False
        users = p.get("USER_ID", call.user_id)
        for uid in users if isinstance(users, list) else [users]:
            if show and int(uid) not in call.shown_to:
                call.shown_to.append(int(uid))
            if not show and int(uid) in call.shown_to:
                call.shown_to.remove(int(uid))
        return True

    return method


def search_crm_entities(state: PortalState, p: dict[str, Any]) -> list[dict[str, Any]]:
    number = str(_required(p, "PHONE_NUMBER"))
    digits = re.sub(r"\D", "", number)
    found = []
    for contact in state.contacts:
        if digits and re.sub(r"\D", "", contact["PHONE"]).endswith(digits[-10:]):
            owner = state.users.get(contact["ASSIGNED_BY_ID"], {})
            found.append(
                {
                    "CRM_ENTITY_TYPE": contact.get("TYPE", "CONTACT"),
                    "CRM_ENTITY_ID": contact["ID"],
                    "ASSIGNED_BY_ID": contact["ASSIGNED_BY_ID"],
                    "NAME": contact["NAME"],
                    "ASSIGNED_BY": {
                        "ID": contact["ASSIGNED_BY_ID"],
                        "TIMEMAN_STATUS": "OPENED",
                        "USER_PHONE_INNER": owner.get("UF_PHONE_INNER", ""),
                        "WORK_PHONE": "",
                        "PERSONAL_PHONE": "",
                        "PERSONAL_MOBILE": "",
                    },
                }
            )
    return found


def line_add(state: PortalState, p: dict[str, Any]) -> dict[str, Any]:
    number = str(_required(p, "NUMBER"))
    if any(line["NUMBER"] == number for line in state.lines):
        raise ApiError("ERROR_CORE", "Line already exists")
    state.lines.append(
        {
            "NUMBER": number,
            "NAME": str(p.get("NAME") or number),
            "CRM_AUTO_CREATE": p.get("CRM_AUTO_CREATE", "Y"),
        }
    )
    return {"ID": len(state.lines)}


def line_get(state: PortalState, p: dict[str, Any]) -> list[dict[str, Any]]:
    return list(state.lines)


def event_bind(state: PortalState, p: dict[str, Any]) -> bool:
    event = str(_required(p, "event")).upper()
    handler = str(_required(p, "handler"))
    if event not in BOUNDABLE_EVENTS:
        raise ApiError("ERROR_EVENT_NOT_FOUND", "Event not found")
    if not handler.startswith(("http://", "https://")):
        raise ApiError("ERROR_ARGUMENT", "Handler URL is invalid")
    if any(b["event"] == event and b["handler"] == handler for b in state.bindings):
        raise ApiError("ERROR_CORE", "Handler already binded")
    state.bindings.append(
        {"event": event, "handler": handler, "auth_type": int(p.get("auth_type") or 0), "offline": 0}
    )
    return True


def event_get(state: PortalState, p: dict[str, Any]) -> list[dict[str, Any]]:
    return list(state.bindings)


METHODS: dict[str, Callable[[PortalState, dict[str, Any]], Any]] = {
    "telephony.externalcall.register": register,
    "telephony.externalcall.finish": finish,
    "telephony.externalcall.show": _show_or_hide(True),
    "telephony.externalcall.hide": _show_or_hide(False),
    "telephony.externalcall.searchcrmentities": search_crm_entities,
    "telephony.externalline.add": line_add,
    "telephony.externalline.get": line_get,
    "event.bind": event_bind,
    "event.get": event_get,
}
