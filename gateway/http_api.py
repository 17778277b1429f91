"""The HTTP face (Starlette on uvicorn, the ``http`` thread): what CRMs call.

- ``POST /bitrix24/install``: the local application's install handler (``ONAPPINSTALL``);
- ``POST /bitrix24/events``: ``ONEXTERNALCALLSTART`` (click-to-call), checked against the stored
  ``application_token`` (403 otherwise, nothing dialled);
- ``POST /v1/calls``: click-to-call for any CRM (bearer token per integration), answered with the
  phone's reply; ``GET /v1/openapi.json`` describes it;
- ``/stats``: call statistics per manager (``gateway.stats.page``);
- ``GET /healthz``.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from configschema.values import split_host_port
from crm_bridge.codec import MAX_DISPLAY_LEN, MAX_NUMBER_LEN

from .config import HttpConfig
from .openapi import OPENAPI, STATUS_OF_ERROR
from .stats.page import stats_routes

if TYPE_CHECKING:
    from .service import ClickToCall, Gateway

logger = logging.getLogger(__name__)

MAX_BODY = 16 * 1024


def build_app(gateway: Gateway) -> Starlette:
    async def healthz(request: Request) -> Response:
        return JSONResponse(await _in_thread(gateway.health))

    async def b24_install(request: Request) -> Response:
        adapter = gateway.adapter("bitrix24")
        if adapter is None:
            return JSONResponse({"error": "bitrix24 is not enabled"}, status_code=404)
        form = await _form(request)
        if form is None:
            return JSONResponse({"error": "expected a form-encoded body"}, status_code=400)
        ok, message = await _in_thread(adapter.install, form)  # type: ignore[attr-defined]
        return JSONResponse({"ok": ok, "message": message}, status_code=200 if ok else 403)

    async def b24_events(request: Request) -> Response:
        adapter = gateway.adapter("bitrix24")
        if adapter is None:
            return JSONResponse({"error": "bitrix24 is not enabled"}, status_code=404)
        form = await _form(request)
        if form is None:
            return JSONResponse({"error": "expected a form-encoded body"}, status_code=400)
        # The contact's name is a REST call to the portal: off the event loop.
        verdict = await _in_thread(adapter.click_from_event, form, gateway.desks)  # type: ignore[attr-defined]
        if isinstance(verdict, tuple):
            status, message = verdict
            return JSONResponse({"error": message}, status_code=status)
        reply = await gateway.click_to_call(verdict)
        return JSONResponse({"ok": reply.ok, "request_id": reply.request_id})

    async def v1_calls(request: Request) -> Response:
        integration = _bearer(request, gateway)
        if integration is None:
            return _problem(401, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required")
        body = await request.body()
        if len(body) > MAX_BODY:
            return _problem(413, "invalid_payload", f"the body is over {MAX_BODY} bytes")
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _problem(400, "invalid_payload", "the body is not valid JSON")
        click = _click_from_json(obj, gateway, integration)
        if isinstance(click, Response):
            return click
        reply = await gateway.click_to_call(click)
        if reply.ok:
            return JSONResponse(
                {
                    "request_id": reply.request_id,
                    "status": reply.result.get("status"),
                    "result": reply.result,
                },
                status_code=202,
            )
        code = reply.error_code or "failed"
        return _problem(STATUS_OF_ERROR.get(code, 502), code, reply.error_message or code, reply.request_id)

    async def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/bitrix24/install", b24_install, methods=["POST"]),
            Route("/bitrix24/events", b24_events, methods=["POST"]),
            Route("/v1/calls", v1_calls, methods=["POST"]),
            Route("/v1/openapi.json", openapi, methods=["GET"]),
            *stats_routes(gateway),
        ]
    )


async def _in_thread(func: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def _form(request: Request) -> dict[str, str] | None:
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return None
    body = await request.body()
    if len(body) > MAX_BODY:
        return None
    from urllib.parse import parse_qsl

    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None


def _bearer(request: Request, gateway: Gateway) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    for name, secret in gateway.config.api.tokens.items():
        if hmac.compare_digest(token.strip().encode(), secret.reveal().encode()):
            return name
    return None


def _problem(status: int, code: str, message: str, request_id: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status)


def _click_from_json(obj: Any, gateway: Gateway, integration: str) -> ClickToCall | Response:
    from .service import ClickToCall

    if not isinstance(obj, dict):
        return _problem(400, "invalid_payload", "the body must be a JSON object")
    number = obj.get("number")
    if not isinstance(number, str):
        return _problem(400, "invalid_payload", "'number' is required and must be a string")
    if not number or len(number) > MAX_NUMBER_LEN or not all(c.isdigit() or c in "+*#" for c in number):
        return _problem(
            422, "invalid_number", f"'number' must be 1 to {MAX_NUMBER_LEN} digits, '+', '*', '#'"
        )
    desk_id, user = obj.get("desk"), obj.get("crm_user")
    if (desk_id is None) == (user is None):
        return _problem(400, "invalid_payload", "exactly one of 'desk' and 'crm_user' is required")
    if not isinstance(desk_id or user, str | int):
        return _problem(400, "invalid_payload", "'desk' and 'crm_user' must be strings")
    desk = (
        gateway.desks.by_device(str(desk_id)) if desk_id is not None else gateway.desks.by_crm_user(str(user))
    )
    if desk is None:
        which = f"desk {desk_id!r}" if desk_id is not None else f"CRM user {user!r}"
        return _problem(404, "not_found", f"{which} is not in the office inventory")
    ttl = obj.get("ttl_s", gateway.config.api.dial_ttl_s)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 1 <= ttl <= 3600:
        return _problem(400, "invalid_payload", "'ttl_s' must be a number of seconds from 1 to 3600")
    display = obj.get("display")
    if display is not None and (not isinstance(display, str) or not display.isprintable()):
        return _problem(400, "invalid_payload", "'display' must be a printable string")
    crm = obj.get("crm")
    if crm is not None and not isinstance(crm, dict):
        return _problem(400, "invalid_payload", "'crm' must be an object")
    return ClickToCall(
        desk=desk,
        number=number,
        ttl_s=float(ttl),
        display=display[:MAX_DISPLAY_LEN] if display else None,
        crm=crm,
        who=f"integration {integration}",
    )


class HttpFace:
    """uvicorn serving ``build_app`` on its own thread (``http``) and event loop."""

    def __init__(self, config: HttpConfig, gateway: Gateway) -> None:
        host, port = split_host_port(config.listen)
        self._server = uvicorn.Server(
            uvicorn.Config(
                build_app(gateway),
                host=host,
                port=port or 8088,
                log_level="warning",
                access_log=False,
                ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
                ssl_keyfile=str(config.tls_key) if config.tls_key else None,
                lifespan="off",
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP face did not start (is the listen address free?)")
            time.sleep(0.02)
        logger.info("HTTP face listening on %s:%d", self._server.config.host, self._server.config.port)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
