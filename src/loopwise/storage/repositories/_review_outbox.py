"""The webhook outbox of human loops' status changes (part of the review repository): an event is added in
the transaction that changes the loop, then delivered, or retried later, by ``review.events``."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loopwise.storage.tables import HumanLoopEventRow


class LoopEventOutbox:
    session: Session

    def add_event(self, loop_name: str, url: str, body: dict[str, Any], now: datetime) -> None:
        self.session.add(HumanLoopEventRow(loop_name=loop_name, url=url, body=body, next_attempt_at=now))
        self.session.flush()

    def due_events(
        self, now: datetime, max_attempts: int, limit: int = 100
    ) -> builtins.list[tuple[int, str, dict[str, Any], int]]:
        query = (
            select(
                HumanLoopEventRow.id,
                HumanLoopEventRow.url,
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
        return [(int(r[0]), str(r[1]), dict(r[2]), int(r[3])) for r in self.session.execute(query)]

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
