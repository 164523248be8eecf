"""The labeling pages: a worker's jobs and the keyboard-driven labeling page (``/label``), and the
admin's console of jobs with progress and per-worker throughput and agreement (``/console/labeling``).

The labeling page is one document; ``label.js`` drives it over the labeling API, keeping the next item
already loaded (held) while the worker reads the current one, so an answer shows the next text at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response

from loopwise.api.auth import principal
from loopwise.api.fields import Id, Text
from loopwise.errors import NotFoundError
from loopwise.labeling import service
from loopwise.web.pages import templates

if TYPE_CHECKING:
    from loopwise.storage import Store


def mount_labeling_pages(app: FastAPI, store: Store) -> None:
    router = APIRouter(include_in_schema=False)

    def missing(request: Request, exc: Exception, back: str) -> Response:
        context = {"message": str(exc), "back": back}
        return templates.TemplateResponse(request, "missing.html", context, status_code=404)

    async def visible(request: Request) -> list[Any]:
        """The progress of every job the caller may see."""
        worker = principal(request).worker
        return await asyncio.to_thread(
            lambda: [service.progress(store, j) for j in service.visible_jobs(store, worker)]
        )

    @router.get("/label")
    async def my_jobs(request: Request) -> Response:
        context = {"jobs": await visible(request), "section": "label"}
        return templates.TemplateResponse(request, "label_jobs.html", context)

    @router.get("/label/jobs/{job_id}")
    async def label_page(request: Request, job_id: Id) -> Response:
        worker = principal(request).worker
        try:
            job = await asyncio.to_thread(service.job_for, store, worker, job_id)
        except NotFoundError as exc:
            return missing(request, exc, "/label")
        return templates.TemplateResponse(request, "label.html", {"job": job, "section": "label"})

    @router.get("/console/labeling")
    async def console_jobs(request: Request) -> Response:
        context = {"jobs": await visible(request), "section": "labeling"}
        return templates.TemplateResponse(request, "labeling_jobs.html", context)

    @router.get("/console/labeling/{job_id}")
    async def console_job(request: Request, job_id: Id) -> Response:
        worker = principal(request).worker
        try:
            figures = await asyncio.to_thread(
                lambda: service.progress(store, service.job_for(store, worker, job_id))
            )
        except NotFoundError as exc:
            return missing(request, exc, "/console/labeling")
        return templates.TemplateResponse(
            request, "labeling_job.html", {"progress": figures, "section": "labeling"}
        )

    @router.get("/review/jobs/{job_id}")
    async def review_page(request: Request, job_id: Id) -> Response:
        from loopwise.labeling import label_errors

        worker = principal(request).worker
        try:
            job = await asyncio.to_thread(service.job_for, store, worker, job_id)
        except NotFoundError as exc:
            return missing(request, exc, "/")
        found = await asyncio.to_thread(label_errors.reviews, store, worker, job_id, status=None)
        context = {"job": job, "reviews": found, "section": "labeling"}
        return templates.TemplateResponse(request, "review.html", context)

    @router.post("/review/reviews/{review_id}")
    async def review_decision(
        request: Request, review_id: Id, label: Annotated[Text, Form()] = ""
    ) -> Response:
        from loopwise.labeling import label_errors

        worker = principal(request).worker
        decided = await asyncio.to_thread(label_errors.decide, store, worker, review_id, label)
        return RedirectResponse(f"/review/jobs/{decided.job_id}#review-{review_id}", status_code=303)

    @router.post("/console/labeling/{job_id}/find-errors")
    async def find_errors(request: Request, job_id: Id) -> Response:
        from loopwise.labeling.label_errors import find_label_errors

        worker = principal(request).worker
        await asyncio.to_thread(lambda: find_label_errors(store, service.job_for(store, worker, job_id).name))
        return RedirectResponse(f"/review/jobs/{job_id}", status_code=303)

    @router.post("/console/labeling/{job_id}/stop")
    async def stop(request: Request, job_id: Id) -> Response:
        worker = principal(request).worker
        await asyncio.to_thread(lambda: service.stop_job(store, service.job_for(store, worker, job_id).name))
        return RedirectResponse(f"/console/labeling/{job_id}", status_code=303)

    app.include_router(router)
