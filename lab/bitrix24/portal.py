"""``FakePortal``: HTTPS on 127.0.0.1 (a test CA from trustme), the portal's REST and OAuth endpoints.

- ``POST /rest/<method>[.json]`` with ``auth`` (access token) in the JSON or form body; ``batch``;
  the per-portal leaky bucket (``burst`` requests, drained ``drain_per_s``; above it 503
  ``QUERY_LIMIT_EXCEEDED``); ``expired_token`` (401) once a token has lived ``token_lifetime_s``.
- ``GET /oauth/token/?grant_type=refresh_token&...``: the OAuth server (``oauth_server`` URL).
- What a person does in the portal, as methods: ``install`` (posts ``ONAPPINSTALL`` with the tokens
  to the app's install handler), ``click_to_call`` (registers the call, posts form-encoded
  ``ONEXTERNALCALLSTART`` with ``auth[...]`` to the bound handler), ``expire_tokens``.
- ``POST /_lab/click`` (JSON ``{"user_id", "phone_number"}``): ``click_to_call`` for ``make run``.

Every request is recorded (``records``), with what it was answered; each command of a ``batch`` is
recorded too, as a request of its own method (``in_batch``). ``stop()`` refuses connections until
``start()`` again on the same port; ``unavailable = True`` answers every REST call 503;
``lose_answers = n``: the next n REST requests are carried out but answered 502 with no body (a
proxy that timed out: the work is done, the client does not know).

``batch`` as the portal's own (``CRestProvider::methodsBatch``): commands run in order, ``halt``
stops at the first error, ``$result[key][field]`` takes a value from an earlier command's result,
commands past the 50th each get ``ERROR_BATCH_LENGTH_EXCEEDED``, a ``batch`` inside a batch is not
allowed, and empty ``result``/``result_error`` are ``[]`` (PHP's empty array). The whole batch is one
request of the leaky bucket.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from lab.servers.asgi import ThreadedServer
from lab.servers.ports import LOOPBACK, free_port

from .methods import METHODS, ApiError, PortalState

APP_SCOPE = "crm,telephony,user"
BATCH_MAX_LENGTH = 50
_RESULT_REF = re.compile(r"\$result\[([^\]]+)\]((?:\[[^\]]+\])*)")


@dataclass(frozen=True)
class Record:
    """One request the portal received and what it answered."""

    at: float
    kind: str  # "rest", "oauth", "event" (one the portal posted), "lab"
    method: str
    params: dict[str, Any]
    status: int
    answer: Any
    in_batch: bool = False  # a command of a batch (the batch itself is the HTTP request)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not (isinstance(self.answer, dict) and "error" in self.answer)


class FakePortal:
    def __init__(
        self,
        scratch: Path,
        *,
        client_id: str = "local.deskphone.1",
        client_secret: str = "fake-client-secret-5d1",
        burst: int = 50,
        drain_per_s: float = 2.0,
        token_lifetime_s: float = 3600.0,
    ) -> None:
        self.dir = scratch
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.domain = f"{LOOPBACK}:{self.port}"
        self.url = f"https://{self.domain}"
        self.client_id, self.client_secret = client_id, client_secret
        self.member_id = secrets.token_hex(16)
        self.application_token = secrets.token_hex(16)
        self.burst, self.drain_per_s = burst, drain_per_s
        self.token_lifetime_s = token_lifetime_s
        self.state = PortalState()
        self.records: list[Record] = []
        self.issued_secrets: list[str] = [self.application_token, client_secret]
        self.unavailable = False
        self.lose_answers = 0
        self._tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self._refresh: dict[str, int] = {}  # refresh token -> user id
        self._bucket = 0.0
        self._bucket_at = time.monotonic()
        self._lock = threading.RLock()
        self._server: ThreadedServer | None = None
        ca = trustme.CA()
        cert = ca.issue_cert(LOOPBACK, "localhost")
        self.ca_file = self.dir / "portal-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._cert_file = self.dir / "portal-cert.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(self._cert_file))
        self.app = self._build_app()

    # --- the portal's people and data ------------------------------------------------------------

    def add_user(self, user_id: int, name: str, phone_inner: str = "") -> None:
        self.state.users[user_id] = {
            "ID": user_id,
            "NAME": name,
            "ACTIVE": True,
            "UF_PHONE_INNER": phone_inner,
        }

    def add_contact(self, contact_id: int, name: str, phone: str, assigned_by: int) -> None:
        self.state.contacts.append(
            {"ID": contact_id, "NAME": name, "PHONE": phone, "ASSIGNED_BY_ID": assigned_by}
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        self._server = ThreadedServer(self.app, self.port, "fake-bitrix24", ssl_certfile=str(self._cert_file))
        self._server.start(timeout)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    # --- what a person does in the portal -----------------------------------------------------

    def issue_tokens(self, user_id: int = 1) -> dict[str, Any]:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        with self._lock:
            self._tokens[access] = time.monotonic() + self.token_lifetime_s
            self._refresh[refresh] = user_id
            self.issued_secrets += [access, refresh]
        return {
            "access_token": access,
            "expires": int(time.time() + self.token_lifetime_s),
            "expires_in": int(self.token_lifetime_s),
            "scope": APP_SCOPE,
            "domain": self.domain,
            "server_endpoint": f"{self.url}/rest/",
            "status": "L",
            "client_endpoint": f"{self.url}/rest/",
            "member_id": self.member_id,
            "user_id": user_id,
            "refresh_token": refresh,
        }

    def install(self, handler: str, application_token: str | None = None) -> httpx.Response:
        """The admin installs the local application: ``ONAPPINSTALL`` to its install handler."""
        auth = self.issue_tokens() | {"application_token": application_token or self.application_token}
        form = {"event": "ONAPPINSTALL", "data[VERSION]": "1", "data[ACTIVE]": "Y", "data[INSTALLED]": "Y",
                "data[LANGUAGE_ID]": "en", "ts": str(int(time.time()))}  # fmt: skip
        form |= {f"auth[{k}]": str(v) for k, v in auth.items()}
        return self._post_event("ONAPPINSTALL", handler, form)

    def click_to_call(
        self,
        user_id: int,
        phone_number: str,
        *,
        entity_type: str = "CONTACT",
        entity_id: int = 0,
        application_token: str | None = None,
    ) -> tuple[str, httpx.Response]:
        """A manager clicks a number in a CRM card: the portal registers the call itself, then posts
        ``ONEXTERNALCALLSTART`` to every handler bound to it. Returns the CALL_ID and the answer."""
        with self._lock:
            call = METHODS["telephony.externalcall.register"](
                self.state,
                {"USER_ID": user_id, "PHONE_NUMBER": phone_number, "TYPE": 1, "SHOW": 1,
                 "CRM_ENTITY_TYPE": entity_type, "CRM_ENTITY_ID": entity_id},
            )  # fmt: skip
            handlers = [b for b in self.state.bindings if b["event"] == "ONEXTERNALCALLSTART"]
        if not handlers:
            raise RuntimeError("no handler is bound to ONEXTERNALCALLSTART (is the app installed?)")
        line = self.state.lines[0]["NUMBER"] if self.state.lines else ""
        data = {"PHONE_NUMBER": phone_number, "PHONE_NUMBER_INTERNATIONAL": phone_number, "EXTENSION": "",
                "USER_ID": user_id, "CALL_LIST_ID": 0, "LINE_NUMBER": line, "IS_MOBILE": 0,
                "CALL_ID": call["CALL_ID"], "CRM_ENTITY_TYPE": entity_type,
                "CRM_ENTITY_ID": entity_id}  # fmt: skip
        auth = self.issue_tokens(user_id) | {"application_token": application_token or self.application_token}
        form = {"event": "ONEXTERNALCALLSTART", "event_handler_id": "1", "ts": str(int(time.time()))}
        form |= {f"data[{k}]": str(v) for k, v in data.items()}
        form |= {f"auth[{k}]": str(v) for k, v in auth.items()}
        return call["CALL_ID"], self._post_event("ONEXTERNALCALLSTART", handlers[0]["handler"], form)

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (refresh tokens stay valid)."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0

    def _post_event(self, event: str, handler: str, form: dict[str, str]) -> httpx.Response:
        response = httpx.post(handler, data=form, timeout=30.0)
        shown = {k: ("***" if k.startswith("auth[") else v) for k, v in form.items()}
        self._record("event", event, shown, response.status_code, response.text[:500])
        return response

    # --- what the portal received ---------------------------------------------------------------

    def requests(self, method: str, *, ok: bool | None = None) -> list[Record]:
        """REST requests to ``method`` (batched commands included, as ``batch:<method>``-free records)."""
        with self._lock:
            return [r for r in self.records if r.method == method.lower() and (ok is None or r.ok == ok)]

    def bucket_level(self) -> float:
        """The leaky bucket's level now (requests not yet drained)."""
        with self._lock:
            return max(0.0, self._bucket - (time.monotonic() - self._bucket_at) * self.drain_per_s)

    def http_requests(self) -> list[Record]:
        """The REST requests as they came over HTTP (a batch once, not its commands)."""
        with self._lock:
            return [r for r in self.records if r.kind == "rest" and not r.in_batch]

    def finishes(self, call_id: str | None = None) -> list[Record]:
        """Successful ``finish`` requests (alone or in a batch), optionally for one CALL_ID."""
        return [
            r
            for r in self.requests("telephony.externalcall.finish", ok=True)
            if call_id is None or r.params.get("CALL_ID") == call_id
        ]

    def _record(
        self, kind: str, method: str, params: dict[str, Any], status: int, answer: Any, in_batch: bool = False
    ) -> None:
        with self._lock:
            self.records.append(Record(time.time(), kind, method, params, status, answer, in_batch))

    # --- HTTP -----------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/rest/{method:path}", self._rest, methods=["GET", "POST"]),
                Route("/oauth/token/", self._oauth, methods=["GET", "POST"]),
                Route("/_lab/click", self._lab_click, methods=["POST"]),
            ]
        )

    async def _rest(self, request: Request) -> Response:
        method = request.path_params["method"].removesuffix(".json").lower()
        params = await _params(request)
        with self._lock:
            status, answer = self._answer(method, params)
            lost = self.lose_answers > 0 and status != 503
            self.lose_answers -= 1 if lost else 0
        shown = {k: v for k, v in params.items() if k != "auth"}
        if method == "batch" and status == 200:
            self._record_batch(shown, answer)
        self._record("rest", method, shown, 502 if lost else status, None if lost else answer)
        if lost:
            return Response(status_code=502)
        if status == 503 and answer is None:
            return PlainTextResponse("Service Unavailable", status_code=503)
        return JSONResponse(answer, status_code=status)

    def _answer(self, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        if self.unavailable:
            return 503, None
        if not self._take_from_bucket():
            return 503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
        token = str(params.get("auth") or "")
        expiry = self._tokens.get(token)
        if expiry is None:
            return 401, {
                "error": "invalid_token",
                "error_description": "The access token provided is invalid.",
            }
        if expiry <= time.monotonic():
            return 401, {
                "error": "expired_token",
                "error_description": "The access token provided has expired.",
            }
        if method == "batch":
            return 200, self._batch(params)
        return self._call(method, params)

    def _call(self, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        handler = METHODS.get(method)
        if handler is None:
            return 404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
        started = time.time()
        try:
            result = handler(self.state, params)
        except ApiError as error:
            return error.status, {"error": error.error, "error_description": error.description}
        return 200, {"result": result, "time": _timing(started)}

    def _batch(self, params: dict[str, Any]) -> dict[str, Any]:
        halt = str(params.get("halt", "0")).lower() in ("1", "true")
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        started = time.time()
        for n, (key, command) in enumerate(_commands(params).items()):
            name, _, query = str(command).partition("?")
            if n >= BATCH_MAX_LENGTH:
                status, answer = 400, _error("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
            elif name.lower() == "batch":
                status, answer = (
                    405,
                    _error("ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"),
                )
            else:
                pairs = parse_qsl(query, keep_blank_values=True)
                status, answer = self._call(name.lower(), {k: _resolve(v, results) for k, v in pairs})
            if status == 200:
                results[key] = answer["result"]
            else:
                errors[key] = answer
                if halt:
                    break
        return {"result": {"result": results or [], "result_error": errors or [], "result_total": [],
                           "result_next": [], "result_time": []}, "time": _timing(started)}  # fmt: skip

    def _record_batch(self, params: dict[str, Any], answer: dict[str, Any]) -> None:
        """Each command of a batch is recorded as a request of its own method, as if sent alone."""
        inner = answer["result"]
        results, errors = inner["result"] or {}, inner["result_error"] or {}
        for key, command in _commands(params).items():
            name, _, query = str(command).partition("?")
            if key in results:
                status, result = 200, {"result": results[key]}
            elif key in errors:
                status, result = 400, errors[key]
            else:
                continue
            shown = {k: _resolve(v, results) for k, v in parse_qsl(query, keep_blank_values=True)}
            self._record("rest", name.lower(), shown, status, result, in_batch=True)

    def _take_from_bucket(self) -> bool:
        now = time.monotonic()
        self._bucket = max(0.0, self._bucket - (now - self._bucket_at) * self.drain_per_s)
        self._bucket_at = now
        if self._bucket + 1 > self.burst:
            return False
        self._bucket += 1
        return True

    async def _oauth(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params |= await _params(request)
        shown = {
            k: ("***" if k in ("client_secret", "refresh_token", "code") else v) for k, v in params.items()
        }
        with self._lock:
            status, answer = self._refresh_token(params)
        self._record(
            "oauth", "oauth.token", shown, status, {k: v for k, v in answer.items() if "token" not in k}
        )
        return JSONResponse(answer, status_code=status)

    def _refresh_token(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if p.get("grant_type") != "refresh_token":
            return 400, {"error": "invalid_request", "error_description": "grant_type must be refresh_token"}
        if p.get("client_id") != self.client_id or p.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Invalid client"}
        user_id = self._refresh.pop(str(p.get("refresh_token") or ""), None)
        if user_id is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid grant"}
        return 200, self.issue_tokens(user_id)

    async def _lab_click(self, request: Request) -> Response:
        import asyncio

        try:
            body = json.loads(await request.body())
            user_id, number = int(body["user_id"]), str(body["phone_number"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'expected {"user_id": 7, "phone_number": "1002"}'}, status_code=400)
        loop = asyncio.get_running_loop()
        try:
            call_id, answer = await loop.run_in_executor(None, lambda: self.click_to_call(user_id, number))
        except Exception as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        return JSONResponse(
            {"CALL_ID": call_id, "handler_status": answer.status_code, "handler": answer.json()}
        )


async def _params(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return dict(request.query_params)
    if "json" in request.headers.get("content-type", ""):
        try:
            obj = json.loads(body)
        except ValueError:
            return {}
        return obj if isinstance(obj, dict) else {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _commands(params: dict[str, Any]) -> dict[str, str]:
    """A batch's ``cmd``: an object (JSON), a list, or form-encoded ``cmd[key]=...``, keys as strings."""
    commands = params.get("cmd")
    if isinstance(commands, list):
        return {str(i): str(c) for i, c in enumerate(commands)}
    if isinstance(commands, dict):
        return {str(k): str(c) for k, c in commands.items()}
    found = (re.fullmatch(r"cmd\[([^\]]+)\]", k) for k in params)
    return {m.group(1): str(params[m.group(0)]) for m in found if m}


def _resolve(value: str, results: dict[str, Any]) -> str:
    """``$result[key][field]...`` from an earlier command's result; left as it is when there is none
    (as the portal does)."""

    def one(match: re.Match[str]) -> str:
        found: Any = results.get(match.group(1))
        for step in re.findall(r"\[([^\]]+)\]", match.group(2)):
            if isinstance(found, dict) and step in found:
                found = found[step]
            elif isinstance(found, list) and step.isdigit() and int(step) < len(found):
                found = found[int(step)]
            else:
                return match.group(0)
        return str(found) if isinstance(found, str | int | float) else match.group(0)

    return _RESULT_REF.sub(one, value)


def _error(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}


def _timing(started: float) -> dict[str, Any]:
    finished = time.time()
    took = finished - started
    return {"start": started, "finish": finished, "duration": took, "processing": took,
            "date_start": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(started)),
            "date_finish": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(finished)),
            "operating": 0, "operating_reset_at": int(finished) + 600}  # fmt: skip
