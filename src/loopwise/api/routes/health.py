"""Liveness for load balancers: ``GET /healthz``, open to all."""

from __future__ import annotations

from fastapi import APIRouter

from loopwise.api.deps import LeasesDep

router = APIRouter()


@router.get("/healthz")
async def health(leases: LeasesDep) -> dict[str, object]:
    """Liveness for load balancers, open to all: says that the server answers, and which background
    duties this server process runs now (``duties``: the leases it holds, ``storage.leases``)."""
    return {"status": "ok", "duties": leases.held()}
