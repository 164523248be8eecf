"""Tuning jobs."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError, StorageError
from loopwise.storage.tables import (
    TuningJobRow,
)
from loopwise.tuning.records import JobStatus, TuningJob

#: "not given" for update(), where None means "clear the field"
_UNSET: Any = object()


class TuningJobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, name: str, spec: dict[str, Any], study_name: str) -> TuningJob:
        """Record a new running job; raises :class:`StorageError` when the name is taken."""
        if self.session.scalar(select(TuningJobRow.id).where(TuningJobRow.name == name)) is not None:
            raise StorageError(
                f"a tuning job named {name!r} exists: resume it with `loopwise tune resume {name}` "
                "or give the new job another name (--name)"
            )
        row = TuningJobRow(name=name, spec=spec, status=JobStatus.RUNNING.value, study_name=study_name)
        self.session.add(row)
        self.session.flush()
        return self._domain(row)

    def get(self, name: str) -> TuningJob:
        row = self.session.scalar(select(TuningJobRow).where(TuningJobRow.name == name))
        if row is None:
            raise NotFoundError(f"tuning job {name!r} not found; see `loopwise tune list` or start one")
        return self._domain(row)

    def list(self) -> builtins.list[TuningJob]:
        rows = self.session.scalars(select(TuningJobRow).order_by(TuningJobRow.created_at)).all()
        return [self._domain(row) for row in rows]

    def update(
        self,
        name: str,
        *,
        status: JobStatus | None = None,
        best_trial: int | None = _UNSET,
        best_model_version_id: int | None = _UNSET,
        error: str | None = _UNSET,
        finished_at: datetime | None = _UNSET,
        test_evaluation_id: int | None = _UNSET,
    ) -> TuningJob:
        """Change the given fields (leave one out to keep it; None clears it)."""
        row = self.session.scalar(select(TuningJobRow).where(TuningJobRow.name == name))
        if row is None:
            raise NotFoundError(f"tuning job {name!r} not found")
        if status is not None:
            row.status = status.value
        if best_trial is not _UNSET:
            row.best_trial = best_trial
        if best_model_version_id is not _UNSET:
            row.best_model_version_id = best_model_version_id
        if error is not _UNSET:
            row.error = error
        if finished_at is not _UNSET:
            row.finished_at = finished_at
        if test_evaluation_id is not _UNSET:
            row.test_evaluation_id = test_evaluation_id
        self.session.flush()
        return self._domain(row)

    @staticmethod
    def _domain(row: TuningJobRow) -> TuningJob:
        return TuningJob(
            id=row.id,
            name=row.name,
            spec=dict(row.spec),
            status=JobStatus(row.status),
            study_name=row.study_name,
            created_at=row.created_at,
            best_trial=row.best_trial,
            best_model_version_id=row.best_model_version_id,
            error=row.error,
            finished_at=row.finished_at,
            test_evaluation_id=row.test_evaluation_id,
        )
