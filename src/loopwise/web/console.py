"""The console's pages: endpoints, and one endpoint with its variants and live per-variant charts.

Pages are rendered on the server from the services; the charts are drawn in the browser (``charts.js``,
SVG) from ``/api/v1/endpoints/{name}/metrics``, the same table ``loopwise endpoint metrics`` prints and
plots, and refresh themselves every few seconds. The pages' files are served under ``/static``
(:data:`static`, mounted by :func:`loopwise.app.create_app`).
"""

from __future__ import annotations

import asyncio
import functools

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from loopwise.api.deps import PlaneDep, StoreDep
from loopwise.errors import NotFoundError
from loopwise.monitoring import queries
from loopwise.serving import service
from loopwise.serving.metrics import CHARTS
from loopwise.web.pages import HERE, templates

router = APIRouter(prefix="/console", include_in_schema=False)


def static() -> StaticFiles:
    """The pages' style sheets, scripts and images, for ``/static``."""
    return StaticFiles(directory=HERE / "static")


@router.get("")
async def home() -> Response:
    return RedirectResponse("/console/endpoints")


@router.get("/endpoints", response_class=HTMLResponse)
async def endpoints(request: Request, store: StoreDep) -> Response:
    found = await asyncio.to_thread(service.list_endpoints, store)
    return templates.TemplateResponse(request, "endpoints.html", {"endpoints": found})


@router.get("/endpoints/{name}", response_class=HTMLResponse)
async def endpoint(request: Request, name: str, store: StoreDep, plane: PlaneDep) -> Response:
    try:
        found, history = await asyncio.to_thread(service.describe_endpoint, store, name)
    except NotFoundError as exc:
        return templates.TemplateResponse(
            request, "missing.html", {"message": str(exc), "back": "/console/endpoints"}, status_code=404
        )
    context = {
        "endpoint": found,
        "history": list(reversed(history)),
        "shares": found.config.traffic_shares(),
        "live": plane.live_instances(name),
        "charts": CHARTS,
    }
    return templates.TemplateResponse(request, "endpoint.html", context)


@router.get("/alerts", response_class=HTMLResponse)
async def alerts(
    request: Request, store: StoreDep, endpoint: str | None = None, status: str | None = None
) -> Response:
    read = functools.partial(queries.alerts_and_schedules, store, endpoint=endpoint, status=status)
    found, schedules = await asyncio.to_thread(read)
    context = {"alerts": found, "schedules": schedules, "endpoint": endpoint, "status": status}
    return templates.TemplateResponse(request, "alerts.html", context)
