"""Pipeline runs that end, for the registered webhooks (``loopwise monitor webhook add``): queued in the
webhook outbox (:mod:`loopwise.webhooks`) in the transaction that ends the run, then POSTed by the
server's one delivery duty, signed with each webhook's secret, at least once, retried with backoff."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from loopwise import webhooks
from loopwise.webhooks.records import PIPELINE_RUN_SUBJECT

__all__ = ["RUN_EVENT", "record_run_event"]

#: the event type of a run that ended, Succeeded or Failed (``X-Loopwise-Event`` and the body's ``type``)
RUN_EVENT = "loopwise.pipeline-run-status-change"


def record_run_event(
    uow: Any, run_id: int, pipeline: str, status: str, now: datetime, *, trigger: str, error: str | None
) -> None:
    """Queue run ``run_id``'s end (``status`` Succeeded or Failed, with ``error``) for every registered
    webhook, in ``uow``, the unit of work that ends it (nothing when there is no webhook)."""
    body: dict[str, Any] = {
        "type": RUN_EVENT,
        "pipeline": pipeline,
        "runId": run_id,
        "runStatus": status,
        "trigger": trigger,
        "error": error,
        "eventTime": now.isoformat(),
    }
    webhooks.enqueue(
        uow,
        [
            webhooks.Outgoing(
                event=RUN_EVENT,
                url=hook.url,
                secret=hook.secret,
                payload=body,
                delivery_id=webhooks.new_delivery_id("pipeline-run-event"),
                subject=f"{PIPELINE_RUN_SUBJECT}{run_id}",
                headers={"X-Loopwise-Pipeline-Run-Id": str(run_id)},
                webhook_id=hook.id,
            )
            for hook in uow.monitoring.webhooks()
        ],
        now,
    )
