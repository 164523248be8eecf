"""Duty leases: one row a background duty, held by one server process at a time (``storage.leases``).

Every time is the database's (``now()`` on PostgreSQL, ``strftime('now')`` on SQLite), never a host's,
so servers whose clocks disagree still agree on who holds a lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loopwise.errors import LeaseLostError
from loopwise.storage.repositories._clock import later_expression, now_expression
from loopwise.storage.tables import DutyLeaseRow


@dataclass(frozen=True)
class Lease:
    duty: str
    #: ``host:pid:uuid`` of the holder; empty once released
    holder: str
    token: int
    expires_at: datetime


class LeaseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def acquire(self, duty: str, holder: str, ttl_s: float) -> int | None:
        """Take or renew ``duty``'s lease for ``ttl_s`` seconds in one statement: it succeeds when the
        duty has no lease yet, its lease expired, or ``holder`` holds it. Returns the fencing token (one
        more than the last holder's on a takeover, the same on a renewal), or None when another holder's
        lease runs."""
        table = DutyLeaseRow.__table__
        insert = (postgresql if self._dialect == "postgresql" else sqlite).insert(table)
        values = {"duty": duty, "holder": holder, "token": 1, "expires_at": self._later(ttl_s)}
        ours = table.c.holder == insert.excluded.holder
        statement = (
            insert.values(values)
            .on_conflict_do_update(
                index_elements=[table.c.duty],
                set_={
                    "holder": insert.excluded.holder,
                    "token": case((ours, table.c.token), else_=table.c.token + 1),
                    "expires_at": insert.excluded.expires_at,
                },
                where=or_(ours, table.c.expires_at < self._now()),
            )
            .returning(table.c.token)
        )
        token: int | None = self.session.execute(statement).scalar()
        return token

    def release(self, duty: str, holder: str) -> bool:
        """Give ``duty``'s lease up if ``holder`` holds it, so another server takes it at once (the next
        holder's token is one more, even if it is the same process again)."""
        statement = (
            update(DutyLeaseRow)
            .where(DutyLeaseRow.duty == duty, DutyLeaseRow.holder == holder)
            .values(holder="", expires_at=self._later(-1.0))
        )
        return bool(self.session.execute(statement).rowcount)  # type: ignore[attr-defined]

    def check(self, duty: str, token: int) -> None:
        """Refuse the transaction's writes unless ``token`` is still ``duty``'s: raises
        :class:`LeaseLostError` when another holder took the lease over. On PostgreSQL the lease row is
        share-locked until the transaction ends, so a takeover waits for this commit; on SQLite the
        transaction holds the database's write lock already (``BEGIN IMMEDIATE``)."""
        query = (
            select(DutyLeaseRow.token)
            .where(DutyLeaseRow.duty == duty, DutyLeaseRow.token == token)
            .with_for_update(read=True)
        )
        if self.session.scalar(query) is None:
            raise LeaseLostError(
                f"the lease of duty {duty!r} moved to another server (token {token} is stale): "
                "its write was rolled back; the server that holds the lease now does the work"
            )

    def all(self) -> list[Lease]:
        """Every duty's lease, by duty."""
        rows = self.session.scalars(select(DutyLeaseRow).order_by(DutyLeaseRow.duty))
        return [Lease(r.duty, r.holder, r.token, r.expires_at) for r in rows]

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def _now(self) -> ColumnElement[Any]:
        """The database's clock now, comparable with ``expires_at``."""
        return now_expression(self.session)

    def _later(self, seconds: float) -> ColumnElement[Any]:
        """The database's clock ``seconds`` from now (negative: ago)."""
        return later_expression(self.session, seconds)
