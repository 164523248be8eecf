"""Human loops, with flow definitions (``_review_flows``) and their webhook events (``_review_outbox``).
A loop and its item in the flow's labeling job are made in one transaction, once per name
(``INSERT ... ON CONFLICT DO NOTHING``); a loop leaves ``InProgress`` once, by a conditional UPDATE, on
SQLite and on PostgreSQL alike; the flow's row is locked while its loops are started (its budget's counts
stay true)."""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loopwise.review.records import Flow, HumanLoop
from loopwise.storage.repositories._review_flows import FlowDefinitions
from loopwise.storage.repositories._review_outbox import LoopEventOutbox
from loopwise.storage.tables import (
    HumanLoopRow,
    LabelingAssignmentRow,
    LabelingItemRow,
    LabelingJobRow,
    ReviewFlowRow,
    TeamRow,
    WorkerRow,
)

Loop, FlowRow, Item, Hold, Job = (
    HumanLoopRow,
    ReviewFlowRow,
    LabelingItemRow,
    LabelingAssignmentRow,
    LabelingJobRow,
)


class ReviewRepository(FlowDefinitions, LoopEventOutbox):
    """Human loops; flow definitions and loop events come from the two mixins."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- loops -----------------------------------------------------------------------------------

    def lock_flow(self, flow_id: int) -> str | None:
        """The flow's status, its row locked until this transaction ends (``SELECT ... FOR UPDATE`` on
        PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` holds the whole database already): the writers that
        start its loops take turns, so its budget's counts stay true."""
        return self.session.scalar(select(FlowRow.status).where(FlowRow.id == flow_id).with_for_update())

    def existing(self, names: Sequence[str]) -> set[str]:
        """Which of ``names`` are loops already."""
        found: set[str] = set()
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            found.update(self.session.scalars(select(Loop.name).where(Loop.name.in_(chunk))))
        return found

    def open_count(self, flow_id: int) -> int:
        query = select(func.count()).where(Loop.flow_id == flow_id, Loop.status == "InProgress")
        return int(self.session.scalar(query) or 0)

    def started_since(self, flow_id: int, since: datetime) -> int:
        """Loops of the flow that started (reached the queue) at ``since`` or later."""
        query = select(func.count()).where(
            Loop.flow_id == flow_id, Loop.created_at >= since, Loop.item_id.is_not(None)
        )
        return int(self.session.scalar(query) or 0)

    def replaceable(self, flow_id: int, limit: int) -> builtins.list[HumanLoop]:
        """Open loops of the flow that nobody has claimed (no hold, no answer) and that have a
        confidence, least uncertain first; locked (ones another transaction holds are passed over)."""
        query = (
            select(Loop, FlowRow.name)
            .join(FlowRow, FlowRow.id == Loop.flow_id)
            .join(Item, Item.id == Loop.item_id)
            .where(
                Loop.flow_id == flow_id,
                Loop.status == "InProgress",
                Loop.confidence.is_not(None),
                Item.status == "open",
                Item.holds == 0,
                Item.answers_count == 0,
            )
            .order_by(Loop.confidence.desc(), Loop.id)
            .limit(limit)
            .with_for_update(of=Loop, skip_locked=True)
        )
        return [_loop(*row) for row in self.session.execute(query)]

    def release(self, item_id: int | None, now: datetime) -> bool:
        """Take an unclaimed loop's item out of the queue; False when a worker holds or answered it
        meanwhile (it then stays)."""
        if item_id is None:
            return False
        done = self.session.execute(
            update(Item)
            .where(Item.id == item_id, Item.status == "open", Item.holds == 0, Item.answers_count == 0)
            .values(status="closed", updated_at=now)
        )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    def start_loops(
        self,
        flow: Flow,
        loops: Sequence[Mapping[str, Any]],
        now: datetime,
        *,
        refused: str | None = None,
    ) -> builtins.list[str]:
        """Loops (``name``, ``input``, ``content_hash`` and optionally ``inference_id``, ``endpoint``,
        ``variant``, ``activation``, ``confidence``) of ``flow``, each with its item, in this
        transaction; a name that exists already is left as it is. With ``refused`` (a reason) they are
        recorded ``Stopped`` at once, with no item. Returns the names made now."""
        if not loops:
            return []
        if self.session.scalar(select(FlowRow.status).where(FlowRow.id == flow.id)) != "Active":
            return []  # a deleted flow starts no loop (an endpoint may still name it for a moment)
        dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        expires_at = now + timedelta(seconds=flow.lifetime_s)
        rows = [
            {
                "name": loop["name"],
                "flow_id": flow.id,
                "status": "InProgress" if refused is None else "Stopped",
                "input": loop["input"],
                "content_hash": loop["content_hash"],
                "inference_id": loop.get("inference_id"),
                "endpoint": loop.get("endpoint"),
                "variant": loop.get("variant"),
                "activation": loop.get("activation"),
                "confidence": loop.get("confidence"),
                "failure_reason": refused,
                "created_at": now,
                "expires_at": expires_at,
                "ended_at": None if refused is None else now,
            }
            for loop in loops
        ]
        made = self.session.execute(
            dialect.insert(Loop)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(Loop.id, Loop.name),
            rows,
        ).all()
        if not made or refused is not None:
            return [name for _, name in made]
        by_name = {loop["name"]: loop for loop in loops}
        items = [
            {
                "job_id": flow.job_id,
                "position": loop_id,
                "source": by_name[name]["input"]["taskObject"],
                "extra": {"humanLoopName": name},
                "answers_count": 0,
                "holds": 0,
                "status": "open",
                "initial": _initial(by_name[name]["input"]),
                "updated_at": now,
            }
            for loop_id, name in made
        ]
        item_ids = self.session.execute(dialect.insert(Item).returning(Item.id, Item.position), items).all()
        for item_id, loop_id in item_ids:
            self.session.execute(update(Loop).where(Loop.id == loop_id).values(item_id=item_id))
        self.session.execute(
            update(Job).where(Job.id == flow.job_id).values(items_count=Job.items_count + len(made))
        )
        return [name for _, name in made]

    def loop(self, name: str) -> HumanLoop | None:
        found = self.session.execute(
            select(Loop, FlowRow.name).join(FlowRow, FlowRow.id == Loop.flow_id).where(Loop.name == name)
        ).first()
        return None if found is None else _loop(*found)

    def loops(
        self,
        *,
        flow_id: int | None = None,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        inference_id: str | None = None,
        after_id: int | None = None,
        descending: bool = False,
        limit: int = 100,
        teams: Collection[str] | None = None,
    ) -> builtins.list[HumanLoop]:
        """Loops in creation order (or newest first), filtered (``teams``: only the loops of those teams'
        flows); ``after_id`` goes on from a page's end."""
        query = select(Loop, FlowRow.name).join(FlowRow, FlowRow.id == Loop.flow_id)
        if flow_id is not None:
            query = query.where(Loop.flow_id == flow_id)
        if teams is not None:
            ours = (
                select(Job.id).join(TeamRow, TeamRow.id == Job.team_id).where(TeamRow.name.in_(list(teams)))
            )
            query = query.where(FlowRow.job_id.in_(ours))
        if status is not None:
            query = query.where(Loop.status == status)
        if created_after is not None:
            query = query.where(Loop.created_at >= created_after)
        if created_before is not None:
            query = query.where(Loop.created_at < created_before)
        if inference_id is not None:
            query = query.where(Loop.inference_id == inference_id)
        if after_id is not None:
            query = query.where(Loop.id < after_id if descending else Loop.id > after_id)
        query = query.order_by(Loop.id.desc() if descending else Loop.id).limit(limit)
        return [_loop(*row) for row in self.session.execute(query)]

    def count(self, flow_id: int | None = None) -> dict[str, int]:
        query = select(Loop.status, func.count()).group_by(Loop.status)
        if flow_id is not None:
            query = query.where(Loop.flow_id == flow_id)
        return {status: int(n) for status, n in self.session.execute(query).tuples()}

    def item_complete(self, item_id: int) -> bool:
        """Whether a loop's item has all its answers."""
        return self.session.scalar(select(Item.status).where(Item.id == item_id)) == "complete"

    def answered(self, limit: int = 100) -> builtins.list[HumanLoop]:
        """Loops in progress whose item has all its answers: ready to complete."""
        query = (
            select(Loop, FlowRow.name)
            .join(FlowRow, FlowRow.id == Loop.flow_id)
            .join(Item, Item.id == Loop.item_id)
            .where(Loop.status == "InProgress", Item.status == "complete")
            .order_by(Loop.id)
            .limit(limit)
        )
        return [_loop(*row) for row in self.session.execute(query)]

    def expired(self, now: datetime, limit: int = 100) -> builtins.list[HumanLoop]:
        query = (
            select(Loop, FlowRow.name)
            .join(FlowRow, FlowRow.id == Loop.flow_id)
            .where(Loop.status == "InProgress", Loop.expires_at <= now)
            .order_by(Loop.id)
            .limit(limit)
        )
        return [_loop(*row) for row in self.session.execute(query)]

    def answers(self, item_id: int) -> builtins.list[dict[str, Any]]:
        """The submitted answers of a loop's item: worker, label and times."""
        query = (
            select(
                Hold.worker_id, WorkerRow.email, Hold.label, Hold.started_at, Hold.submitted_at, Hold.seconds
            )
            .join(WorkerRow, WorkerRow.id == Hold.worker_id)
            .where(Hold.item_id == item_id, Hold.state == "submitted")
            .order_by(Hold.submitted_at, Hold.id)
        )
        keys = ("worker_id", "email", "label", "started_at", "submitted_at", "seconds")
        return [dict(zip(keys, row, strict=True)) for row in self.session.execute(query)]

    def end(
        self,
        loop_id: int,
        status: str,
        now: datetime,
        *,
        reason: str | None = None,
        output_uri: str | None = None,
        when: str = "InProgress",
    ) -> bool:
        """Move a loop from ``when`` to ``status``, once; False when it had left ``when`` already."""
        done = self.session.execute(
            update(Loop)
            .where(Loop.id == loop_id, Loop.status == when)
            .values(status=status, ended_at=now, failure_reason=reason, output_uri=output_uri)
        )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    def withdraw(self, item_id: int | None, now: datetime) -> int:
        """Take a loop's item out of the queue; its live holds are withdrawn (a later answer is refused)."""
        if item_id is None:
            return 0
        # the holds first, then the item: the order a submit locks them in (no deadlock on PostgreSQL)
        withdrawn = self.session.execute(
            update(Hold)
            .where(Hold.item_id == item_id, Hold.state == "held")
            .values(state="withdrawn", submitted_at=now)
        )
        self.session.execute(
            update(Item).where(Item.id == item_id).values(status="closed", holds=0, updated_at=now)
        )
        return int(withdrawn.rowcount)  # type: ignore[attr-defined]

    def delete_loop(self, loop: HumanLoop) -> None:
        self.session.execute(delete(Loop).where(Loop.id == loop.id))
        if loop.item_id is not None:
            self.session.execute(delete(Hold).where(Hold.item_id == loop.item_id))
            self.session.execute(delete(Item).where(Item.id == loop.item_id))


def _initial(content: dict[str, Any]) -> str | None:
    value = content.get("initialValue")
    return None if value is None else str(value)


def _loop(row: HumanLoopRow, flow: str) -> HumanLoop:
    return HumanLoop(
        id=row.id,
        name=row.name,
        flow=flow,
        status=row.status,  # type: ignore[arg-type]
        input=dict(row.input),
        content_hash=row.content_hash,
        created_at=row.created_at,
        expires_at=row.expires_at,
        item_id=row.item_id,
        inference_id=row.inference_id,
        endpoint=row.endpoint,
        variant=row.variant,
        activation=row.activation,
        confidence=row.confidence,
        failure_reason=row.failure_reason,
        output_uri=row.output_uri,
        ended_at=row.ended_at,
    )
