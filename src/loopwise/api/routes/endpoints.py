"""The endpoints' API beside the invocations fast path (:mod:`loopwise.api.invocations`): what runs
(``GET /api/v1/endpoints``, ``.../{name}`` with its live instances on this server), the data plane's
figures (``.../{name}/metrics``, ``/shadow``, ``/bandit``, ``/scaling``, and ``GET /metrics`` in
Prometheus' format), and ground truth or rewards sent back (``POST .../{name}/feedback``)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from loopwise.api.deps import PlaneDep, StoreDep
from loopwise.api.fields import BadRequest, refuse_nul
from loopwise.api.invocations import read_body
from loopwise.experiments.bandit import posterior_mean
from loopwise.serving import service

router = APIRouter()


def _json(document: Any) -> Response:
    return Response(orjson.dumps(document), media_type="application/json")


@router.get("/metrics")
async def prometheus(plane: PlaneDep) -> Response:
    """The data plane's metrics in Prometheus' text format."""
    return Response(generate_latest(plane.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/endpoints")
async def endpoints(store: StoreDep) -> Response:
    """Every endpoint with its status and the configuration in force."""
    found = await asyncio.to_thread(service.list_endpoints, store)
    return _json([e.to_dict() for e in found])


@router.get("/api/v1/endpoints/{name}")
async def endpoint(name: str, store: StoreDep, plane: PlaneDep) -> Response:
    """The endpoint, its configuration history, and each variant's live instances and execution provider
    (with the fallback warning of a GPU variant serving on the CPU) on this server."""
    found, history = await asyncio.to_thread(service.describe_endpoint, store, name)
    live = plane.live_instances(name)
    return _json(
        {
            **found.to_dict(),
            "live_instances": live,
            "providers": plane.providers(name),
            "history": [h.to_dict() for h in history],
        }
    )


@router.get("/api/v1/endpoints/{name}/metrics")
async def endpoint_metrics(name: str, plane: PlaneDep, period: int = 60, window: int = 3600) -> Response:
    """Per-variant figures by period (SageMaker's names) over the last ``window`` seconds."""
    plane.runtime(name)  # 404 unless it is in service
    if not 1 <= period <= window <= 3600:
        raise BadRequest("period and window are seconds with 1 <= period <= window <= 3600")
    rows = plane.metrics.table(name, period_s=period, window_s=window)
    return _json({"endpoint": name, "period_s": period, "rows": rows})


@router.post("/api/v1/endpoints/{name}/feedback")
async def feedback(name: str, request: Request, store: StoreDep, plane: PlaneDep) -> Response:
    """Ground truth (``label`` or ``labels``) or ``reward`` for inference ids: a JSON list of items, one
    item, or ``{"items": [...], "allow_unknown": true}``. Ids the endpoint does not know and labels
    its models do not have are refused (400, naming them) unless ``allow_unknown``
    (:mod:`loopwise.serving.known`)."""
    from loopwise.serving.feedback import parse_feedback

    body = await read_body(request)
    refuse_nul(body)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    items, allow_unknown = _feedback_body(document)
    parsed = parse_feedback(items, source="the feedback")
    record = functools.partial(
        service.record_feedback,
        store,
        name,
        parsed,
        allow_unknown=allow_unknown,
        known=plane.known,
        unanswered=plane.known.answered.unanswered(name, [item.inference_id for item in parsed]),
    )
    new = await asyncio.to_thread(record)
    rewarded = await plane.reward(name, parsed)
    return _json({"recorded": len(parsed), "new": new, "rewarded": rewarded})


def _feedback_body(document: Any) -> tuple[list[Any], bool]:
    """The items of a feedback body and whether unknown ids and labels are deliberate."""
    if isinstance(document, dict) and "items" in document:
        extra = sorted(set(document) - {"items", "allow_unknown"})
        if extra:
            raise BadRequest(f"{', '.join(extra)}: not a field of a feedback body (items, allow_unknown)")
        allow_unknown = document.get("allow_unknown", False)
        if not isinstance(allow_unknown, bool):
            raise BadRequest("allow_unknown: true or false")
        document = document["items"]
        if not isinstance(document, list):
            raise BadRequest('items: a list of {"inference_id": ..., "label": ...}')
        return document, allow_unknown
    if isinstance(document, dict):
        return [document], False
    if not isinstance(document, list):
        raise BadRequest('send a list of {"inference_id": ..., "label": ...}')
    return document, False


@router.get("/api/v1/endpoints/{name}/shadow")
async def shadow_report(name: str, plane: PlaneDep) -> Response:
    """Each shadow variant against production since the server started: agreement and flip matrix."""
    plane.runtime(name)  # 404 unless it is in service
    return _json({"endpoint": name, "shadows": plane.shadow_report(name)})


@router.get("/api/v1/endpoints/{name}/bandit")
async def bandit(name: str, plane: PlaneDep) -> Response:
    """A bandit endpoint's evidence per variant and each variant's posterior mean reward."""
    runtime = plane.runtime(name)
    arms = {
        v: {"rewards": r, "pulls": n, "posterior_mean": posterior_mean(r, n)}
        for v, (r, n) in sorted(runtime.arms.items())
    }
    return _json({"endpoint": name, "routing": runtime.routing.config.routing, "arms": arms})


@router.get("/api/v1/endpoints/{name}/scaling")
async def scaling_events(name: str, store: StoreDep, plane: PlaneDep) -> Response:
    """The autoscaler's decisions for the endpoint (newest last, whichever server took them), the
    servers' latest load reports it decides from (``servers``), and each variant's instances on this
    server (an instance count is per server)."""
    from loopwise.serving.autoscaler import scaling_view

    runtime = plane.runtime(name)
    events, loads = await asyncio.to_thread(scaling_view, store, name)
    instances = {v: {"target": p.target, "live": len(p.live)} for v, p in runtime.pools.items()}
    servers = [
        {
            "server": load.replica,
            "variant": load.variant,
            "invocations": load.invocations,
            "period_s": load.period_s,
            "instances": load.instances,
        }
        for load in loads
    ]
    return _json({"events": [e.to_dict() for e in events], "instances": instances, "servers": servers})
