"""The outbox: every outgoing event (monitoring alerts, human loops' status changes, pipeline runs) is
queued in the database by :func:`enqueue`, in the unit of work that makes the change it reports, and
POSTed by :func:`deliver_due` until a receiver answers 2xx: at least once, retried with the one backoff
policy of :mod:`loopwise.webhooks.retry`. The server runs :func:`deliver_due` as one background duty.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopwise.webhooks.delivery import Post, deliver, http_post
from loopwise.webhooks.records import Outgoing, PendingDelivery
from loopwise.webhooks.retry import MAX_ATTEMPTS, next_attempt_at

if TYPE_CHECKING:
    from loopwise.storage import Store


def new_delivery_id(prefix: str) -> str:
    """A delivery id no other delivery has: ``prefix`` and a random hex."""
    return f"{prefix}-{uuid.uuid4().hex}"


def enqueue(uow: Any, outgoing: Sequence[Outgoing], now: datetime | None = None) -> None:
    """Queue ``outgoing`` in ``uow`` (the caller's unit of work: the events commit with the change they
    report, or not at all), each due at once."""
    if outgoing:
        uow.webhooks.enqueue(outgoing, now or datetime.now(UTC))


def deliver_due(
    store: Store,
    *,
    now: datetime | None = None,
    post: Post | None = None,
    timeout_s: float = 5.0,
    events: Collection[str] | None = None,
) -> tuple[int, int]:
    """POST every due delivery (of ``events`` only, when given) through
    :func:`~loopwise.webhooks.delivery.deliver`; a 2xx answer marks it delivered, anything else (or no
    answer) schedules the next attempt with backoff, up to ``MAX_ATTEMPTS``. Returns (delivered, failed).
    """
    now = now or datetime.now(UTC)
    post = post or http_post(timeout_s)
    with store.uow() as uow:
        due = uow.webhooks.due(now, MAX_ATTEMPTS, events=events)
    delivered = failed = 0
    for delivery in due:
        error = _attempt(delivery, post)
        with store.uow() as uow:
            if error is None:
                uow.webhooks.delivered(delivery.id, now)
                delivered += 1
            else:
                retry_at = next_attempt_at(delivery.attempts + 1, now)
                uow.webhooks.failed(delivery.id, retry_at, error)
                failed += 1
    return delivered, failed


def _attempt(delivery: PendingDelivery, post: Post) -> str | None:
    """POST one delivery; None when it was taken (2xx), else why not."""
    try:
        status = deliver(
            delivery.url,
            delivery.secret,
            event=delivery.event,
            delivery_id=delivery.delivery_id,
            payload=delivery.payload,
            headers=delivery.headers,
            post=post,
        )
    except Exception as exc:  # a receiver that is down: try again later
        return f"{type(exc).__name__}: {exc}"
    return None if 200 <= status < 300 else f"HTTP {status}"


__all__ = ["deliver_due", "enqueue", "new_delivery_id"]
