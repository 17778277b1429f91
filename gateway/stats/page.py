"""The ``/stats`` page on the gateway's HTTP face.

- ``GET /stats``: the page (static; it asks for the access token and keeps it in the tab's session
  storage, or takes it from ``#token=...``), its script and style under ``/stats/static/``, and
  ``/stats/chart.js``: Chart.js from the system (Debian's ``libjs-chart.js``, ``[stats] chart_js``),
  never a CDN;
- ``GET /stats/data?from=&to=&group=``: the figures as JSON (``deskphone-gateway report``'s);
- ``GET /stats/export.csv?from=&to=&group=``: the same figures as CSV.

The data routes want ``Authorization: Bearer <[stats] token>``; without a token configured every
``/stats`` route answers 404.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import date, datetime
from importlib import resources
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .export import to_csv, to_json
from .figures import GROUPINGS, Report
from .source import report_from_store

if TYPE_CHECKING:
    from ..service import Gateway

STATIC = {"stats.js": "text/javascript", "stats.css": "text/css"}


def stats_routes(gateway: Gateway) -> list[Route]:
    stats = gateway.config.stats

    def off() -> Response | None:
        if not stats.token:
            return PlainTextResponse("the statistics page is off: set [stats] token", status_code=404)
        return None

    async def page(request: Request) -> Response:
        return off() or Response(_static("stats.html"), media_type="text/html; charset=utf-8")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return PlainTextResponse("not found", status_code=404)
        return off() or Response(_static(name), media_type=STATIC[name])

    async def chart_js(request: Request) -> Response:
        if (closed := off()) is not None:
            return closed
        if not stats.chart_js.is_file():
            return PlainTextResponse(
                f"Chart.js is not installed at {stats.chart_js} (apt install libjs-chart.js)", status_code=500
            )
        return FileResponse(stats.chart_js, media_type="text/javascript")

    async def report(request: Request) -> Report | Response:
        if (closed := off()) is not None:
            return closed
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), stats.token.reveal().encode()
        ):
            return JSONResponse({"error": "a valid 'Authorization: Bearer <token>' is required"}, 401)
        period = _period(request, stats.time_zone)
        if isinstance(period, str):
            return JSONResponse({"error": period}, 400)
        start, end, grouping = period
        return await asyncio.get_running_loop().run_in_executor(
            None, report_from_store, gateway.store, gateway.desks, stats, start, end, grouping
        )

    async def data(request: Request) -> Response:
        answer = await report(request)
        return answer if isinstance(answer, Response) else JSONResponse(to_json(answer))

    async def export_csv(request: Request) -> Response:
        answer = await report(request)
        if isinstance(answer, Response):
            return answer
        name = f"calls-{answer.start}-{answer.end}.csv"
        return Response(
            to_csv(answer),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    return [
        Route("/stats", page, methods=["GET"]),
        Route("/stats/chart.js", chart_js, methods=["GET"]),
        Route("/stats/static/{name}", static, methods=["GET"]),
        Route("/stats/data", data, methods=["GET"]),
        Route("/stats/export.csv", export_csv, methods=["GET"]),
    ]


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _period(request: Request, time_zone: str) -> tuple[date, date, str] | str:
    """The asked days and grouping, or what is wrong with them; by default this month so far."""
    params = request.query_params
    try:
        end = (
            date.fromisoformat(params["to"]) if params.get("to") else datetime.now(ZoneInfo(time_zone)).date()
        )
        start = date.fromisoformat(params["from"]) if params.get("from") else end.replace(day=1)
    except ValueError:
        return "'from' and 'to' must be days (YYYY-MM-DD)"
    if start > end:
        return f"'from' ({start}) is after 'to' ({end})"
    if (end - start).days > 366:
        return "at most 367 days at once"
    grouping = params.get("group", "total")
    if grouping not in GROUPINGS:
        return f"'group' must be one of {', '.join(GROUPINGS)}"
    return start, end, grouping
