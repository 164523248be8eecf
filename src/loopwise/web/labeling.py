"""The labeling pages: a worker's jobs and the keyboard-driven labeling page (``/label``), and the
admin's console of jobs with progress, per-worker throughput and agreement, and automated labeling's
rounds (``/console/labeling``).

The labeling page is one document; ``label.js`` drives it over the labeling API, keeping the next item
already loaded (held) while the worker reads the current one, so an answer shows the next text at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from loopwise.api.deps import StoreDep, WorkerDep
from loopwise.api.fields import Id, Text
from loopwise.errors import NotFoundError
from loopwise.labeling import label_errors, rounds, service
from loopwise.labeling.rounds import RoundSummary, candidate_names
from loopwise.web.pages import templates

if TYPE_CHECKING:
    from loopwise.labeling.records import Progress
    from loopwise.storage import Store
    from loopwise.workforce.records import Worker

router = APIRouter(include_in_schema=False)


def _missing(request: Request, exc: Exception, back: str) -> Response:
    context = {"message": str(exc), "back": back}
    return templates.TemplateResponse(request, "missing.html", context, status_code=404)


@router.get("/label")
async def my_jobs(request: Request, store: StoreDep, worker: WorkerDep) -> Response:
    context = {"jobs": await asyncio.to_thread(service.visible_progress, store, worker), "section": "label"}
    return templates.TemplateResponse(request, "label_jobs.html", context)


@router.get("/label/jobs/{job_id}")
async def label_page(request: Request, job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    try:
        job = await asyncio.to_thread(service.job_for, store, worker, job_id)
    except NotFoundError as exc:
        return _missing(request, exc, "/label")
    return templates.TemplateResponse(request, "label.html", {"job": job, "section": "label"})


@router.get("/console/labeling")
async def console_jobs(request: Request, store: StoreDep, worker: WorkerDep) -> Response:
    context = {
        "jobs": await asyncio.to_thread(service.visible_progress, store, worker),
        "section": "labeling",
    }
    return templates.TemplateResponse(request, "labeling_jobs.html", context)


@router.get("/console/labeling/{job_id}")
async def console_job(request: Request, job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    try:
        figures, summaries = await asyncio.to_thread(_job_page, store, worker, job_id)
    except NotFoundError as exc:
        return _missing(request, exc, "/console/labeling")
    context = {
        "progress": figures,
        "rounds": summaries,
        "candidates": candidate_names(summaries or []),
        "section": "labeling",
    }
    return templates.TemplateResponse(request, "labeling_job.html", context)


def _job_page(store: Store, worker: Worker, job_id: int) -> tuple[Progress, list[RoundSummary] | None]:
    """The job's progress and, for an admin, its automated labeling rounds' summaries (None: the job
    has no automated labeling, or the viewer is no admin)."""
    figures = service.job_progress(store, worker, job_id)
    stored = rounds.visible_rounds(store, worker, job_id) if worker.can("manage") else None
    return figures, None if stored is None else [rounds.summarize(r) for r in stored]


@router.get("/review/jobs/{job_id}")
async def review_page(request: Request, job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    try:
        job = await asyncio.to_thread(service.job_for, store, worker, job_id)
    except NotFoundError as exc:
        return _missing(request, exc, "/")
    found = await asyncio.to_thread(label_errors.reviews, store, worker, job_id, status=None)
    context = {"job": job, "reviews": found, "section": "labeling"}
    return templates.TemplateResponse(request, "review.html", context)


@router.post("/review/reviews/{review_id}")
async def review_decision(
    review_id: Id, store: StoreDep, worker: WorkerDep, label: Annotated[Text, Form()] = ""
) -> Response:
    decided = await asyncio.to_thread(label_errors.decide, store, worker, review_id, label)
    return RedirectResponse(f"/review/jobs/{decided.job_id}#review-{review_id}", status_code=303)


@router.post("/console/labeling/{job_id}/find-errors")
async def find_errors(job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    await asyncio.to_thread(service.find_job_label_errors, store, worker, job_id)
    return RedirectResponse(f"/review/jobs/{job_id}", status_code=303)


@router.post("/console/labeling/{job_id}/stop")
async def stop(job_id: Id, store: StoreDep, worker: WorkerDep) -> Response:
    await asyncio.to_thread(service.stop_visible_job, store, worker, job_id)
    return RedirectResponse(f"/console/labeling/{job_id}", status_code=303)
