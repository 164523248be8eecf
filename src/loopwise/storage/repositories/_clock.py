"""The database's clock, for rows that servers on several hosts compare (leases, load reports, the
autoscaler's cooldowns): hosts whose clocks disagree still agree on the database's."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Interval, func, literal, select, type_coerce
from sqlalchemy.orm import Session

from loopwise.storage.tables import UTCDateTime

#: SQLite's clock in the format SQLAlchemy stores datetimes in (microseconds: milliseconds and ``000``)
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f000"


def now_expression(session: Session) -> ColumnElement[Any]:
    """The database's clock now, comparable with the stored times (``now()``; ``strftime`` on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.now()
    return func.strftime(_SQLITE_FORMAT, "now")


def later_expression(session: Session, seconds: float) -> ColumnElement[Any]:
    """The database's clock ``seconds`` from now (negative: ago)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.now() + literal(timedelta(seconds=seconds), Interval())
    return func.strftime(_SQLITE_FORMAT, "now", f"{seconds:+.3f} seconds")


def database_now(session: Session) -> datetime:
    """The database's clock now, read back as a UTC datetime (on PostgreSQL, the transaction's start)."""
    found = session.scalar(select(type_coerce(now_expression(session), UTCDateTime())))
    assert found is not None
    return found
