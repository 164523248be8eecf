"""The labeling API: workers take items and answer them; admins create, watch and stop jobs.

Workers (``label``): ``GET /api/v1/labeling/jobs`` (their teams' jobs), ``GET .../jobs/{id}`` (the job
and its progress), ``GET .../jobs/{id}/answers`` (their own answers; ``?everyone=true`` for reviewers
and admins), ``POST .../jobs/{id}/next`` with ``{"have": [assignment ids on the page]}`` (their live
holds not on the page, and a new hold when they have room), ``POST .../assignments/{id}/submit`` with
``{"label": ...}``, ``POST .../assignments/{id}/skip``, ``POST .../jobs/{id}/undo``.
Reviewers (``review``): ``GET .../jobs/{id}/reviews`` (the label-error queue) and
``POST .../reviews/{id}`` with ``{"label": ...}``.
Admins (``manage``): ``POST /api/v1/labeling/jobs``, ``GET .../jobs/{id}/progress`` (per worker),
``POST .../jobs/{id}/stop``, ``POST .../jobs/{id}/find-errors`` (cleanlab's suspects into the queue).

An answer sent twice, or after its hold expired, is refused with 409 and changes nothing.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from loopwise.api.auth import principal
from loopwise.api.fields import Count, Id, Seconds, Text, describe_errors, refuse_nul
from loopwise.api.invocations import BadRequest, read_body
from loopwise.labeling import service
from loopwise.labeling.records import Category

if TYPE_CHECKING:
    from loopwise.storage import Store


class NextRequest(BaseModel):
    have: list[Id] = Field(default_factory=list, max_length=10)


class SubmitRequest(BaseModel):
    label: Text = Field(min_length=1, max_length=100)


class CategoryIn(BaseModel):
    label: Text
    description: Text = ""


class JobRequest(BaseModel):
    name: Text
    team: Text
    categories: list[CategoryIn]
    title: Text | None = None
    short_instructions: Text = ""
    full_instructions: Text = ""
    workers_per_item: Count = 1
    task_time_limit_s: Seconds = 300
    lifetime_s: Seconds = int(service.DEFAULT_LIFETIME.total_seconds())
    blind: bool = True
    #: the manifest's lines ({"source": text, ...}), or a registered data set's split
    items: list[dict[str, Any]] | None = None
    dataset: Text | None = None
    split: Text = "train"
    #: automated labeling's settings (``loopwise.labeling.auto.AutoLabelSettings``), or none
    auto_label: dict[str, Any] | None = None


def _json(document: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type="application/json")


async def _parse(request: Request, model: type[BaseModel]) -> Any:
    from pydantic import ValidationError

    body = await read_body(request)
    refuse_nul(body)  # free-form parts too (manifest lines, loop input, settings)
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        problems = describe_errors(exc.errors())
        raise BadRequest(f"the request body is not what {request.url.path} takes: {problems}") from None


def mount_labeling(app: FastAPI, store: Store) -> None:
    router = APIRouter(prefix="/api/v1/labeling")

    @router.get("/jobs")
    async def jobs(request: Request) -> Response:
        worker = principal(request).worker
        found = await asyncio.to_thread(service.visible_jobs, store, worker)
        return _json([j.to_dict() for j in found])

    @router.get("/jobs/{job_id}")
    async def job(request: Request, job_id: Id) -> Response:
        """The job and its progress; a worker's copy shows only their own figures."""
        worker = principal(request).worker

        def read() -> dict[str, Any]:
            figures = service.progress(store, service.job_for(store, worker, job_id)).to_dict()
            if not worker.can("review"):
                figures["workers"] = [w for w in figures["workers"] if w["worker"] == worker.email]
            return figures

        return _json(await asyncio.to_thread(read))

    @router.get("/jobs/{job_id}/answers")
    async def answers(request: Request, job_id: Id, everyone: bool = False) -> Response:
        worker = principal(request).worker
        found = await asyncio.to_thread(service.answers, store, worker, job_id, everyone=everyone)
        return _json([a.to_dict() for a in found])

    @router.post("/jobs/{job_id}/next")
    async def next_tasks(request: Request, job_id: Id) -> Response:
        worker = principal(request).worker
        asked = await _parse(request, NextRequest)
        tasks = await asyncio.to_thread(service.next_tasks, store, worker, job_id, have=tuple(asked.have))
        return _json({"tasks": [t.to_dict() for t in tasks]})

    @router.post("/assignments/{assignment_id}/submit")
    async def submit(request: Request, assignment_id: Id) -> Response:
        worker = principal(request).worker
        asked = await _parse(request, SubmitRequest)
        answer = await asyncio.to_thread(service.submit, store, worker, assignment_id, asked.label)
        return _json(answer.to_dict())

    @router.post("/assignments/{assignment_id}/skip")
    async def skip(request: Request, assignment_id: Id) -> Response:
        worker = principal(request).worker
        await asyncio.to_thread(service.skip, store, worker, assignment_id)
        return _json({"skipped": assignment_id})

    @router.post("/jobs/{job_id}/undo")
    async def undo(request: Request, job_id: Id) -> Response:
        worker = principal(request).worker
        task = await asyncio.to_thread(service.undo, store, worker, job_id)
        return _json(task.to_dict())

    @router.post("/jobs")
    async def create(request: Request) -> Response:
        """A new job from the manifest's lines in the body, or from a registered data set's split."""
        from loopwise.labeling.manifest import dataset_items, parse_records

        asked = await _parse(request, JobRequest)
        if (asked.items is None) == (asked.dataset is None):
            raise BadRequest("send the items (the manifest's lines) or a dataset and split, one of the two")

        def make() -> Any:
            from loopwise.labeling.auto import AutoLabelSettings

            try:
                automated = None if asked.auto_label is None else AutoLabelSettings(**asked.auto_label)
            except TypeError as exc:
                raise BadRequest(f"auto_label: {exc}") from None
            items = (
                parse_records(asked.items, where="the items")
                if asked.items is not None
                else dataset_items(store, asked.dataset, asked.split)
            )
            return service.create_job(
                store,
                asked.name,
                items,
                team=asked.team,
                categories=[Category(c.label, c.description) for c in asked.categories],
                title=asked.title,
                short_instructions=asked.short_instructions,
                full_instructions=asked.full_instructions,
                workers_per_item=asked.workers_per_item,
                task_time_limit_s=asked.task_time_limit_s,
                lifetime=timedelta(seconds=asked.lifetime_s),
                blind=asked.blind,
                source="the API" if asked.items is not None else f"{asked.dataset} {asked.split}",
                created_by=principal(request).worker,
                auto_label=automated,
            )

        made = await asyncio.to_thread(make)
        return _json(made.to_dict(), status=201)

    @router.get("/jobs/{job_id}/progress")
    async def progress(request: Request, job_id: Id) -> Response:
        worker = principal(request).worker
        found = await asyncio.to_thread(
            lambda: service.progress(store, service.job_for(store, worker, job_id))
        )
        return _json(found.to_dict())

    @router.post("/jobs/{job_id}/stop")
    async def stop(request: Request, job_id: Id) -> Response:
        worker = principal(request).worker

        def halt() -> Any:
            return service.stop_job(store, service.job_for(store, worker, job_id).name)

        return _json((await asyncio.to_thread(halt)).to_dict())

    @router.post("/jobs/{job_id}/find-errors")
    async def find_errors(request: Request, job_id: Id) -> Response:
        """cleanlab's likely wrong labels of the job, each opened as a review."""
        from loopwise.labeling.label_errors import find_label_errors

        worker = principal(request).worker

        def run() -> Any:
            return find_label_errors(store, service.job_for(store, worker, job_id).name)

        return _json([r.to_dict() for r in await asyncio.to_thread(run)])

    @router.get("/jobs/{job_id}/reviews")
    async def reviews(request: Request, job_id: Id, status: str | None = "open") -> Response:
        from loopwise.labeling import label_errors

        worker = principal(request).worker
        found = await asyncio.to_thread(label_errors.reviews, store, worker, job_id, status=status)
        return _json([r.to_dict() for r in found])

    @router.post("/reviews/{review_id}")
    async def decide(request: Request, review_id: Id) -> Response:
        """A reviewer's decision on a flagged label: ``{"label": ...}`` (the same label keeps it)."""
        from loopwise.labeling import label_errors

        worker = principal(request).worker
        asked = await _parse(request, SubmitRequest)
        decided = await asyncio.to_thread(label_errors.decide, store, worker, review_id, asked.label)
        return _json(decided.to_dict())

    app.include_router(router)
