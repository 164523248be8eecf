"""What labeling jobs produce: consolidated and machine labels, automated labeling's rounds, and the
review queue of likely wrong labels."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loopwise.labeling.records import Review
from loopwise.storage.tables import (
    LabelingItemRow,
    LabelingJobRow,
    LabelingReviewRow,
    WorkerRow,
    utcnow,
)

Item, Job, ReviewRow = LabelingItemRow, LabelingJobRow, LabelingReviewRow


class LabelsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- automated labeling ----------------------------------------------------------------------

    def auto_label(self, job_id: int) -> dict[str, Any] | None:
        row = self.session.get(Job, job_id)
        return None if row is None or row.auto_label is None else dict(row.auto_label)

    def set_auto_label(self, job_id: int, document: dict[str, Any]) -> None:
        self.session.execute(update(Job).where(Job.id == job_id).values(auto_label=document))

    def auto_jobs_due(self) -> builtins.list[str]:
        """Names of jobs in progress with automated labeling whose people have no open item left: a round
        is due (or the last consolidation, when nothing waits)."""
        open_items = select(Item.id).where(Item.job_id == Job.id, Item.status == "open").exists()
        query = select(Job.name).where(Job.status == "InProgress", Job.auto_label.is_not(None), ~open_items)
        return list(self.session.scalars(query))

    def human_labeled(self, job_id: int) -> builtins.list[tuple[str, str, str | None]]:
        """(text, label, pool) of the items people labeled."""
        query = select(Item.source, Item.label, Item.pool).where(
            Item.job_id == job_id, Item.labeled_by == "human", Item.label.is_not(None)
        )
        return [(text, label or "", pool) for text, label, pool in self.session.execute(query).tuples()]

    def auto_items(self, job_id: int) -> builtins.list[tuple[int, str, str, str | None, str | None]]:
        """(id, text, status, pool, label if people gave it) of every item, in the job's order: what a
        round of automated labeling learns from and labels."""
        query = (
            select(Item.id, Item.source, Item.status, Item.pool, Item.label, Item.labeled_by)
            .where(Item.job_id == job_id)
            .order_by(Item.position)
        )
        return [
            (item_id, text, status, pool, label if by == "human" else None)
            for item_id, text, status, pool, label, by in self.session.execute(query).tuples()
        ]

    def waiting_items(self, job_id: int) -> builtins.list[tuple[int, str]]:
        query = (
            select(Item.id, Item.source)
            .where(Item.job_id == job_id, Item.status == "waiting")
            .order_by(Item.position)
        )
        return [(item_id, text) for item_id, text in self.session.execute(query).tuples()]

    def set_machine_labels(
        self, job_id: int, labels: dict[int, tuple[str, float, float]], model: str
    ) -> None:
        now = utcnow()
        for item_id, (label, confidence, threshold) in labels.items():
            self.session.execute(
                update(Item)
                .where(Item.id == item_id, Item.job_id == job_id, Item.status == "waiting")
                .values(
                    status="complete",
                    label=label,
                    confidence=confidence,
                    labeled_by="machine",
                    machine_model=model,
                    machine_threshold=threshold,
                    updated_at=now,
                )
            )

    def release(self, job_id: int, item_ids: Sequence[int], *, pool: str) -> None:
        """Send waiting items to people."""
        for start in range(0, len(item_ids), 1000):
            self.session.execute(
                update(Item)
                .where(
                    Item.job_id == job_id,
                    Item.id.in_(item_ids[start : start + 1000]),
                    Item.status == "waiting",
                )
                .values(status="open", pool=pool, updated_at=utcnow())
            )

    # --- results ---------------------------------------------------------------------------------

    def item_ids(self, job_id: int, *, status: str) -> builtins.list[int]:
        return list(self.session.scalars(select(Item.id).where(Item.job_id == job_id, Item.status == status)))

    def set_labels(self, job_id: int, labels: dict[int, tuple[str, float]], *, by: str) -> None:
        now = utcnow()
        for item_id, (label, confidence) in labels.items():
            self.session.execute(
                update(Item)
                .where(Item.id == item_id, Item.job_id == job_id)
                .values(label=label, confidence=confidence, labeled_by=by, updated_at=now)
            )

    def labeled_items(self, job_id: int) -> builtins.list[dict[str, Any]]:
        query = select(Item).where(Item.job_id == job_id, Item.label.is_not(None)).order_by(Item.position)
        return [
            {
                "position": row.position,
                "source": row.source,
                "extra": dict(row.extra or {}),
                "label": row.label,
                "confidence": float(row.confidence or 0.0),
                "labeled_by": row.labeled_by or "human",
                "machine_model": row.machine_model,
                "machine_threshold": row.machine_threshold,
                "answers": row.answers_count,
                "labeled_at": row.updated_at,
            }
            for row in self.session.scalars(query)
        ]

    # --- label reviews ---------------------------------------------------------------------------

    def labeled_for_review(self, job_id: int) -> builtins.list[tuple[int, str, str]]:
        """(item id, text, label) of every labeled item."""
        query = (
            select(Item.id, Item.source, Item.label)
            .where(Item.job_id == job_id, Item.label.is_not(None))
            .order_by(Item.position)
        )
        return [(i, text, label or "") for i, text, label in self.session.execute(query).tuples()]

    def open_reviews(self, job_id: int, suspects: Sequence[tuple[int, str, float]]) -> builtins.list[Review]:
        """A review per suspect (item id, suggested label, self-confidence) without an open one already."""
        already = set(
            self.session.scalars(
                select(ReviewRow.item_id).where(ReviewRow.job_id == job_id, ReviewRow.status == "open")
            )
        )
        made = []
        for item_id, suggested, confidence in suspects:
            if item_id in already:
                continue
            item = self.session.get(Item, item_id)
            assert item is not None and item.label is not None
            row = ReviewRow(
                job_id=job_id,
                item_id=item_id,
                label=item.label,
                suggested=suggested,
                self_confidence=confidence,
                status="open",
            )
            self.session.add(row)
            self.session.flush()
            made.append(self._review(row))
        return made

    def reviews(self, job_id: int, *, status: str | None = None) -> builtins.list[Review]:
        query = select(ReviewRow).where(ReviewRow.job_id == job_id).order_by(ReviewRow.self_confidence)
        if status is not None:
            query = query.where(ReviewRow.status == status)
        return [self._review(row) for row in self.session.scalars(query)]

    def review(self, review_id: int) -> Review | None:
        row = self.session.get(ReviewRow, review_id)
        return None if row is None else self._review(row)

    def decide_review(self, review_id: int, label: str, worker_id: int) -> Review | None:
        """Take the decision once (None when it was taken already); a changed label replaces the item's."""
        row = self.session.get(ReviewRow, review_id)
        if row is None:
            return None
        status = "kept" if label == row.label else "changed"
        now = utcnow()
        done = self.session.execute(
            update(ReviewRow)
            .where(ReviewRow.id == review_id, ReviewRow.status == "open")
            .values(status=status, decided_label=label, decided_by=worker_id, decided_at=now)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return None
        if status == "changed":
            self.session.execute(
                update(Item)
                .where(Item.id == row.item_id)
                .values(label=label, confidence=1.0, labeled_by="reviewer", updated_at=now)
            )
        self.session.expire(row)
        return self._review(row)

    def _review(self, row: LabelingReviewRow) -> Review:
        item = self.session.get(Item, row.item_id)
        assert item is not None
        decider = self.session.get(WorkerRow, row.decided_by) if row.decided_by else None
        return Review(
            id=row.id,
            job_id=row.job_id,
            item_id=row.item_id,
            position=item.position,
            source=item.source,
            label=row.label,
            suggested=row.suggested,
            self_confidence=row.self_confidence,
            status=row.status,
            decided_label=row.decided_label,
            decided_by=decider.email if decider else None,
            decided_at=row.decided_at,
        )
