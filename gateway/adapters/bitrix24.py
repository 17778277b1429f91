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


class _Bucket:
    """Our side of the portal's leaky bucket: wait rather than be answered 503."""

    def __init__(self, burst: int, per_s: float) -> None:
        self.burst, self.per_s = burst, per_s
        self._level = 0.0
        self._at = time.monotonic()
        self._lock = threading.Lock()

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

    def deliver(self, entries: list[OutboxEntry]) -> list[Outcome]:
        finishes = []
        for entry in entries:
            request = entry.request
            if request.kind != "finish" or entry.attempts or request.data.get("refused"):
                break  # a refused click needs its own check (see _finish)
            if self._portal_call_id(request.call) is None:
                break
            finishes.append(entry)
        if len(finishes) >= 2:
            return self._finish_batch(finishes[:50])
        return [self.deliver_one(entries[0])] if entries else []

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
        result = self._call("telephony.externalCall.register", params)
        portal_call_id = str(result["CALL_ID"])
        with self._lock:
            self.store.put(SCOPE, f"call:{call.call_id}", portal_call_id)
        return portal_call_id

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

    def _finish_batch(self, entries: list[OutboxEntry]) -> list[Outcome]:
        commands = {}
        for entry in entries:
            call = entry.request.call
            commands[str(entry.seq)] = (
                "telephony.externalCall.finish",
                self._finish_params(call, self._portal_call_id(call) or ""),
            )
        try:
            token = self._token()
            self._bucket.take()
            response = token.call_batch(commands, halt=False, timeout=self.config.timeout_s)
        except BitrixAPIError as error:
            return [_outcome_of(error)]
        except (BitrixSDKException, _RefreshFailed, requests.RequestException) as error:
            return [RetryLater(_describe(error))]
        inner = response.get("result", {}) if isinstance(response, dict) else {}
        errors = inner.get("result_error") or {}
        outcomes: list[Outcome] = []
        for entry in entries:
            error = errors.get(str(entry.seq)) if isinstance(errors, dict) else None
            if error is None:
                outcomes.append(Delivered())
            else:
                outcomes.append(Refused(str(error.get("error_description") or error)))
        with self._lock:
            for entry in entries:
                self.store.put(SCOPE, f"open:{self._portal_call_id(entry.request.call)}", "")
        logger.info("finished %d calls in one batch", len(entries))
        return outcomes

    def _portal_call_id(self, call: CallState) -> str | None:
        b24 = (call.crm or {}).get("b24")
        if isinstance(b24, dict) and b24.get("call_id"):
            return str(b24["call_id"])
        return self.store.get(SCOPE, f"call:{call.call_id}")

    # --- caller names ---------------------------------------------------------------------------

    def caller_name(self, number: str) -> str | None:
        if not self._auth():
            return None
        found = self._search(number)
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
