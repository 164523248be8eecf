"""The statements of a worker's requests (next item, submit, skip), built once at import as Core
statements with bound parameters.

Building a statement is most of what SQLAlchemy costs on this path: a select with a few comparisons
takes longer to construct and to key for the compiled cache than the database takes to answer it.
Statements made once are keyed once and compiled once per dialect, and executing them through the
session's connection skips the ORM's row loading. Parameter names start with ``p_``: an UPDATE may not
bind a name that is also a column it sets.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Float, Integer, String, Table, and_, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from loopwise.storage.tables import (
    LabelingAssignmentRow,
    LabelingItemRow,
    LabelingJobRow,
    TeamRow,
    UTCDateTime,
)

JOBS, ITEMS, HOLDS, TEAMS = (
    cast(Table, row.__table__) for row in (LabelingJobRow, LabelingItemRow, LabelingAssignmentRow, TeamRow)
)
_job_id = bindparam("p_job", type_=Integer())
_worker = bindparam("p_worker", type_=Integer())
_item = bindparam("p_item", type_=Integer())
_hold = bindparam("p_hold", type_=Integer())
_needed = bindparam("p_needed", type_=Integer())
_now = bindparam("p_now", type_=UTCDateTime())
_expires = bindparam("p_expires", type_=UTCDateTime())

#: the job's fields (all but automated labeling's document) and its team's name
JOB = (
    select(
        JOBS.c.id,
        JOBS.c.name,
        JOBS.c.title,
        TEAMS.c.name.label("team"),
        JOBS.c.categories,
        JOBS.c.short_instructions,
        JOBS.c.full_instructions,
        JOBS.c.workers_per_item,
        JOBS.c.task_time_limit_s,
        JOBS.c.expires_at,
        JOBS.c.blind,
        JOBS.c.status,
        JOBS.c.source,
        JOBS.c.items_count,
        JOBS.c.created_at,
        JOBS.c.completed_at,
    )
    .join(TEAMS, TEAMS.c.id == JOBS.c.team_id)
    .where(JOBS.c.id == _job_id)
)

#: a worker's live holds in a job, oldest first: (assignment, item, position, text, expires at)
LIVE_HOLDS = (
    select(HOLDS.c.id, ITEMS.c.id, ITEMS.c.position, ITEMS.c.source, HOLDS.c.expires_at, ITEMS.c.initial)
    .join(ITEMS, ITEMS.c.id == HOLDS.c.item_id)
    .where(
        HOLDS.c.job_id == _job_id,
        HOLDS.c.worker_id == _worker,
        HOLDS.c.state == "held",
        HOLDS.c.expires_at > _now,
    )
    .order_by(HOLDS.c.started_at, HOLDS.c.id)
)

_expired = HOLDS.alias("expired")
#: items that still need answers and that the worker has not held, answered or skipped, in manifest
#: order: (item, position, text, the worker's expired hold on it to renew if any, preselected value)
CANDIDATES = (
    select(ITEMS.c.id, ITEMS.c.position, ITEMS.c.source, _expired.c.id, ITEMS.c.initial)
    .outerjoin(_expired, and_(_expired.c.item_id == ITEMS.c.id, _expired.c.worker_id == _worker))
    .where(
        ITEMS.c.job_id == _job_id,
        ITEMS.c.status == "open",
        ITEMS.c.answers_count + ITEMS.c.holds < _needed,
        ITEMS.c.id.not_in(
            select(HOLDS.c.item_id).where(
                HOLDS.c.job_id == _job_id, HOLDS.c.worker_id == _worker, HOLDS.c.state != "expired"
            )
        ),
    )
    .order_by(ITEMS.c.position)
    .limit(bindparam("p_limit", type_=Integer()))
)

#: one more hold on an item, if it has room
TAKE = (
    update(ITEMS)
    .where(ITEMS.c.id == _item, ITEMS.c.status == "open", ITEMS.c.answers_count + ITEMS.c.holds < _needed)
    .values(holds=ITEMS.c.holds + 1)
)
#: give a hold back to the item (its assignment ended or was never made)
RELEASE = update(ITEMS).where(ITEMS.c.id == _item).values(holds=ITEMS.c.holds - 1)


def _new_hold(dialect: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id: the same worker taking the same item at the same
    moment from another request gets no row instead of an error and a rolled-back transaction."""
    return (
        dialect.insert(HOLDS)
        .values(
            job_id=_job_id,
            item_id=_item,
            worker_id=_worker,
            state="held",
            started_at=_now,
            expires_at=_expires,
        )
        .on_conflict_do_nothing(index_elements=["item_id", "worker_id"])
        .returning(HOLDS.c.id)
    )


NEW_HOLD = {"postgresql": _new_hold(postgresql), "sqlite": _new_hold(sqlite)}
#: a worker's expired hold, held again
RENEW = (
    update(HOLDS)
    .where(HOLDS.c.id == _hold, HOLDS.c.state == "expired")
    .values(state="held", started_at=_now, expires_at=_expires, label=None)
)

#: an assignment with its item: (id, job, worker, state, expires at, item, position, text)
ASSIGNMENT = (
    select(
        HOLDS.c.id,
        HOLDS.c.job_id,
        HOLDS.c.worker_id,
        HOLDS.c.state,
        HOLDS.c.expires_at,
        ITEMS.c.id,
        ITEMS.c.position,
        ITEMS.c.source,
    )
    .join(ITEMS, ITEMS.c.id == HOLDS.c.item_id)
    .where(HOLDS.c.id == _hold)
)
HOLD_START = select(HOLDS.c.item_id, HOLDS.c.started_at).where(HOLDS.c.id == _hold)
#: a live hold of the worker ended (submitted with its label, or skipped), once; a live hold has no
#: label (taking, renewing and undoing clear it), so a skip's None changes nothing
END_HOLD = (
    update(HOLDS)
    .where(
        HOLDS.c.id == _hold, HOLDS.c.worker_id == _worker, HOLDS.c.state == "held", HOLDS.c.expires_at > _now
    )
    .values(
        state=bindparam("p_state", type_=String(20)),
        label=bindparam("p_label", type_=String(100)),
        submitted_at=_now,
        seconds=bindparam("p_seconds", type_=Float()),
    )
)
#: an answer counted on its item; returns the item's status after it
COUNT_ANSWER = (
    update(ITEMS)
    .where(ITEMS.c.id == _item)
    .values(
        holds=ITEMS.c.holds - 1,
        answers_count=ITEMS.c.answers_count + 1,
        status=case((ITEMS.c.answers_count + 1 >= _needed, "complete"), else_="open"),
        updated_at=_now,
    )
    .returning(ITEMS.c.status)
)
#: a skip: the hold given back
SKIPPED = update(ITEMS).where(ITEMS.c.id == _item).values(holds=ITEMS.c.holds - 1, updated_at=_now)
#: whether any item of the job has no label yet (open for people, or waiting for automated labeling)
ANY_OPEN = (
    select(ITEMS.c.id).where(ITEMS.c.job_id == _job_id, ITEMS.c.status.in_(("open", "waiting"))).limit(1)
)
