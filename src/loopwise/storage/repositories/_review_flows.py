"""Flow definitions: each is a row with its own labeling job (the task template and the team), read back
together with the team's name."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError
from loopwise.labeling.records import Category
from loopwise.review.records import Flow
from loopwise.storage.tables import LabelingJobRow, ReviewFlowRow, TeamRow

FlowRow, Job = ReviewFlowRow, LabelingJobRow
#: a flow's labeling job never ends by itself: its loops end one by one
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


class FlowDefinitions:
    """The flow half of :class:`~loopwise.storage.repositories.review.ReviewRepository`."""

    session: Session

    def add_flow(self, *, name: str, job: dict[str, Any], **fields: Any) -> int:
        """A flow and its labeling job (no items yet: each loop adds one)."""
        categories = [c.to_dict() for c in job.pop("categories")]
        row = Job(
            categories=categories,
            status="InProgress",
            items_count=0,
            expires_at=FOREVER,
            source=f"flow {name}",
            blind=True,
            name=_job_name(name),
            **job,
        )
        self.session.add(row)
        self.session.flush()
        flow = FlowRow(name=name, job_id=row.id, status="Active", **fields)
        self.session.add(flow)
        self.session.flush()
        return flow.id

    def flow(self, name: str) -> Flow | None:
        found = self.session.execute(self._flows().where(FlowRow.name == name)).first()
        return None if found is None else self._flow(*found)

    def flow_by_id(self, flow_id: int) -> Flow:
        found = self.session.execute(self._flows().where(FlowRow.id == flow_id)).first()
        if found is None:
            raise NotFoundError(f"no flow definition {flow_id}")
        return self._flow(*found)

    def flows(self) -> builtins.list[Flow]:
        return [self._flow(*row) for row in self.session.execute(self._flows().order_by(FlowRow.name))]

    def set_flow_status(self, flow_id: int, status: str) -> None:
        self.session.execute(update(FlowRow).where(FlowRow.id == flow_id).values(status=status))
        if status == "Deleted":
            job_id = select(FlowRow.job_id).where(FlowRow.id == flow_id).scalar_subquery()
            self.session.execute(update(Job).where(Job.id == job_id).values(status="Stopped"))

    @staticmethod
    def _flows() -> Any:
        return (
            select(FlowRow, Job, TeamRow.name)
            .join(Job, Job.id == FlowRow.job_id)
            .join(TeamRow, TeamRow.id == Job.team_id)
        )

    @staticmethod
    def _flow(row: ReviewFlowRow, job: LabelingJobRow, team: str) -> Flow:
        categories = tuple(Category(c["label"], c.get("description", "")) for c in job.categories)
        return Flow(
            id=row.id,
            name=row.name,
            job_id=job.id,
            team=team,
            title=job.title,
            categories=categories,
            short_instructions=job.short_instructions,
            full_instructions=job.full_instructions,
            answer_key=row.answer_key,
            task_count=job.workers_per_item,
            task_time_limit_s=job.task_time_limit_s,
            lifetime_s=row.lifetime_s,
            conditions=row.conditions,
            webhook=row.webhook,
            status=row.status,
            created_at=row.created_at,
            webhook_secret=row.webhook_secret,
            max_open_loops=row.max_open_loops,
            max_loops_per_hour=row.max_loops_per_hour,
            max_loops_per_invocation=row.max_loops_per_invocation,
        )


def _job_name(flow: str) -> str:
    """The flow's labeling job: unique for every flow name, and unlike a job a person would name."""
    import hashlib

    digest = hashlib.blake2b(flow.encode(), digest_size=5).hexdigest()
    return f"flow-{digest}-{flow}"[:63].rstrip("-")
