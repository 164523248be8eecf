"""The labeling API: workers take items and answer them; admins create, watch and stop jobs.

Workers (``label``): ``GET /api/v1/labeling/jobs`` (their teams' jobs), ``GET .../jobs/{id}`` (the job
and its progress; for admins also ``rounds``: automated labeling's round reports, with the model chosen,
each candidate's validation figures and the threshold's certificate), ``GET .../jobs/{id}/answers``
(their own answers; ``?everyone=true`` for reviewers and admins), ``POST .../jobs/{id}/next`` with
``{"have": [assignment ids on the page]}`` (their live holds not on the page, and a new hold when they
have room), ``POST .../assignments/{id}/submit`` with ``{"label": ...}``,
``POST .../assignments/{id}/skip``, ``POST .../jobs/{id}/undo``.
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

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loopwise.api.deps import StoreDep, WorkerDep
from loopwise.api.fields import BadRequest, Id
from loopwise.api.schemas import JobRequest, NextRequest, SubmitRequest, json_response, parse_body
from loopwise.labeling import label_errors, rounds, service
from loopwise.labeling.records import Category, LabelingJob

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.workforce.records import Worker

router = APIRouter(prefix="/api/v1/labeling")


@router.get("/jobs")
async def jobs(store: StoreDep, worker: WorkerDep) -> Response:
    found = await asyncio.to_thread(service.visible_jobs, store, worker)
    return json_response([j.to_dict() for j in found])


@router.get("/jobs/{job_id}")
async def job(job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    """The job and its progress; a worker's copy shows only their own figures, and an admin's holds
    automated labeling's rounds as stored (null without automated labeling)."""
    figures = await asyncio.to_thread(_job_figures, store, worker, job_id)
    return json_response(figures)


def _job_figures(store: Store, worker: Worker, job_id: int) -> dict[str, Any]:
    """What :func:`job` answers ``worker``, read off the event loop."""
    figures = service.job_progress(store, worker, job_id).to_dict()
    if not worker.can("review"):
        figures["workers"] = [w for w in figures["workers"] if w["worker"] == worker.email]
    if worker.can("manage"):
        figures["rounds"] = rounds.visible_rounds(store, worker, job_id)
    return figures


@router.get("/jobs/{job_id}/answers")
async def answers(job_id: Id, store: StoreDep, worker: WorkerDep, everyone: bool = False) -> Response:
    found = await asyncio.to_thread(service.answers, store, worker, job_id, everyone=everyone)
    return json_response([a.to_dict() for a in found])


@router.post("/jobs/{job_id}/next")
async def next_tasks(request: Request, job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    asked = await parse_body(request, NextRequest)
    tasks = await asyncio.to_thread(service.next_tasks, store, worker, job_id, have=tuple(asked.have))
    return json_response({"tasks": [t.to_dict() for t in tasks]})


@router.post("/assignments/{assignment_id}/submit")
async def submit(request: Request, assignment_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    asked = await parse_body(request, SubmitRequest)
    answer = await asyncio.to_thread(service.submit, store, worker, assignment_id, asked.label)
    return json_response(answer.to_dict())


@router.post("/assignments/{assignment_id}/skip")
async def skip(assignment_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    await asyncio.to_thread(service.skip, store, worker, assignment_id)
    return json_response({"skipped": assignment_id})


@router.post("/jobs/{job_id}/undo")
async def undo(job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    task = await asyncio.to_thread(service.undo, store, worker, job_id)
    return json_response(task.to_dict())


@router.post("/jobs")
async def create(request: Request, store: StoreDep, worker: WorkerDep) -> Response:
    """A new job from the manifest's lines in the body, or from a registered data set's split."""
    asked = await parse_body(request, JobRequest)
    if (asked.items is None) == (asked.dataset is None):
        raise BadRequest("send the items (the manifest's lines) or a dataset and split, one of the two")
    made = await asyncio.to_thread(_create, store, asked, worker)
    return json_response(made.to_dict(), status=201)


def _create(store: Store, asked: JobRequest, worker: Worker) -> LabelingJob:
    """The job ``asked`` for, its free-form parts (automated labeling's settings, the manifest's lines)
    parsed here, off the event loop."""
    from loopwise.labeling.manifest import parse_records
    from loopwise.labeling.planning import AutoLabelSettings

    try:
        automated = None if asked.auto_label is None else AutoLabelSettings(**asked.auto_label)
    except TypeError as exc:
        raise BadRequest(f"auto_label: {exc}") from None
    records: list[object] | None = None if asked.items is None else [*asked.items]
    items = None if records is None else parse_records(records, where="the items")
    return service.create_labeling_job(
        store,
        asked.name,
        team=asked.team,
        items=items,
        dataset=asked.dataset,
        split=asked.split,
        source="the API",
        categories=[Category(c.label, c.description) for c in asked.categories],
        title=asked.title,
        short_instructions=asked.short_instructions,
        full_instructions=asked.full_instructions,
        workers_per_item=asked.workers_per_item,
        task_time_limit_s=asked.task_time_limit_s,
        lifetime=timedelta(seconds=asked.lifetime_s),
        blind=asked.blind,
        created_by=worker,
        auto_label=automated,
    )


@router.get("/jobs/{job_id}/progress")
async def progress(job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    found = await asyncio.to_thread(service.job_progress, store, worker, job_id)
    return json_response(found.to_dict())


@router.post("/jobs/{job_id}/stop")
async def stop(job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    stopped = await asyncio.to_thread(service.stop_visible_job, store, worker, job_id)
    return json_response(stopped.to_dict())


@router.post("/jobs/{job_id}/find-errors")
async def find_errors(job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    """cleanlab's likely wrong labels of the job, each opened as a review."""
    found = await asyncio.to_thread(service.find_job_label_errors, store, worker, job_id)
    return json_response([r.to_dict() for r in found])


@router.get("/jobs/{job_id}/reviews")
async def reviews(job_id: Id, store: StoreDep, worker: WorkerDep, status: str | None = "open") -> Response:
    found = await asyncio.to_thread(label_errors.reviews, store, worker, job_id, status=status)
    return json_response([r.to_dict() for r in found])


@router.post("/reviews/{review_id}")
async def decide(request: Request, review_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    """A reviewer's decision on a flagged label: ``{"label": ...}`` (the same label keeps it)."""
    asked = await parse_body(request, SubmitRequest)
    decided = await asyncio.to_thread(label_errors.decide, store, worker, review_id, asked.label)
    return json_response(decided.to_dict())
