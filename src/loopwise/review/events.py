"""Human loops' status changes for their flows' webhooks: written to an outbox in the transaction that
changes the status, then POSTed (at least once, retried with backoff)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopwise.review.loops import HumanLoop

if TYPE_CHECKING:
    from loopwise.monitoring.scheduling import Post
    from loopwise.storage import Store

__all__ = ["deliver_events", "record_event"]


def deliver_events(store: Store, *, now: datetime | None = None, post: Post | None = None) -> tuple[int, int]:
    """POST every due loop event to its flow's webhook (header ``X-Loopwise-Event-Id`` lets a receiver
    drop a repeat); a 2xx answer marks it delivered, anything else retries later with backoff."""
    from loopwise.monitoring.alerts import MAX_ATTEMPTS, backoff_s
    from loopwise.monitoring.scheduling import http_post

    now = now or datetime.now(UTC)
    post = post or http_post(5.0)
    with store.uow() as uow:
        due = uow.review.due_events(now, MAX_ATTEMPTS)
    delivered = failed = 0
    for event_id, url, body, attempts in due:
        try:
            status = post(url, body, {"X-Loopwise-Event-Id": str(event_id)})
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
        "type": "loopwise.human-loop-status-change",
        "humanLoopName": loop.name,
        "flowDefinitionName": loop.flow,
        "humanLoopStatus": status,
        "inferenceId": loop.inference_id,
        "eventTime": now.isoformat(),
    }
    uow.review.add_event(loop.name, flow.webhook, dict(body), now)
