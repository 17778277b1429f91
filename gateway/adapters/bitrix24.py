"""Bitrix24 as a server-side local application, on the official ``b24pysdk``.

Install: the portal posts ``ONAPPINSTALL`` to ``/bitrix24/install`` with the tokens and the
``application_token``; they are stored (the store file is 0600), proven by ``event.bind`` of
``ONEXTERNALCALLSTART`` to ``<public_url>/bitrix24/events``, and the external line is added.

Out (the outbox): ``register`` (TYPE 1/2, ``SHOW=1`` pops the card, ``EXTERNAL_CALL_ID`` = our call
id, so a repeated register returns the same ``CALL_ID``), ``finish`` (``DURATION`` = talk time,
``STATUS_CODE`` from the disposition and SIP code), several waiting finishes in one ``batch``.
In: ``ONEXTERNALCALLSTART`` -> ``ClickToCall`` with the contact's name and Bitrix24's ``CALL_ID``,
user and entity in ``crm.b24``. ``caller_name``: ``searchCrmEntities``.

Tokens: the SDK refreshes an expired access token itself (before a call when the stored expiry has
passed, and on ``expired_token``) through ``BitrixApp.refresh_oauth_token``, which this module hands
to ``_refresh_tokens``: one refresh at a time, at ``oauth_server`` (the SDK's own OAuth host is
fixed), the renewed tokens stored before they are used. The
portal's own leaky bucket is mirrored on our side so that we rarely meet its 503.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from b24pysdk import BitrixAppLocal, BitrixTokenLocal
from b24pysdk import Config as SdkConfig
from b24pysdk.credentials.auth import RenewedOAuth
from b24pysdk.errors import (
    BitrixAPIError,
    BitrixAPIExpiredToken,
    BitrixRequestError,
    BitrixResponseJSONDecodeError,
    BitrixSDKException,
)

from ..calls import CallState, CrmRequest, Desk
from ..config import Bitrix24Config
from ..desks import Desks
from ..store import GatewayStore, OutboxEntry
from .base import CrmAdapter, Delivered, Outcome, Refused, RetryLater

logger = logging.getLogger(__name__)

SCOPE = "bitrix24"
AUTH_KEY = "auth"
EVENTS_PATH = "/bitrix24/events"
NOT_FOUND = "Call is not found"
BITRIX_STATUS_CODES = {"200", "304", "603", "603-S", "403", "404", "486", "484", "503", "480", "402", "423"}
# A click-to-call that never rang: the phone's (or our) reason -> STATUS_CODE.
_REFUSAL_STATUS = {
    "busy": "486",
    "not_registered": "480",
    "expired": "603-S",
    "invalid_number": "404",
    "no_desk": "480",
    "timeout": "480",
}
_DISPOSITION_STATUS = {
    "answered": "200",
    "missed": "304",
    "busy": "486",
    "rejected": "603",
    "cancelled": "603-S",
}
_TEMPORARY_HTTP = {408, 425, 429, 500, 502, 503, 504}
# A command's error inside a batch that a later try may not meet (the rest are the method's own).
_TEMPORARY_ERRORS = {
    "INTERNAL_SERVER_ERROR",
    "ERROR_UNEXPECTED_ANSWER",
    "QUERY_LIMIT_EXCEEDED",
    "OPERATION_TIME_LIMIT",
    "ERROR_BATCH_LENGTH_EXCEEDED",
}
BATCH_MAX = 50  # commands in one batch (the API's limit)


def status_code(call: CallState) -> str:
    """Bitrix24's ``STATUS_CODE`` for a finished call: always explicit (its default would call a short
    answered call 'missed'), a bare code, never ``VI_STATUS_*``."""
    if call.disposition in _DISPOSITION_STATUS:
        return _DISPOSITION_STATUS[call.disposition]
    if call.disposition == "no_answer":
        return "304" if call.direction == "inbound" else "480"
    if call.sip_code is not None and str(call.sip_code) in BITRIX_STATUS_CODES:
        return str(call.sip_code)
    refusal = (call.reason or "").split(":", 1)[0]
    return _REFUSAL_STATUS.get(refusal, "OTHER")


def failed_reason(call: CallState) -> str:
    if call.disposition == "answered":
        return ""
    parts = [call.reason or call.disposition or ""]
    if call.sip_code is not None:
        parts.append(f"SIP {call.sip_code}")
    if call.hangup_by:
        parts.append(f"hung up by {call.hangup_by}")
    return "; ".join(p for p in parts if p)[:255]


class _PortalApp(BitrixAppLocal):
    """The local application; the SDK's token refresh is handed to ``refresh`` (the adapter's)."""

    def __init__(self, *, domain: str, client_id: str, client_secret: str, refresh: Any) -> None:
        super().__init__(domain=domain, client_id=client_id, client_secret=client_secret)
        self._refresh = refresh

    def refresh_oauth_token(self, refresh_token: str, **kwargs: Any) -> RenewedOAuth:
        return self._refresh(refresh_token)


class _RefreshFailed(Exception):
    pass


class _RoundTripFailed(Exception):
    """The request as a whole did not go through: every command in it is tried again."""

    def __init__(self, outcome: RetryLater) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


@dataclass(frozen=True)
class _CommandError:
    """The portal refused one command of a round trip."""

    code: str
    text: str


_NOT_RUN = _CommandError("", "the portal did not run the command")


def _registers_first(entries: list[OutboxEntry]) -> list[OutboxEntry]:
    return sorted(entries, key=lambda e: (e.request.kind != "register", e.seq))


def _keyed(value: Any) -> list[tuple[str, Any]]:
    """A batch's ``result``/``result_error``: an object by command key, or ``[]`` when empty (PHP)."""
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, list):
        return [(str(i), v) for i, v in enumerate(value)]
    return []


