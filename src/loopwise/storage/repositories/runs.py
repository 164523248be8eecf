"""Training runs and their step metrics."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError
from loopwise.storage.tables import (
    RunMetricRow,
    TrainingRunRow,
    utcnow,
)
from loopwise.training.records import RunMetric, RunStatus, TrainingRun


class RunRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, run: TrainingRun) -> TrainingRun:
        self.session.add(
            TrainingRunRow(
                id=run.id,
                status=run.status.value,
                backend=run.backend,
                base_model=run.base_model,
                dataset_version_id=run.dataset_version_id,
                params=run.params,
                metrics=run.metrics,
                profile=run.profile,
                code_version=run.code_version,
                started_at=run.started_at,
            )
        )
        self.session.flush()
        return run

    def get(self, run_id: str) -> TrainingRun:
        row = self.session.get(TrainingRunRow, run_id)
        if row is None:
            matches = self.session.scalars(
                select(TrainingRunRow).where(TrainingRunRow.id.startswith(run_id)).limit(2)
            ).all()
            if len(matches) != 1:
                raise NotFoundError(f"training run {run_id!r} not found; see `loopwise runs list`")
            row = matches[0]
        return self._domain(row)

    def list(self, limit: int = 50) -> list[TrainingRun]:
        rows = self.session.scalars(
            select(TrainingRunRow).order_by(TrainingRunRow.started_at.desc()).limit(limit)
        ).all()
        return [self._domain(row) for row in rows]

    def add_metrics(self, run_id: str, metrics: Sequence[RunMetric]) -> None:
        self.session.add_all(
            RunMetricRow(run_id=run_id, step=m.step, epoch=m.epoch, name=m.name, value=m.value)
            for m in metrics
        )
        self.session.flush()

    def metrics(self, run_id: str) -> builtins.list[RunMetric]:
        rows = self.session.scalars(
            select(RunMetricRow).where(RunMetricRow.run_id == run_id).order_by(RunMetricRow.id)
        ).all()
        return [RunMetric(r.step, r.epoch, r.name, r.value) for r in rows]

    def finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        metrics: dict[str, Any] | None = None,
        profile: dict[str, Any] | None = None,
        error: str | None = None,
        artifact_uri: str | None = None,
        finished_at: datetime | None = None,
    ) -> TrainingRun:
        row = self.session.get(TrainingRunRow, run_id)
        if row is None:
            raise NotFoundError(f"training run {run_id!r} not found")
        row.status = status.value
        row.metrics = metrics or row.metrics
        row.profile = profile or row.profile
        row.error = error
        row.artifact_uri = artifact_uri or row.artifact_uri
        row.finished_at = finished_at or utcnow()
        self.session.flush()
        return self._domain(row)

    @staticmethod
    def _domain(row: TrainingRunRow) -> TrainingRun:
        return TrainingRun(
            id=row.id,
            status=RunStatus(row.status),
            backend=row.backend,
            base_model=row.base_model,
            dataset_version_id=row.dataset_version_id,
            params=dict(row.params),
            code_version=row.code_version,
            started_at=row.started_at,
            metrics=dict(row.metrics or {}),
            profile=dict(row.profile or {}),
            error=row.error,
            artifact_uri=row.artifact_uri,
            finished_at=row.finished_at,
        )
