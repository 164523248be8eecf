"""Pipelines that start by themselves: the server looks at every pipeline's triggers every few seconds
(:func:`run_due`) and starts a run for each pipeline with a trigger due; a pipeline runs once at a time,
so triggers that fire together (or on several servers) start one run.

A trigger counts what happened since the pipeline's last run began: its schedule (``every``), the labels
that arrived in the sources its gather-labels steps read (completed human loops of their review flows,
labeled items of their labeling jobs, ground truth posted as feedback to their endpoints; a review
flow's answers are feedback too, so a pipeline that reads both counts those twice), and monitoring
alerts that name its action.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from loopwise.errors import LoopwiseError, PipelineError
from loopwise.pipelines.spec import PipelineSpec, Trigger

if TYPE_CHECKING:
    from loopwise.storage import Store

log = logging.getLogger(__name__)


def due(store: Store, spec: PipelineSpec, now: datetime | None = None) -> str | None:
    """Why the pipeline should run now (its first trigger that is due), or None."""
    now = now or datetime.now(UTC)
    with store.uow() as uow:
        last = uow.pipelines.runs(spec.name, limit=1)
        created = uow.pipelines.created_at(spec.name)
    since = last[0].started_at if last else None
    for trigger in spec.triggers:
        if trigger.kind == "every":  # a schedule counts from the pipeline's creation until it first ran
            since_run = since or created
            if since_run is None or now - since_run >= timedelta(seconds=float(trigger.value)):
                return f"schedule: {trigger.describe()}"
            continue
        reason = _reason(store, spec, trigger, since, now)
        if reason is not None:
            return reason
    return None


def _reason(
    store: Store, spec: PipelineSpec, trigger: Trigger, since: datetime | None, now: datetime
) -> str | None:
    if trigger.kind == "new_labels":
        count = new_labels(store, spec, since)
        return f"{count} new labels (trigger: {trigger.value})" if count >= int(trigger.value) else None
    with store.uow() as uow:
        alerts = uow.monitoring.alerts(status="open", action=str(trigger.value), limit=1000)
    fresh = [a for a in alerts if since is None or a.created_at > since]
    if fresh:
        return f"alert {fresh[-1].id} ({fresh[-1].check}) asks for action {trigger.value}"
    return None


def new_labels(store: Store, spec: PipelineSpec, since: datetime | None) -> int:
    """Labels that arrived since ``since`` in the sources of the pipeline's gather-labels steps."""
    from loopwise.labeling.output import labeled_items
    from loopwise.labeling.service import find_job
    from loopwise.pipelines.operations import _names
    from loopwise.review.service import list_loops

    count = 0
    for step in spec.steps:
        if step.uses != "gather-labels":
            continue
        for flow in _names(step.inputs.get("review_flows")):
            token = None
            while True:
                page, token = list_loops(
                    store, flow=flow, status="Completed", max_results=1000, next_token=token
                )
                count += sum(1 for loop in page if since is None or (loop.ended_at and loop.ended_at > since))
                if token is None:
                    break
        for endpoint in _names(step.inputs.get("feedback")):
            with store.uow() as uow:
                count += uow.feedback.count_labels(endpoint, since)
        for job in _names(step.inputs.get("labeling_jobs")):
            items = labeled_items(store, find_job(store, job))
            count += sum(
                1 for i in items if i.labeled_by != "machine" and (since is None or i.labeled_at > since)
            )
    return count


def run_due(store: Store, *, now: datetime | None = None, background: bool = False) -> list[int]:
    """Start and run every pipeline with a trigger due; returns the runs it started. A failing run is
    recorded on the run (and can be resumed), never raised. ``background``: each run in a thread of its
    own (the server: a run that waits hours on an A/B test must not hold the other pipelines' triggers)."""
    from loopwise.pipelines.service import execute, find_pipeline, start_run

    with store.uow() as uow:
        names = uow.pipelines.names()
    started = []
    for name in names:
        try:
            spec = find_pipeline(store, name)
            reason = due(store, spec, now) if spec.triggers else None
            if reason is None:
                continue
            run = start_run(store, name, trigger=reason)
        except PipelineError:  # a run in progress (here or on another server): it goes on
            continue
        except LoopwiseError:
            log.exception("pipeline %s: its triggers could not be read", name)
            continue
        log.info("pipeline %s: run %d started (%s)", name, run.id, reason)
        started.append(run.id)
        if background:
            threading.Thread(
                target=_execute_logged, args=(store, run.id), name=f"pipeline-{name}-{run.id}", daemon=True
            ).start()
        else:
            execute(store, run.id)
    return started


def _execute_logged(store: Store, run_id: int) -> None:
    from loopwise.pipelines.service import execute

    try:
        execute(store, run_id)
    except Exception:  # recorded on the run already; the thread just ends
        log.exception("pipeline run %d stopped", run_id)
