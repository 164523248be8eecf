"""Feedback (ground truth, rewards) posted for inferences."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopwise.serving.records import Feedback
from loopwise.storage.tables import FeedbackRow, utcnow


class FeedbackRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def put(self, endpoint: str, items: Sequence[Feedback]) -> int:
        """Record feedback; an inference's earlier feedback is replaced. Returns how many were new."""
        ids = [item.inference_id for item in items]
        existing = {
            row.inference_id: row
            for row in self.session.scalars(
                select(FeedbackRow).where(FeedbackRow.endpoint == endpoint, FeedbackRow.inference_id.in_(ids))
            )
        }
        new = 0
        for item in items:
            row = existing.get(item.inference_id)
            if row is None:
                row = existing[item.inference_id] = FeedbackRow(
                    endpoint=endpoint, inference_id=item.inference_id
                )
                self.session.add(row)
                new += 1
            row.labels = list(item.labels) if item.labels is not None else None
            row.reward = item.reward
            row.created_at = utcnow()
        self.session.flush()
        return new

    def known(self, endpoint: str, inference_ids: Sequence[str]) -> set[str]:
        """Those of ``inference_ids`` that have feedback for the endpoint."""
        found: set[str] = set()
        for start in range(0, len(inference_ids), 500):  # bounded IN lists
            query = select(FeedbackRow.inference_id).where(
                FeedbackRow.endpoint == endpoint,
                FeedbackRow.inference_id.in_(inference_ids[start : start + 500]),
            )
            found.update(self.session.scalars(query))
        return found

    def count_labels(self, endpoint: str, since: datetime | None = None) -> int:
        """How many of the endpoint's inferences got ground truth (labels), since ``since`` if given."""
        query = select(FeedbackRow.labels).where(FeedbackRow.endpoint == endpoint)
        if since is not None:
            query = query.where(FeedbackRow.created_at > since)
        # JSON null and SQL NULL differ by database: the labels are looked at here, not in the query
        return sum(1 for labels in self.session.scalars(query) if labels)

    def for_endpoint(self, endpoint: str) -> list[Feedback]:
        """The endpoint's feedback, oldest first (the order it arrived in)."""
        rows = self.session.scalars(
            select(FeedbackRow)
            .where(FeedbackRow.endpoint == endpoint)
            .order_by(FeedbackRow.created_at, FeedbackRow.id)
        ).all()
        return [
            Feedback(
                row.inference_id,
                tuple(row.labels) if row.labels is not None else None,
                row.reward,
                row.created_at,
            )
            for row in rows
        ]
