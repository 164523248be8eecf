"""The loop as it stands, on one page (``/console/loop``): the read model of :mod:`loopwise.overview`
drawn, each part linking to its own page for more."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from loopwise.api.deps import PlaneDep, StoreDep, WorkerDep
from loopwise.overview import overview
from loopwise.web.pages import templates

router = APIRouter(include_in_schema=False)


@router.get("/console/loop", response_class=HTMLResponse)
async def loop_page(request: Request, store: StoreDep, plane: PlaneDep, worker: WorkerDep) -> Response:
    found = await asyncio.to_thread(overview, store, plane.metrics, worker)
    return templates.TemplateResponse(request, "loop.html", {"o": found, "section": "loop"})
