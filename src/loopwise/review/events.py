"""Human loops' status changes for their flows' webhooks: written to an outbox in the transaction that
changes the status, then POSTed, signed with the flow's secret (:mod:`loopwise.webhooks`), at least once,
retried with backoff."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopwise import webhooks
from loopwise.review.records import HumanLoop

if TYPE_CHECKING:
    from loopwise.storage import Store

__all__ = ["LOOP_EVENT", "deliver_events", "record_event"]

#: the event type of a loop's status change (``X-Loopwise-Event`` and the body's ``type``)
LOOP_EVENT = "loopwise.human-loop-status-change"


def deliver_events(
    store: Store, *, now: datetime | None = None, post: webhooks.Post | None = None
) -> tuple[int, int]:
    """POST every due loop event to its flow's webhook through :func:`loopwise.webhooks.deliver`
    (signed with the flow's secret; ``X-Loopwise-Delivery`` and ``X-Loopwise-Event-Id`` let a receiver
    drop a repeat); a 2xx answer marks it delivered, anything else retries later with backoff."""
    from loopwise.monitoring.alerts import MAX_ATTEMPTS, backoff_s

    now = now or datetime.now(UTC)
    post = post or webhooks.http_post(5.0)
    with store.uow() as uow:
        due = uow.review.due_events(now, MAX_ATTEMPTS)
    delivered = failed = 0
    for event_id, url, secret, body, attempts in due:
        try:
            status = webhooks.deliver(
                url,
                secret,
                event=str(body.get("type", LOOP_EVENT)),
                delivery_id=f"loop-event-{event_id}",
                payload=body,
                headers={"X-Loopwise-Event-Id": str(event_id)},
                post=post,
            )
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:  # a receiver that is down: try again later
            error = f"{type(exc).__name__}: {exc}"
        with store.uow() as uow:
            if error is None:
                uow.review.event_delivered(event_id, now)
                delivered += 1
            else:
                uow.review.event_failed(event_id, now + timedelta(seconds=backoff_s(attempts + 1)), error)
                failed += 1
    return delivered, failed


def record_event(uow: Any, loop: HumanLoop, status: str, now: datetime) -> None:
    """Put the loop's change to ``status`` in the outbox, in the unit of work that makes it (nothing when
    its flow has no webhook)."""
    flow = uow.review.flow(loop.flow)
    if flow is None or not flow.webhook:
        return
    body: Mapping[str, Any] = {
        "type": LOOP_EVENT,
        "humanLoopName": loop.name,
        "flowDefinitionName": loop.flow,
        "humanLoopStatus": status,
        "inferenceId": loop.inference_id,
        "eventTime": now.isoformat(),
    }
    uow.review.add_event(loop.name, flow.webhook, dict(body), now, secret=flow.webhook_secret)