class _Bucket:
    """Our side of the portal's leaky bucket: wait rather than be answered 503."""

    def __init__(self, burst: int, per_s: float) -> None:
        self.burst, self.per_s = burst, per_s
        self._level = 0.0
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def available_in(self) -> float:
        """Seconds until ``take`` would return at once."""
        with self._lock:
            level = max(0.0, self._level - (time.monotonic() - self._at) * self.per_s)
            return max(0.0, (level + 2 - self.burst) / self.per_s)

    def take(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._level = max(0.0, self._level - (now - self._at) * self.per_s)
                self._at = now
                if self._level + 1 <= self.burst - 1:  # one below the portal's limit: other apps share it
                    self._level += 1
                    return
                wait = (self._level + 2 - self.burst) / self.per_s
            time.sleep(max(wait, 0.01))


def _flat_form(form: dict[str, str]) -> dict[str, Any]:
    """``auth[domain]=x`` -> ``{"auth": {"domain": "x"}}`` (Bitrix24's form encoding of events)."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        match = re.fullmatch(r"(\w+)\[(\w+)\]", key)
        if match:
            out.setdefault(match.group(1), {})
            if isinstance(out[match.group(1)], dict):
                out[match.group(1)][match.group(2)] = value
        else:
            out[key] = value
    return out


class Bitrix24Adapter(CrmAdapter):
    name = SCOPE

    def __init__(self, config: Bitrix24Config, public_url: str, store: GatewayStore) -> None:
        self.config = config
        self.public_url = public_url.rstrip("/")
        self.store = store
        if config.ca_file:
            # b24pysdk calls requests without a verify argument: requests reads the CA bundle from here.
            os.environ["REQUESTS_CA_BUNDLE"] = str(config.ca_file)
        self._bucket = _Bucket(config.rate_burst, config.rate_per_s)
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._sdk_threads: set[int] = set()
        self._queries: list[tuple[str, Future[list[dict[str, Any]]]]] = []  # caller look-ups waiting
        self._asked: dict[str, Future[list[dict[str, Any]]]] = {}  # look-ups in the round trip under way

    # --- install ------------------------------------------------------------------------------

    def install(self, form: dict[str, str]) -> tuple[bool, str]:
        """``ONAPPINSTALL``: keep the tokens, bind ``ONEXTERNALCALLSTART``, add the line."""
        event = _flat_form(form)
        auth = event.get("auth") if isinstance(event.get("auth"), dict) else {}
        if str(event.get("event", "")).upper() != "ONAPPINSTALL":
            return False, "expected ONAPPINSTALL"
        needed = ("access_token", "refresh_token", "application_token", "member_id", "domain")
        if any(not auth.get(k) for k in needed):
            return False, "ONAPPINSTALL without the auth block"
        if auth["domain"] != self.config.domain:
            return (
                False,
                f"the event comes from portal {auth['domain']!r}, configured is {self.config.domain!r}",
            )
        stored = self._auth()
        if stored and stored.get("member_id") != auth["member_id"]:
            return False, "another portal installation is already stored"
        candidate = {
            "access_token": auth["access_token"],
            "refresh_token": auth["refresh_token"],
            "expires": int(auth.get("expires") or time.time() + int(auth.get("expires_in") or 3600)),
            "expires_in": int(auth.get("expires_in") or 3600),
            "member_id": auth["member_id"],
            "application_token": auth["application_token"],
        }
        try:
            self._bind(candidate)
        except (BitrixSDKException, _RefreshFailed, requests.RequestException) as error:
            logger.warning(
                "ONAPPINSTALL not accepted: the portal refused its own tokens (%s)", _describe(error)
            )
            return False, "the tokens do not work at the portal"
        logger.info(
            "installed in portal %s; ONEXTERNALCALLSTART bound to %s", self.config.domain, self._handler
        )
        return True, "installed"

    @property
    def _handler(self) -> str:
        return self.public_url + EVENTS_PATH

    def _bind(self, auth: dict[str, Any]) -> None:
        with self._lock:
            self.store.put(SCOPE, AUTH_KEY, json.dumps(auth))
        try:
            self._call("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": self._handler})
        except BitrixAPIError as error:
            if "already binded" not in str(getattr(error, "error_description", "") or error):
                with self._lock:
                    self.store.put(SCOPE, AUTH_KEY, "")
                raise
        if self.config.line_number:
            try:
                self._call(
                    "telephony.externalLine.add",
                    {
                        "NUMBER": self.config.line_number,
                        "NAME": self.config.line_name,
                        "CRM_AUTO_CREATE": "N",
                    },
                )
            except BitrixAPIError as error:
                logger.info("external line %s: %s", self.config.line_number, _describe(error))

    # --- click-to-call in -----------------------------------------------------------------------

    def click_from_event(self, form: dict[str, str], desks: Desks) -> Any:
        """``ONEXTERNALCALLSTART`` -> a ``ClickToCall``, or ``(http status, message)`` to refuse it."""
        from ..service import ClickToCall

        event = _flat_form(form)
        auth = event.get("auth") if isinstance(event.get("auth"), dict) else {}
        stored = self._auth()
        token = str(auth.get("application_token") or "")
        if not stored or not hmac.compare_digest(token.encode(), str(stored["application_token"]).encode()):
            logger.warning("refused a Bitrix24 event: wrong application_token")
            return 403, "wrong application_token"
        name = str(event.get("event", "")).upper()
        if name == "ONAPPUNINSTALL":
            with self._lock:
                self.store.put(SCOPE, AUTH_KEY, "")
            logger.warning(
                "the application was uninstalled from portal %s; tokens dropped", self.config.domain
            )
            return 200, "uninstalled"
        if name != "ONEXTERNALCALLSTART":
            return 400, f"unexpected event {name[:40]!r}"
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        call_id, user = str(data.get("CALL_ID") or ""), str(data.get("USER_ID") or "")
        number = re.sub(r"[^0-9+*#]", "", str(data.get("PHONE_NUMBER") or ""))
        if not call_id or not user.isdigit():
            return 400, "ONEXTERNALCALLSTART without CALL_ID or USER_ID"
        entity_type, entity_id = (
            str(data.get("CRM_ENTITY_TYPE") or ""),
            _int_or_zero(data.get("CRM_ENTITY_ID")),
        )
        crm = {
            "b24": {
                "call_id": call_id,
                "user_id": int(user),
                "entity_type": entity_type,
                "entity_id": entity_id,
                "line": str(data.get("LINE_NUMBER") or ""),
                "call_list_id": _int_or_zero(data.get("CALL_LIST_ID")),
            }
        }
        desk: Desk | None = desks.by_crm_user(user)
        display = self._entity_name(number, entity_type, entity_id) if desk is not None else None
        return ClickToCall(
            desk=desk,
            number=number or str(data.get("PHONE_NUMBER") or "")[:32],
            ttl_s=float(self.config.dial_ttl_s),
            display=display,
            crm=crm,
            who=f"Bitrix24 user {user}",
        )

    def _entity_name(self, number: str, entity_type: str, entity_id: int) -> str | None:
        try:
            found = self._search(number)
        except Exception as error:
            logger.info("no contact name for the click-to-call: %s", _describe(error))
            return None
        exact = [
            f
            for f in found
            if f.get("CRM_ENTITY_TYPE") == entity_type and _int_or_zero(f.get("CRM_ENTITY_ID")) == entity_id
        ]
        best = (exact or found or [{}])[0]
        return str(best.get("NAME") or "") or None

    # --- out ------------------------------------------------------------------------------------

    def wants(self, request: CrmRequest) -> bool:
        if request.kind == "answered":
            return False
        crm = request.call.crm or {}
        # A click-to-call of another CRM that never rang is none of this portal's business.
        return not (request.data.get("dial_only") and "b24" not in crm)

    def send_in_s(self) -> float:
        return self._bucket.available_in()

    def linger_s(self, entries: list[OutboxEntry]) -> float:
        """Pop-ups and look-ups go at once; other requests wait a little for company, unless a full
        batch is already waiting."""
        if not self.config.batch or self.has_queries() or len(entries) >= BATCH_MAX:
            return 0.0
        if any(e.request.kind == "register" for e in entries):
            return 0.0
        return self.config.batch_linger_ms / 1000

    def has_queries(self) -> bool:
        with self._lock:
            return bool(self._queries)

    def deliver(self, entries: list[OutboxEntry]) -> list[tuple[OutboxEntry, Outcome]]:
        """One round trip: a ``batch`` of up to 50 commands (pop-ups first, then caller look-ups,
        then the rest), one per call so that a call's requests keep their order. A command the portal
        refuses is refused alone; a round trip that fails as a whole is retried as a whole (registers
        are idempotent by ``EXTERNAL_CALL_ID``, a repeated finish meets "Call is not found")."""
        if not self._auth():
            self._answer_queries(None)
            reason = "the application is not installed in the portal yet"
            return [(entries[0], RetryLater(reason, 5.0))] if entries else []
        size = BATCH_MAX if self.config.batch else 1
        done: list[tuple[OutboxEntry, Outcome]] = []
        commands: dict[str, tuple[str, dict[str, Any]]] = {}
        sent: dict[str, OutboxEntry] = {}
        alone: list[OutboxEntry] = []
        registers = [e for e in entries if e.request.kind == "register"]
        waiting = {e.request.call.call_id for e in registers}  # their calls' later requests wait
        others = [
            e for e in entries if e.request.kind != "register" and e.request.call.call_id not in waiting
        ]
        taken: set[str] = set()
        for group in (registers, None, others):
            if group is None:
                self._add_queries(commands, size)
                continue
            for entry in group:
                call_id = entry.request.call.call_id
                if call_id in taken:
                    continue  # one request per call and round trip: a call's requests keep their order
                if len(commands) >= size:
                    break
                taken.add(call_id)
                command = self._command(entry)
                if command is None:
                    alone.append(entry)
                elif isinstance(command, tuple):
                    commands[f"q{entry.seq}"], sent[f"q{entry.seq}"] = command, entry
                else:
                    done.append((entry, command))
        if commands:
            done += self._round_trip(commands, sent)
        elif alone:  # no CALL_ID known (its register was refused): it goes with its own requests
            done.append((alone[0], self.deliver_one(alone[0])))
        return done

    def _command(self, entry: OutboxEntry) -> tuple[str, dict[str, Any]] | Outcome | None:
        """What the portal is sent for ``entry``; an outcome when nothing needs sending; None when it
        must go alone (``deliver_one``)."""
        request = entry.request
        if request.kind == "register":
            if self._portal_call_id(request.call):
                return Delivered()  # a repeated register: the portal's CALL_ID is known already
            return "telephony.externalCall.register", self._register_params(request.call)
        if request.kind != "finish":
            return Delivered()
        portal_call_id = self._portal_call_id(request.call)
        if portal_call_id is None:
            return None
        if request.data.get("refused") and self.store.get(SCOPE, f"open:{portal_call_id}") == "1":
            logger.info(
                "refused click-to-call shares CALL_ID %s with a call in progress: left open", portal_call_id
            )
            return Delivered()
        return "telephony.externalCall.finish", self._finish_params(request.call, portal_call_id)

    def _add_queries(self, commands: dict[str, tuple[str, dict[str, Any]]], size: int) -> None:
        with self._lock:
            while self._queries and len(commands) < size:
                number, future = self._queries.pop(0)
                key = f"n{len(self._asked)}"
                self._asked[key] = future
                commands[key] = ("telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": number})

    def _answer_queries(self, answers: dict[str, Any] | None) -> None:
        with self._lock:
            if answers is None:
                waiting, self._queries = [f for _, f in self._queries], []
            else:
                waiting = []
            asked, self._asked = self._asked, {}
        for future in waiting:
            future.set_result([])
        for key, future in asked.items():
            found = (answers or {}).get(key)
            future.set_result(found if isinstance(found, list) else [])

    def _round_trip(
        self, commands: dict[str, tuple[str, dict[str, Any]]], sent: dict[str, OutboxEntry]
    ) -> list[tuple[OutboxEntry, Outcome]]:
        try:
            answers = self._send(commands)
        except _RoundTripFailed as failure:
            self._answer_queries({})
            return [(entry, failure.outcome) for entry in sent.values()]
        self._answer_queries(answers)
        learnt: dict[str, str] = {}  # what the answers taught us, stored in one transaction
        outcomes = [(e, self._settle(e, answers.get(key, _NOT_RUN), learnt)) for key, e in sent.items()]
        with self._lock:
            self.store.put_many(SCOPE, learnt)
        return outcomes

    def _send(self, commands: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """One request to the portal: each command's result or ``_CommandError``. A lone command goes
        as itself, several as one ``batch`` (counted as one request by the portal's limit)."""
        try:
            if len(commands) == 1:
                ((key, (method, params)),) = commands.items()
                try:
                    return {key: self._call(method, params)}
                except BitrixAPIError as error:
                    outcome = _outcome_of(error)
                    if isinstance(outcome, RetryLater):
                        raise _RoundTripFailed(outcome) from None
                    return {key: _CommandError(str(getattr(error, "error", "") or ""), _describe(error))}
            token = self._token()
            self._bucket.take()
            response = token.call_batch(commands, halt=False, timeout=self.config.timeout_s)
        except BitrixAPIError as error:
            outcome = _outcome_of(error)
            retry = (
                outcome if isinstance(outcome, RetryLater) else RetryLater(f"batch refused: {outcome.reason}")
            )
            raise _RoundTripFailed(retry) from None
        except (BitrixSDKException, _RefreshFailed, requests.RequestException) as error:
            raise _RoundTripFailed(RetryLater(_describe(error))) from None
        inner = response.get("result") if isinstance(response, dict) else None
        inner = inner if isinstance(inner, dict) else {}
        answers: dict[str, Any] = dict(_keyed(inner.get("result")))
        for key, error in _keyed(inner.get("result_error")):
            error = error if isinstance(error, dict) else {}
            code = str(error.get("error") or "")
            answers[key] = _CommandError(code, f"{code}: {error.get('error_description') or ''}".strip())
        logger.debug(
            "batch of %d commands, %d refused", len(commands), len(answers) - len(inner.get("result") or ())
        )
        return answers

    def _settle(self, entry: OutboxEntry, answer: Any, learnt: dict[str, str]) -> Outcome:
        request = entry.request
        if isinstance(answer, _CommandError):
            if answer.code in _TEMPORARY_ERRORS or answer is _NOT_RUN:
                return RetryLater(answer.text)
            if request.kind == "finish" and NOT_FOUND in answer.text and entry.attempts > 0:
                return Delivered()  # an earlier try whose answer we lost did finish it
            return Refused(answer.text)
        if request.kind == "register":
            if not isinstance(answer, dict) or not answer.get("CALL_ID"):
                return RetryLater("register answered without a CALL_ID")
            learnt[f"call:{request.call.call_id}"] = str(answer["CALL_ID"])
        elif request.kind == "finish":
            learnt[f"open:{self._portal_call_id(request.call)}"] = ""
        return Delivered()

    def deliver_one(self, entry: OutboxEntry) -> Outcome:
        request = entry.request
        if not self._auth():
            return RetryLater("the application is not installed in the portal yet", 5.0)
        try:
            if request.kind == "register":
                self._register(request.call)
                return Delivered()
            if request.kind == "finish":
                return self._finish(request.call, entry.attempts, bool(request.data.get("refused")))
            return Delivered()
        except BitrixAPIError as error:
            return _outcome_of(error)
        except (BitrixSDKException, _RefreshFailed, requests.RequestException) as error:
            return RetryLater(_describe(error))

    def _register(self, call: CallState) -> str:
        existing = self._portal_call_id(call)
        if existing:
            return existing
        result = self._call("telephony.externalCall.register", self._register_params(call))
        portal_call_id = str(result["CALL_ID"])
        with self._lock:
            self.store.put(SCOPE, f"call:{call.call_id}", portal_call_id)
        return portal_call_id

    def _register_params(self, call: CallState) -> dict[str, Any]:
        params: dict[str, Any] = {
            "USER_ID": int(call.crm_user),
            "PHONE_NUMBER": call.remote_number,
            "TYPE": 2 if call.direction == "inbound" else 1,
            "CALL_START_DATE": call.started_at.astimezone(UTC).isoformat(timespec="seconds"),
            "CRM_CREATE": 1 if self.config.crm_create else 0,
            "SHOW": 1,
            "EXTERNAL_CALL_ID": call.call_id,
        }
        if self.config.line_number:
            params["LINE_NUMBER"] = self.config.line_number
        return params

    def _finish_params(self, call: CallState, portal_call_id: str) -> dict[str, Any]:
        b24 = (call.crm or {}).get("b24") or {}
        user = b24.get("user_id") or call.crm_user
        params: dict[str, Any] = {
            "CALL_ID": portal_call_id,
            "USER_ID": int(user),
            "DURATION": round(call.talk_s),
            "STATUS_CODE": status_code(call),
        }
        reason = failed_reason(call)
        if reason:
            params["FAILED_REASON"] = reason
        return params

    def dial_accepted(self, crm: dict[str, Any] | None) -> None:
        b24 = (crm or {}).get("b24")
        if isinstance(b24, dict) and b24.get("call_id"):
            with self._lock:
                self.store.put(SCOPE, f"open:{b24['call_id']}", "1")

    def _finish(self, call: CallState, attempts: int, refused: bool = False) -> Outcome:
        portal_call_id = self._portal_call_id(call) or self._register(call)
        open_key = f"open:{portal_call_id}"
        if refused and self.store.get(SCOPE, open_key) == "1":
            # Bitrix24 hands a repeated click on the same number the CALL_ID of the call still
            # alerting or talking at the desk: finishing it for the refusal would end that card.
            logger.info(
                "refused click-to-call shares CALL_ID %s with a call in progress: left open", portal_call_id
            )
            return Delivered()
        try:
            self._call("telephony.externalCall.finish", self._finish_params(call, portal_call_id))
        except BitrixAPIError as error:
            if NOT_FOUND in _describe(error) and attempts > 0:
                return Delivered()  # an earlier try that timed out on our side did finish it
            raise
        with self._lock:
            self.store.put(SCOPE, open_key, "")
        return Delivered()

    def _portal_call_id(self, call: CallState) -> str | None:
        b24 = (call.crm or {}).get("b24")
        if isinstance(b24, dict) and b24.get("call_id"):
            return str(b24["call_id"])
        return self.store.get(SCOPE, f"call:{call.call_id}")

    # --- caller names ---------------------------------------------------------------------------

    def caller_name(self, number: str) -> str | None:
        """Asked with the outbox's next round trip (in its batch), so that look-ups never crowd the
        pop-ups out of the portal's rate limit."""
        if not self._auth():
            return None
        future: Future[list[dict[str, Any]]] = Future()
        with self._lock:
            self._queries.append((number, future))
        self.wake_outbox()
        try:
            found = future.result(timeout=2 * self.config.timeout_s)
        except FutureTimeout:
            with self._lock:
                self._queries = [(n, f) for n, f in self._queries if f is not future]
            return None
        return str(found[0].get("NAME") or "") or None if found else None

    def _search(self, number: str) -> list[dict[str, Any]]:
        result = self._call("telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": number})
        return [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []

    # --- the SDK --------------------------------------------------------------------------------

    def _auth(self) -> dict[str, Any] | None:
        with self._lock:
            text = self.store.get(SCOPE, AUTH_KEY)
        return json.loads(text) if text else None

    def _token(self) -> BitrixTokenLocal:
        self._configure_sdk()
        auth = self._auth()
        if not auth:
            raise _RefreshFailed("the application is not installed in the portal")
        app = _PortalApp(
            domain=self.config.domain,
            client_id=self.config.client_id,
            client_secret=self.config.client_secret.reveal(),
            refresh=self._refresh_tokens,
        )
        return BitrixTokenLocal(
            auth_token=auth["access_token"],
            refresh_token=auth["refresh_token"],
            expires=datetime.fromtimestamp(int(auth["expires"]), tz=UTC),
            expires_in=int(auth["expires_in"]),
            bitrix_app=app,
        )

    def _refresh_tokens(self, refresh_token: str) -> RenewedOAuth:
        """One refresh at a time: a refresh token is good for one use, and the outbox and the caller
        look-ups may both meet the expiry. Whoever comes second gets the tokens the first one got."""
        with self._refresh_lock:
            auth = self._auth() or {}
            renewed = auth.get("renewed")
            if (
                auth.get("refresh_token") != refresh_token
                and renewed
                and auth.get("expires", 0) > time.time() + 5
            ):
                return RenewedOAuth.from_dict(renewed)
            response = requests.get(
                self.config.oauth_server.rstrip("/") + "/oauth/token/",
                params={
                    "grant_type": "refresh_token",
                    "client_id": self.config.client_id,
                    "client_secret": self.config.client_secret.reveal(),
                    "refresh_token": auth.get("refresh_token") or refresh_token,
                },
                timeout=self.config.timeout_s,
            )
            try:
                body = response.json()
            except ValueError:
                body = {}
            if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
                error = body.get("error", "") if isinstance(body, dict) else ""
                raise _RefreshFailed(f"token refresh refused: HTTP {response.status_code} {error}".strip())
            auth |= {
                "access_token": body["access_token"],
                "refresh_token": body["refresh_token"],
                "expires": int(body["expires"]),
                "expires_in": int(body["expires_in"]),
                "renewed": body,
            }
            with self._lock:
                self.store.put(SCOPE, AUTH_KEY, json.dumps(auth))
            logger.info("Bitrix24 access token renewed")
            return RenewedOAuth.from_dict(body)

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        token = self._token()
        self._bucket.take()
        response = token.call_method(method, params, timeout=self.config.timeout_s)
        return response.get("result") if isinstance(response, dict) else response

    def _configure_sdk(self) -> None:
        """The SDK's settings are per thread; our outbox retries, so the SDK's own 503 retry is off."""
        ident = threading.get_ident()
        if ident not in self._sdk_threads:
            SdkConfig().configure(default_max_retries=1, default_timeout=self.config.timeout_s)
            self._sdk_threads.add(ident)


def _int_or_zero(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _describe(error: BaseException) -> str:
    """What went wrong, without tokens: the API's error code and description, or the exception type."""
    code = getattr(error, "error", None)
    description = getattr(error, "error_description", None)
    if isinstance(code, str) and code:
        return f"{code}: {description or ''}".strip()
    if isinstance(error, BitrixRequestError):
        return f"cannot reach the portal ({type(getattr(error, 'original_error', error)).__name__})"
    if isinstance(error, BitrixResponseJSONDecodeError):
        return f"the portal answered HTTP {getattr(getattr(error, 'response', None), 'status_code', '?')}"
    return type(error).__name__ if not str(error) else str(error)[:200]


def _outcome_of(error: BitrixAPIError) -> Outcome:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, BitrixAPIExpiredToken) or status in _TEMPORARY_HTTP or (status or 0) >= 500:
        return RetryLater(_describe(error), 1.0 if status == 503 else None)
    if status == 401:
        return RetryLater(f"{_describe(error)} (reinstall the application?)", 30.0)
    return Refused(_describe(error))
