"""Liveness for load balancers: ``GET /healthz``, open to all."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()


@router.get("/healthz")
async def health() -> dict[str, object]:
    """Liveness for load balancers, open to all: says nothing but that the server answers."""
    return {"status": "ok"}
