"""Allocating the next version number of a name under concurrent writers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loopwise.errors import StorageError

_VERSION_RETRIES = 20


def _next_version(session: Session, column: Any, name_column: Any, name: str) -> int:
    current = session.scalar(select(func.max(column)).where(name_column == name))
    return (current or 0) + 1


def _insert_versioned(session: Session, build: Any, column: Any, name_column: Any, name: str) -> Any:
    """Insert a row with the next version of ``name``; retry when a concurrent writer took that number."""
    for _ in range(_VERSION_RETRIES):
        row = build(_next_version(session, column, name_column, name))
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row
        except IntegrityError:
            continue
    raise StorageError(f"could not allocate a new version of {name!r}: too many concurrent writers, retry")
