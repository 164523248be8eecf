"""The human review API, in the shape of Augmented AI's runtime.

Loops: ``POST /api/v1/review/loops`` (StartHumanLoop: ``HumanLoopName``, ``FlowDefinitionName``,
``HumanLoopInput.InputContent``; 201 when made, 200 when the same loop existed), ``GET
/api/v1/review/loops`` (ListHumanLoops: ``FlowDefinitionName``, ``Status``, ``CreationTimeAfter``,
``CreationTimeBefore``, ``InferenceId``, ``SortOrder``, ``MaxResults``, ``NextToken``), ``GET
.../loops/{name}`` (DescribeHumanLoop), ``GET .../loops/{name}/output`` (its output.json), ``POST
.../loops/{name}/stop`` and ``DELETE .../loops/{name}``. Flow definitions: ``POST /api/v1/review/flows``,
``GET .../flows``, ``GET .../flows/{name}`` (with its loops' counts) and ``DELETE .../flows/{name}``.

Every route answers only about the flows of the caller's teams, and their loops (an admin's: all): a
flow or loop of another team is 'not found' (404), and lists leave them out, as for labeling jobs.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from loopwise.api.deps import StoreDep, WorkerDep
from loopwise.api.fields import Count, Moment, Text
from loopwise.api.schemas import FlowRequest, StartRequest, parse_body
from loopwise.labeling.records import Category
from loopwise.review import queries, service
from loopwise.review.loops import describe_flow

router = APIRouter(prefix="/api/v1/review")


def _json(document: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(document, default=str), status_code=status, media_type="application/json")


@router.post("/loops")
async def start(request: Request, store: StoreDep, worker: WorkerDep) -> Response:
    asked = await parse_body(request, StartRequest)
    loop, made = await asyncio.to_thread(
        service.start_loop,
        store,
        asked.HumanLoopName,
        asked.FlowDefinitionName,
        asked.HumanLoopInput.InputContent,
        worker,
    )
    return _json({"HumanLoopName": loop.name, "HumanLoopStatus": loop.status}, 201 if made else 200)


@router.get("/loops")
async def loops(
    store: StoreDep,
    worker: WorkerDep,
    FlowDefinitionName: Text | None = None,
    Status: Text | None = None,
    CreationTimeAfter: Moment | None = None,
    CreationTimeBefore: Moment | None = None,
    InferenceId: Text | None = None,
    SortOrder: Literal["Ascending", "Descending"] = "Ascending",
    MaxResults: Count = service.MAX_RESULTS,
    NextToken: Text | None = None,
) -> Response:
    listed = functools.partial(
        service.list_loops,
        store,
        flow=FlowDefinitionName,
        status=Status,
        created_after=CreationTimeAfter,
        created_before=CreationTimeBefore,
        inference_id=InferenceId,
        descending=SortOrder == "Descending",
        max_results=MaxResults,
        next_token=NextToken,
        worker=worker,
    )
    page, token = await asyncio.to_thread(listed)
    summaries = [
        {
            "HumanLoopName": loop.name,
            "HumanLoopStatus": loop.status,
            "FlowDefinitionName": loop.flow,
            "CreationTime": loop.created_at.isoformat(),
            **({"FailureReason": loop.failure_reason} if loop.failure_reason else {}),
        }
        for loop in page
    ]
    return _json({"HumanLoopSummaries": summaries, "NextToken": token})


@router.get("/loops/{name}")
async def describe(name: str, store: StoreDep, worker: WorkerDep) -> Response:
    return _json((await asyncio.to_thread(service.describe_loop, store, name, worker)).to_dict())


@router.get("/loops/{name}/output")
async def output(name: str, store: StoreDep, worker: WorkerDep) -> Response:
    """The loop's output.json; who answered (workers' emails and teams) only for reviewers and
    admins: a program that starts and reads loops gets the answers, not the people."""
    document = await asyncio.to_thread(queries.loop_output, store, name, worker)
    if not worker.can("review"):
        for answer in document.get("humanAnswers", []):
            answer.pop("workerMetadata", None)
    return _json(document)


@router.post("/loops/{name}/stop")
async def stop(name: str, store: StoreDep, worker: WorkerDep) -> Response:
    return _json((await asyncio.to_thread(service.stop_loop, store, name, worker)).to_dict())


@router.delete("/loops/{name}")
async def delete(name: str, store: StoreDep, worker: WorkerDep) -> Response:
    await asyncio.to_thread(service.delete_loop, store, name, worker)
    return Response(status_code=204)


@router.post("/flows")
async def create_flow(request: Request, store: StoreDep) -> Response:
    asked = await parse_body(request, FlowRequest)
    made = functools.partial(
        service.create_flow,
        store,
        asked.name,
        team=asked.team,
        categories=[Category(c.label, c.description) for c in asked.categories],
        title=asked.title,
        short_instructions=asked.short_instructions,
        full_instructions=asked.full_instructions,
        answer_key=asked.answer_key,
        task_count=asked.task_count,
        task_time_limit_s=asked.task_time_limit_s,
        lifetime_s=asked.task_availability_lifetime_s,
        conditions=asked.activation_conditions,
        webhook=asked.webhook,
        max_open_loops=asked.max_open_loops,
        max_loops_per_hour=asked.max_loops_per_hour,
        max_loops_per_invocation=asked.max_loops_per_invocation,
    )
    flow = await asyncio.to_thread(made)
    # the creator (an admin) sees the webhook whole, and its signing secret this once
    secret = {"webhook_secret": flow.webhook_secret} if flow.webhook_secret else {}
    return _json({**describe_flow(flow, reveal_webhook=True), **secret}, 201)


@router.get("/flows")
async def flows(store: StoreDep, worker: WorkerDep) -> Response:
    """Every flow the caller's teams may see; webhook URLs are whole for admins only, ``https://host/…``
    for the others."""
    found = await asyncio.to_thread(service.list_flows, store, worker)
    return _json([describe_flow(f, reveal_webhook=worker.can("manage")) for f in found])


@router.get("/flows/{name}")
async def flow(name: str, store: StoreDep, worker: WorkerDep) -> Response:
    found, counts = await asyncio.to_thread(queries.flow_with_counts, store, name, worker)
    return _json({**describe_flow(found, reveal_webhook=worker.can("manage")), "loops": counts})


@router.delete("/flows/{name}")
async def delete_flow(name: str, store: StoreDep, worker: WorkerDep) -> Response:
    flow = await asyncio.to_thread(service.delete_flow, store, name, worker)
    return _json(describe_flow(flow, reveal_webhook=True))  # admins only (``manage``)
