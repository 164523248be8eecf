"""The webhook outbox (``loopwise.webhooks``): queued deliveries, the due ones, and their outcome. The
retry policy is the service's: it passes the time of the next attempt in."""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loopwise.storage.tables import WebhookDeliveryRow
from loopwise.webhooks.records import Outgoing, PendingDelivery


class WebhookOutboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def enqueue(self, outgoing: Sequence[Outgoing], now: datetime) -> None:
        """Queue each delivery, due at ``now``."""
        self.session.add_all(
            WebhookDeliveryRow(
                delivery_id=item.delivery_id,
                event=item.event,
                subject=item.subject,
                webhook_id=item.webhook_id,
                url=item.url,
                secret=item.secret,
                body=dict(item.payload),
                headers=dict(item.headers),
                attempts=0,
                next_attempt_at=now,
            )
            for item in outgoing
        )
        self.session.flush()

    def due(
        self,
        now: datetime,
        max_attempts: int,
        *,
        events: Collection[str] | None = None,
        limit: int = 100,
    ) -> builtins.list[PendingDelivery]:
        """Undelivered deliveries due at ``now`` with fewer than ``max_attempts`` attempts, oldest first."""
        query = (
            select(WebhookDeliveryRow)
            .where(
                WebhookDeliveryRow.delivered_at.is_(None),
                WebhookDeliveryRow.next_attempt_at <= now,
                WebhookDeliveryRow.attempts < max_attempts,
            )
            .order_by(WebhookDeliveryRow.id)
            .limit(limit)
        )
        if events is not None:
            query = query.where(WebhookDeliveryRow.event.in_(list(events)))
        return [
            PendingDelivery(
                row.id,
                row.delivery_id,
                row.event,
                row.url,
                row.secret,
                dict(row.body),
                {str(k): str(v) for k, v in (row.headers or {}).items()},
                row.attempts,
            )
            for row in self.session.scalars(query)
        ]

    def delivered(self, delivery_id: int, at: datetime) -> None:
        self.session.execute(
            update(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.id == delivery_id)
            .values(attempts=WebhookDeliveryRow.attempts + 1, delivered_at=at)
        )

    def failed(self, delivery_id: int, next_attempt_at: datetime, error: str) -> None:
        self.session.execute(
            update(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.id == delivery_id)
            .values(
                attempts=WebhookDeliveryRow.attempts + 1,
                next_attempt_at=next_attempt_at,
                last_error=error[:2000],
            )
        )

    def deliveries(self, subject: str) -> builtins.list[dict[str, Any]]:
        """What was queued about ``subject``, oldest first, delivered or not."""
        return subject_deliveries(self.session, subject)


def subject_deliveries(session: Session, subject: str) -> builtins.list[dict[str, Any]]:
    query = (
        select(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.subject == subject)
        .order_by(WebhookDeliveryRow.id)
    )
    return [
        {
            "webhook_id": row.webhook_id,
            "event": row.event,
            "url": row.url,
            "body": row.body,
            "attempts": row.attempts,
            "delivered_at": row.delivered_at,
            "last_error": row.last_error,
        }
        for row in session.scalars(query)
    ]


def resign_pending(session: Session, secret: str, *where: Any) -> None:
    """Set ``secret`` on the undelivered deliveries matching ``where``."""
    session.execute(
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.delivered_at.is_(None), *where)
        .values(secret=secret)
        .execution_options(synchronize_session=False)
    )
