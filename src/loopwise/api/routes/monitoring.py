"""Monitoring's figures for programs: ``GET /api/v1/alerts`` (newest first; ``?endpoint=``,
``?status=``, ``?limit=`` up to 1,000) and ``GET /api/v1/monitoring/schedules``."""

from __future__ import annotations

import asyncio
import functools

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from loopwise.api.deps import StoreDep
from loopwise.monitoring import queries

router = APIRouter(prefix="/api/v1")


@router.get("/alerts")
async def alerts(
    store: StoreDep, endpoint: str | None = None, status: str | None = None, limit: int = 100
) -> Response:
    """Monitoring's alerts, newest first."""
    read = functools.partial(
        queries.alerts, store, endpoint=endpoint, status=status, limit=max(1, min(limit, 1000))
    )
    found = await asyncio.to_thread(read)  # off the event loop the data plane shares
    return Response(orjson.dumps([a.to_dict() for a in found]), media_type="application/json")


@router.get("/monitoring/schedules")
async def schedules(store: StoreDep) -> Response:
    found = await asyncio.to_thread(queries.schedules, store)
    return Response(orjson.dumps([s.to_dict() for s in found]), media_type="application/json")
