"""The webhook outbox of human loops' status changes (part of the review repository): an event is added in
the transaction that changes the loop, then delivered, or retried later, by ``review.events``."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError
from loopwise.storage.tables import HumanLoopEventRow, HumanLoopRow, ReviewFlowRow


class LoopEventOutbox:
    session: Session

    def add_event(
        self, loop_name: str, url: str, body: dict[str, Any], now: datetime, *, secret: str | None = None
    ) -> None:
        self.session.add(
            HumanLoopEventRow(loop_name=loop_name, url=url, secret=secret, body=body, next_attempt_at=now)
        )
        self.session.flush()

    def set_webhook_secret(self, flow_name: str, secret: str) -> None:
        """A flow's new webhook secret, for its queued events too."""
        row = self.session.scalar(select(ReviewFlowRow).where(ReviewFlowRow.name == flow_name))
        if row is None:
            raise NotFoundError(f"no flow definition {flow_name!r}; see `loopwise review flow list`")
        row.webhook_secret = secret
        loops = select(HumanLoopRow.name).where(HumanLoopRow.flow_id == row.id)
        self.session.execute(
            update(HumanLoopEventRow)
            .where(HumanLoopEventRow.delivered_at.is_(None), HumanLoopEventRow.loop_name.in_(loops))
            .values(secret=secret)
        )

    def due_events(
        self, now: datetime, max_attempts: int, limit: int = 100
    ) -> builtins.list[tuple[int, str, str | None, dict[str, Any], int]]:
        """(id, url, secret, body, attempts) of the events due for delivery, oldest first."""
        query = (
            select(
                HumanLoopEventRow.id,
                HumanLoopEventRow.url,
                HumanLoopEventRow.secret,
                HumanLoopEventRow.body,
                HumanLoopEventRow.attempts,
            )
            .where(
                HumanLoopEventRow.delivered_at.is_(None),
                HumanLoopEventRow.next_attempt_at <= now,
                HumanLoopEventRow.attempts < max_attempts,
            )
            .order_by(HumanLoopEventRow.id)
            .limit(limit)
        )
        return [(int(r[0]), str(r[1]), r[2], dict(r[3]), int(r[4])) for r in self.session.execute(query)]

    def event_delivered(self, event_id: int, now: datetime) -> None:
        self.session.execute(
            update(HumanLoopEventRow).where(HumanLoopEventRow.id == event_id).values(delivered_at=now)
        )

    def event_failed(self, event_id: int, next_attempt_at: datetime, error: str) -> None:
        self.session.execute(
            update(HumanLoopEventRow)
            .where(HumanLoopEventRow.id == event_id)
            .values(
                attempts=HumanLoopEventRow.attempts + 1,
                next_attempt_at=next_attempt_at,
                last_error=error[:2000],
            )
        )

    def events(self, loop_name: str) -> builtins.list[dict[str, Any]]:
        query = (
            select(HumanLoopEventRow)
            .where(HumanLoopEventRow.loop_name == loop_name)
            .order_by(HumanLoopEventRow.id)
        )
        return [
            {"body": e.body, "attempts": e.attempts, "delivered_at": e.delivered_at, "url": e.url}
            for e in self.session.scalars(query)
        ]
