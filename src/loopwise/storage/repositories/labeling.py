"""Labeling jobs, items and assignments. Holds and answers change counters by conditional UPDATEs: an
item's ``answers_count + holds`` never passes the job's workers per item, an assignment leaves ``held``
once, and (item, worker) is unique, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError
from loopwise.labeling.records import Answer, Assignment, Category, LabelingJob, ManifestItem, Task
from loopwise.storage.tables import (
    LabelingAssignmentRow,
    LabelingItemRow,
    LabelingJobRow,
    TeamRow,
    WorkerRow,
    utcnow,
)

from . import _labeling_sql as sql

Hold, Item, Job = LabelingAssignmentRow, LabelingItemRow, LabelingJobRow


class LabelingRepository:
    """Jobs, items, holds and answers. A worker's requests (next item, submit, skip) run statements
    built once (:mod:`._labeling_sql`) on the session's connection, in the session's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _run(self, statement: Any, **params: Any) -> Any:
        return self.session.connection().execute(statement, params)

    def warm(self) -> None:
        """Compile the reads of a worker's requests (and open this connection) before the first worker
        waits for it: ids that match nothing, nothing written."""
        now = utcnow()
        self._run(sql.JOB, p_job=-1).all()
        self._run(sql.LIVE_HOLDS, p_job=-1, p_worker=-1, p_now=now).all()
        self._run(sql.CANDIDATES, p_job=-1, p_worker=-1, p_needed=1, p_limit=1).all()
        self._run(sql.ASSIGNMENT, p_hold=-1).all()
        self._run(sql.HOLD_START, p_hold=-1).all()
        self._run(sql.ANY_OPEN, p_job=-1).all()

    # --- jobs ------------------------------------------------------------------------------------

    def add_job(
        self,
        *,
        team_id: int,
        created_by: int | None,
        items: Sequence[ManifestItem],
        initial: Sequence[tuple[str, str | None]] | None = None,
        **fields: Any,
    ) -> int:
        """A job and its items in one go; ``initial``: each item's first status and pool (all open)."""
        categories = [c.to_dict() for c in fields.pop("categories")]
        row = Job(
            team_id=team_id,
            created_by=created_by,
            categories=categories,
            status="InProgress",
            items_count=len(items),
            **fields,
        )
        self.session.add(row)
        self.session.flush()
        now = utcnow()
        starts = initial or [("open", None)] * len(items)
        rows = [
            {
                "job_id": row.id,
                "position": item.position,
                "source": item.source,
                "extra": item.extra,
                "answers_count": 0,
                "holds": 0,
                "status": status,
                "pool": pool,
                "updated_at": now,
            }
            for item, (status, pool) in zip(items, starts, strict=True)
        ]
        for start in range(0, len(rows), 5000):
            self.session.execute(insert(Item), rows[start : start + 5000])
        return row.id

    def find_job(self, name: str) -> LabelingJob | None:
        row = self.session.scalar(select(Job).where(Job.name == name))
        return None if row is None else self._job(row)

    def job(self, job_id: int) -> LabelingJob:
        found = self._run(sql.JOB, p_job=job_id).first()
        if found is None:
            raise NotFoundError(f"no labeling job {job_id}")
        return LabelingJob(
            **{
                **found._asdict(),
                "categories": tuple(Category(c["label"], c.get("description", "")) for c in found.categories),
            }
        )

    def jobs(self, teams: builtins.set[str] | None = None) -> builtins.list[LabelingJob]:
        """Every job, newest first, or only those of ``teams``."""
        query = select(Job).order_by(Job.id.desc())
        if teams is not None:
            query = query.join(TeamRow, TeamRow.id == Job.team_id).where(TeamRow.name.in_(teams))
        return [self._job(row) for row in self.session.scalars(query)]

    def set_status(self, job_id: int, status: str, *, when: str | None = None) -> None:
        """Move a job to ``status``; ``when`` the status it must have now (a conditional move)."""
        query = update(Job).where(Job.id == job_id)
        if when is not None:
            query = query.where(Job.status == when)
        ended = utcnow() if status != "InProgress" else None
        self.session.execute(query.values(status=status, completed_at=ended))

    def open_items(self, job_id: int) -> bool:
        """Whether any item has no label yet: open for people, or waiting for automated labeling."""
        return self._run(sql.ANY_OPEN, p_job=job_id).first() is not None

    def takes_new_items(self, job_id: int) -> bool:
        """Whether items keep arriving: a flow definition's job (each human loop is an item of it)."""
        from loopwise.storage.tables import ReviewFlowRow

        return self.session.scalar(select(ReviewFlowRow.id).where(ReviewFlowRow.job_id == job_id)) is not None

    def status_counts(self, job_id: int) -> dict[str, int]:
        query = select(Item.status, func.count()).where(Item.job_id == job_id).group_by(Item.status)
        return {status: int(n) for status, n in self.session.execute(query).tuples()}

    # --- holds -----------------------------------------------------------------------------------

    def release_expired(self, job_id: int, now: datetime) -> int:
        """Holds past their time limit end; their items go back to the queue. Returns how many."""
        expired = self.session.scalars(
            update(Hold)
            .where(Hold.job_id == job_id, Hold.state == "held", Hold.expires_at <= now)
            .values(state="expired")
            .returning(Hold.item_id)
        ).all()
        for item_id, count in Counter(expired).items():
            self.session.execute(update(Item).where(Item.id == item_id).values(holds=Item.holds - count))
        return len(expired)

    def live_holds(self, job_id: int, worker_id: int, now: datetime) -> builtins.list[Task]:
        found = self._run(sql.LIVE_HOLDS, p_job=job_id, p_worker=worker_id, p_now=now)
        return [Task(*row) for row in found]

    def candidates(
        self, job_id: int, worker_id: int, needed: int, limit: int
    ) -> builtins.list[tuple[int, int, str, int | None, str | None]]:
        """Items that still need answers and that the worker has not held, answered or skipped, in
        manifest order: (item id, position, text, the worker's expired hold on it to renew if any, the
        value to show preselected)."""
        found = self._run(sql.CANDIDATES, p_job=job_id, p_worker=worker_id, p_needed=needed, p_limit=limit)
        return [tuple(row) for row in found]

    def take(
        self,
        job_id: int,
        candidate: tuple[int, int, str, int | None, str | None],
        worker_id: int,
        needed: int,
        expires_at: datetime,
    ) -> Task | None:
        """Hold the candidate item for the worker if it still has room; None when someone else got it."""
        item_id, position, source, expired, initial = candidate
        if self._run(sql.TAKE, p_item=item_id, p_needed=needed).rowcount != 1:
            return None
        times = {"p_now": utcnow(), "p_expires": expires_at}
        if expired is None:
            # ON CONFLICT DO NOTHING: the same worker taking it at the same moment from another request
            # gets no row back (and gives the hold back below) instead of an error and a rollback
            insert_once = sql.NEW_HOLD[self.session.get_bind().dialect.name]
            assignment_id = self._run(
                insert_once, p_job=job_id, p_item=item_id, p_worker=worker_id, **times
            ).scalar_one_or_none()
        else:
            renewed = self._run(sql.RENEW, p_hold=expired, **times)
            assignment_id = expired if renewed.rowcount == 1 else None
        if assignment_id is None:
            self._run(sql.RELEASE, p_item=item_id)
            return None
        return Task(assignment_id, item_id, position, source, expires_at, initial)

    # --- answers ---------------------------------------------------------------------------------

    def assignment(self, assignment_id: int) -> Assignment | None:
        found = self._run(sql.ASSIGNMENT, p_hold=assignment_id).first()
        if found is None:
            return None
        hold, job_id, worker_id, state, expires_at, item_id, position, source = found
        task = Task(hold, item_id, position, source, expires_at)
        return Assignment(hold, job_id, worker_id, state, expires_at, task)

    def submit(
        self, assignment_id: int, worker_id: int, label: str, now: datetime, needed: int
    ) -> tuple[float, bool] | None:
        """The answer, stored once: (seconds it took, whether the item now has all its answers); None when
        the assignment is not the worker's live hold."""
        ended = self._end_hold(assignment_id, worker_id, now, state="submitted", label=label)
        if ended is None:
            return None
        item_id, seconds = ended
        counted = self._run(sql.COUNT_ANSWER, p_item=item_id, p_needed=needed, p_now=now).scalar_one()
        return seconds, counted == "complete"

    def skip(self, assignment_id: int, worker_id: int, now: datetime) -> bool:
        ended = self._end_hold(assignment_id, worker_id, now, state="skipped")
        if ended is None:
            return False
        self._run(sql.SKIPPED, p_item=ended[0], p_now=now)
        return True

    def _end_hold(
        self, assignment_id: int, worker_id: int, now: datetime, *, state: str, label: str | None = None
    ) -> tuple[int, float] | None:
        """Move the worker's live hold to its end (submitted or skipped): once, by a conditional UPDATE.
        Returns (item id, seconds since the hold began); None when it is not a live hold of theirs (any
        more)."""
        found = self._run(sql.HOLD_START, p_hold=assignment_id).first()
        if found is None:
            return None
        item_id, started_at = found
        seconds = (now - started_at).total_seconds()
        done = self._run(
            sql.END_HOLD,
            p_hold=assignment_id,
            p_worker=worker_id,
            p_now=now,
            p_state=state,
            p_label=label,
            p_seconds=seconds if state == "submitted" else None,
        )
        return (item_id, seconds) if done.rowcount == 1 else None

    def undo_last(self, job_id: int, worker_id: int, now: datetime, limit: timedelta) -> Task | None:
        """The worker's latest answer in the job taken back: the item is theirs to answer again."""
        row = self.session.scalar(
            select(Hold)
            .where(Hold.job_id == job_id, Hold.worker_id == worker_id, Hold.state == "submitted")
            .order_by(Hold.submitted_at.desc(), Hold.id.desc())
            .limit(1)
        )
        if row is None or not self._item_takes_answers(row.item_id):
            return None
        done = self.session.execute(
            update(Hold)
            .where(Hold.id == row.id, Hold.state == "submitted")
            .values(
                state="held",
                label=None,
                submitted_at=None,
                seconds=None,
                started_at=now,
                expires_at=now + limit,
            )
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return None
        self.session.execute(
            update(Item)
            .where(Item.id == row.item_id)
            .values(holds=Item.holds + 1, answers_count=Item.answers_count - 1, status="open", updated_at=now)
        )
        self.session.expire(row)
        item = self.session.get(Item, row.item_id)
        assert item is not None
        return self._task(self.session.get(Hold, row.id), item)  # type: ignore[arg-type]

    def _item_takes_answers(self, item_id: int) -> bool:
        """False for a closed item, and for the item of a human loop that has ended (an answer taken back
        there would reopen what was consolidated, or what was stopped)."""
        from loopwise.storage.tables import HumanLoopRow

        if self.session.scalar(select(Item.status).where(Item.id == item_id)) == "closed":
            return False
        loop = self.session.scalar(select(HumanLoopRow.status).where(HumanLoopRow.item_id == item_id))
        return loop is None or loop == "InProgress"

    def others(self, item_id: int, worker_id: int) -> builtins.list[str]:
        query = select(Hold.label).where(
            Hold.item_id == item_id, Hold.worker_id != worker_id, Hold.state == "submitted"
        )
        return [label for label in self.session.scalars(query) if label is not None]

    def answers(self, job_id: int, worker_id: int | None = None) -> builtins.list[Answer]:
        query = (
            select(Hold, Item.position, WorkerRow.email)
            .join(Item, Item.id == Hold.item_id)
            .join(WorkerRow, WorkerRow.id == Hold.worker_id)
            .where(Hold.job_id == job_id, Hold.state == "submitted")
            .order_by(Item.position, Hold.id)
        )
        if worker_id is not None:
            query = query.where(Hold.worker_id == worker_id)
        return [
            Answer(a.id, a.item_id, position, email, a.label or "", a.submitted_at, a.seconds)  # type: ignore[arg-type]
            for a, position, email in self.session.execute(query).tuples()
        ]

    def counts(self, job_id: int, now: datetime) -> dict[str, int]:
        items = self.session.execute(
            select(
                func.count(),
                func.sum(case((Item.status == "complete", 1), else_=0)),
                func.sum(Item.answers_count),
                func.sum(case((Item.status == "waiting", 1), else_=0)),
                func.sum(case((Item.labeled_by == "machine", 1), else_=0)),
            ).where(Item.job_id == job_id)
        ).one()
        held = self.session.scalar(
            select(func.count()).where(Hold.job_id == job_id, Hold.state == "held", Hold.expires_at > now)
        )
        skipped = self.session.execute(
            select(WorkerRow.email, func.count())
            .select_from(Hold)
            .join(WorkerRow, WorkerRow.id == Hold.worker_id)
            .where(Hold.job_id == job_id, Hold.state == "skipped")
            .group_by(WorkerRow.email)
        ).all()
        return {
            "items": int(items[0] or 0),
            "complete": int(items[1] or 0),
            "answers": int(items[2] or 0),
            "waiting": int(items[3] or 0),
            "machine": int(items[4] or 0),
            "held_now": int(held or 0),
            **{f"skipped:{email}": int(n) for email, n in skipped},
        }

    def item_counters(self, job_id: int) -> builtins.list[tuple[int, int, int, str]]:
        """(position, answers, holds, status) of every item: for checks and tests."""
        query = (
            select(Item.position, Item.answers_count, Item.holds, Item.status)
            .where(Item.job_id == job_id)
            .order_by(Item.position)
        )
        return [tuple(row) for row in self.session.execute(query).tuples()]  # type: ignore[misc]

    # --- mapping ---------------------------------------------------------------------------------

    def _job(self, row: LabelingJobRow, team: str | None = None) -> LabelingJob:
        if team is None:
            found = self.session.get(TeamRow, row.team_id)
            team = found.name if found else "?"
        return LabelingJob(
            id=row.id,
            name=row.name,
            title=row.title,
            team=team,
            categories=tuple(Category(c["label"], c.get("description", "")) for c in row.categories),
            short_instructions=row.short_instructions,
            full_instructions=row.full_instructions,
            workers_per_item=row.workers_per_item,
            task_time_limit_s=row.task_time_limit_s,
            expires_at=row.expires_at,
            blind=row.blind,
            status=row.status,  # type: ignore[arg-type]
            source=row.source,
            items_count=row.items_count,
            created_at=row.created_at,
            completed_at=row.completed_at,
        )

    @staticmethod
    def _task(a: LabelingAssignmentRow, i: LabelingItemRow) -> Task:
        return Task(a.id, i.id, i.position, i.source, a.expires_at, i.initial)
