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
from typing import TYPE_CHECKING, Any, Literal

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from loopwise.api.auth import principal
from loopwise.api.fields import Count, Moment, Seconds, Text
from loopwise.api.labeling import CategoryIn, _parse
from loopwise.labeling.records import Category
from loopwise.review import service
from loopwise.review.budget import DEFAULT_PER_INVOCATION
from loopwise.review.loops import describe_flow
from loopwise.review.output import read_output

if TYPE_CHECKING:
    from loopwise.storage import Store


class LoopInput(BaseModel):
    InputContent: Any


class StartRequest(BaseModel):
    HumanLoopName: Text
    FlowDefinitionName: Text
    HumanLoopInput: LoopInput


class FlowRequest(BaseModel):
    name: Text
    team: Text
    categories: list[CategoryIn]
    title: Text | None = None
    short_instructions: Text = ""
    full_instructions: Text = ""
    answer_key: Text = "label"
    task_count: Count = 1
    task_time_limit_s: Seconds = 300
    task_availability_lifetime_s: Seconds = service.DEFAULT_LIFETIME_S
    activation_conditions: Any = None
    webhook: Text | None = Field(default=None, max_length=2000)
    max_open_loops: int | None = None
    max_loops_per_hour: int | None = None
    max_loops_per_invocation: int = DEFAULT_PER_INVOCATION


def _json(document: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(document, default=str), status_code=status, media_type="application/json")


def mount_review(app: FastAPI, store: Store) -> None:
    router = APIRouter(prefix="/api/v1/review")

    @router.post("/loops")
    async def start(request: Request) -> Response:
        asked = await _parse(request, StartRequest)
        loop, made = await asyncio.to_thread(
            service.start_loop,
            store,
            asked.HumanLoopName,
            asked.FlowDefinitionName,
            asked.HumanLoopInput.InputContent,
            principal(request).worker,
        )
        return _json({"HumanLoopName": loop.name, "HumanLoopStatus": loop.status}, 201 if made else 200)

    @router.get("/loops")
    async def loops(
        request: Request,
        FlowDefinitionName: Text | None = None,
        Status: Text | None = None,
        CreationTimeAfter: Moment | None = None,
        CreationTimeBefore: Moment | None = None,
        InferenceId: Text | None = None,
        SortOrder: Literal["Ascending", "Descending"] = "Ascending",
        MaxResults: Count = service.MAX_RESULTS,
        NextToken: Text | None = None,
    ) -> Response:
        page, token = await asyncio.to_thread(
            lambda: service.list_loops(
                store,
                flow=FlowDefinitionName,
                status=Status,
                created_after=CreationTimeAfter,
                created_before=CreationTimeBefore,
                inference_id=InferenceId,
                descending=SortOrder == "Descending",
                max_results=MaxResults,
                next_token=NextToken,
                worker=principal(request).worker,
            )
        )
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
    async def describe(request: Request, name: str) -> Response:
        worker = principal(request).worker
        return _json((await asyncio.to_thread(service.describe_loop, store, name, worker)).to_dict())

    @router.get("/loops/{name}/output")
    async def output(request: Request, name: str) -> Response:
        """The loop's output.json; who answered (workers' emails and teams) only for reviewers and
        admins: a program that starts and reads loops gets the answers, not the people."""
        worker = principal(request).worker

        def read() -> dict[str, Any]:
            return read_output(service.describe_loop(store, name, worker))

        document = await asyncio.to_thread(read)
        if not worker.can("review"):
            for answer in document.get("humanAnswers", []):
                answer.pop("workerMetadata", None)
        return _json(document)

    @router.post("/loops/{name}/stop")
    async def stop(request: Request, name: str) -> Response:
        worker = principal(request).worker
        return _json((await asyncio.to_thread(service.stop_loop, store, name, worker)).to_dict())

    @router.delete("/loops/{name}")
    async def delete(request: Request, name: str) -> Response:
        await asyncio.to_thread(service.delete_loop, store, name, principal(request).worker)
        return Response(status_code=204)

    @router.post("/flows")
    async def create_flow(request: Request) -> Response:
        asked = await _parse(request, FlowRequest)
        flow = await asyncio.to_thread(
            lambda: service.create_flow(
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
        )
        # the creator (an admin) sees the webhook whole, and its signing secret this once
        secret = {"webhook_secret": flow.webhook_secret} if flow.webhook_secret else {}
        return _json({**describe_flow(flow, reveal_webhook=True), **secret}, 201)

    @router.get("/flows")
    async def flows(request: Request) -> Response:
        """Every flow the caller's teams may see; webhook URLs are whole for admins only, ``https://host/…``
        for the others."""
        reveal = _admin(request)
        found = await asyncio.to_thread(service.list_flows, store, principal(request).worker)
        return _json([describe_flow(f, reveal_webhook=reveal) for f in found])

    @router.get("/flows/{name}")
    async def flow(request: Request, name: str) -> Response:
        reveal = _admin(request)
        worker = principal(request).worker

        def read() -> dict[str, Any]:
            found = service.find_flow(store, name, worker)
            with store.uow() as uow:
                counts = uow.review.count(found.id)
            return {**describe_flow(found, reveal_webhook=reveal), "loops": counts}

        return _json(await asyncio.to_thread(read))

    @router.delete("/flows/{name}")
    async def delete_flow(request: Request, name: str) -> Response:
        worker = principal(request).worker
        flow = await asyncio.to_thread(service.delete_flow, store, name, worker)
        return _json(describe_flow(flow, reveal_webhook=True))  # admins only (``manage``)

    app.include_router(router)


def _admin(request: Request) -> bool:
    from loopwise.api.auth import principal

    return principal(request).worker.can("manage")
