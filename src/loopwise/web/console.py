"""The console's pages: endpoints, and one endpoint with its variants and live per-variant charts.

Pages are rendered on the server from the services; the charts are drawn in the browser (``charts.js``,
SVG) from ``/api/v1/endpoints/{name}/metrics``, the same table ``loopwise endpoint metrics`` prints and
plots, and refresh themselves every few seconds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from loopwise.errors import NotFoundError
from loopwise.serving.metrics import CHARTS
from loopwise.web.pages import HERE, templates

if TYPE_CHECKING:
    from loopwise.storage import Store


def mount_console(app: FastAPI, store: Store) -> None:
    """Add the console's pages under ``/console`` and its files under ``/static`` to ``app``."""
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("")
    async def home() -> Response:
        return RedirectResponse("/console/endpoints")

    @router.get("/endpoints", response_class=HTMLResponse)
    async def endpoints(request: Request) -> Response:
        from loopwise.serving.service import list_endpoints

        found = await asyncio.to_thread(list_endpoints, store)
        return templates.TemplateResponse(request, "endpoints.html", {"endpoints": found})

    @router.get("/endpoints/{name}", response_class=HTMLResponse)
    async def endpoint(request: Request, name: str) -> Response:
        from loopwise.serving.service import describe_endpoint

        try:
            found, history = await asyncio.to_thread(describe_endpoint, store, name)
        except NotFoundError as exc:
            return templates.TemplateResponse(
                request, "missing.html", {"message": str(exc), "back": "/console/endpoints"}, status_code=404
            )
        live = request.app.state.plane.live_instances(name)
        context = {
            "endpoint": found,
            "history": list(reversed(history)),
            "shares": found.config.traffic_shares(),
            "live": live,
            "charts": CHARTS,
        }
        return templates.TemplateResponse(request, "endpoint.html", context)

    @router.get("/alerts", response_class=HTMLResponse)
    async def alerts(request: Request, endpoint: str | None = None, status: str | None = None) -> Response:
        def read() -> tuple[list[Any], list[Any]]:
            with store.uow() as uow:
                return uow.monitoring.alerts(endpoint=endpoint, status=status), uow.monitoring.schedules()

        found, schedules = await asyncio.to_thread(read)
        context = {"alerts": found, "schedules": schedules, "endpoint": endpoint, "status": status}
        return templates.TemplateResponse(request, "alerts.html", context)

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
