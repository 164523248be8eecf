"""Human loops' status changes for their flows' webhooks: queued in the webhook outbox
(:mod:`loopwise.webhooks`) in the transaction that changes the status, then POSTed by the server's one
delivery duty, signed with the flow's secret, at least once, retried with backoff."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopwise import webhooks
from loopwise.review.records import HumanLoop
from loopwise.webhooks.records import LOOP_SUBJECT

if TYPE_CHECKING:
    from loopwise.storage import Store

__all__ = ["LOOP_EVENT", "deliver_events", "record_event"]

#: the event type of a loop's status change (``X-Loopwise-Event`` and the body's ``type``)
LOOP_EVENT = "loopwise.human-loop-status-change"


def deliver_events(
    store: Store, *, now: datetime | None = None, post: webhooks.Post | None = None
) -> tuple[int, int]:
    """Send the due loop events of the webhook outbox now (:func:`loopwise.webhooks.deliver_due`, loop
    events only: signed with the flow's secret; ``X-Loopwise-Delivery`` and ``X-Loopwise-Event-Id`` let
    a receiver drop a repeat); a 2xx answer marks one delivered, anything else retries later with
    backoff. Returns (delivered, failed)."""
    return webhooks.deliver_due(store, now=now, post=post, events=(LOOP_EVENT,))


def record_event(uow: Any, loop: HumanLoop, status: str, now: datetime) -> None:
    """Put the loop's change to ``status`` in the outbox, in the unit of work that makes it (nothing when
    its flow has no webhook)."""
    flow = uow.review.flow(loop.flow)
    if flow is None or not flow.webhook:
        return
    body: dict[str, Any] = {
        "type": LOOP_EVENT,
        "humanLoopName": loop.name,
        "flowDefinitionName": loop.flow,
        "humanLoopStatus": status,
        "inferenceId": loop.inference_id,
        "eventTime": now.isoformat(),
    }
    delivery_id = webhooks.new_delivery_id("loop-event")
    outgoing = webhooks.Outgoing(
        event=LOOP_EVENT,
        url=flow.webhook,
        secret=flow.webhook_secret,
        payload=body,
        delivery_id=delivery_id,
        subject=f"{LOOP_SUBJECT}{loop.name}",
        headers={"X-Loopwise-Event-Id": delivery_id.removeprefix("loop-event-")},
    )
    webhooks.enqueue(uow, [outgoing], now)
