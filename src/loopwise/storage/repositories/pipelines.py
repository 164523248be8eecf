"""Pipelines, their runs and steps. A pipeline has at most one run in progress: a run's ``active`` column
holds the pipeline's name while it runs and is unique, so two triggers at once start one run."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loopwise.pipelines.records import PipelineRun, StepState
from loopwise.storage.tables import PipelineRow, PipelineRunRow, PipelineStepRow, utcnow

Run, StepRow = PipelineRunRow, PipelineStepRow


class PipelineRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def put(self, name: str, spec: str) -> bool:
        """Store the pipeline's file; True when it is new."""
        row = self.session.scalar(select(PipelineRow).where(PipelineRow.name == name))
        if row is None:
            self.session.add(PipelineRow(name=name, spec=spec))
            self.session.flush()
            return True
        row.spec, row.updated_at = spec, utcnow()
        self.session.flush()
        return False

    def get(self, name: str) -> tuple[int, str] | None:
        row = self.session.scalar(select(PipelineRow).where(PipelineRow.name == name))
        return None if row is None else (row.id, row.spec)

    def created_at(self, name: str) -> datetime | None:
        return self.session.scalar(select(PipelineRow.created_at).where(PipelineRow.name == name))

    def names(self) -> builtins.list[str]:
        return list(self.session.scalars(select(PipelineRow.name).order_by(PipelineRow.name)))

    def start(self, pipeline: str, spec: str, trigger: str, steps: builtins.list[str]) -> int | None:
        """A new run with its steps Pending; None when the pipeline has a run in progress."""
        found = self.get(pipeline)
        assert found is not None
        try:
            with self.session.begin_nested():
                row = Run(
                    pipeline_id=found[0], spec=spec, status="Running", active=pipeline, trigger=trigger[:200]
                )
                self.session.add(row)
                self.session.flush()
        except IntegrityError:
            return None
        for position, name in enumerate(steps):
            self.session.add(StepRow(run_id=row.id, name=name, position=position, status="Pending", log=""))
        self.session.flush()
        return row.id

    def active(self, pipeline: str) -> int | None:
        return self.session.scalar(select(Run.id).where(Run.active == pipeline))

    def reopen(self, run_id: int, pipeline: str) -> bool:
        """A failed (or abandoned) run in progress again from its unfinished steps; False when another
        run of the pipeline is in progress."""
        try:
            with self.session.begin_nested():
                self.session.execute(
                    update(Run)
                    .where(Run.id == run_id)
                    .values(status="Running", active=pipeline, error=None, ended_at=None)
                )
        except IntegrityError:
            return False
        self.session.execute(
            update(StepRow)
            .where(StepRow.run_id == run_id, StepRow.status.in_(("Failed", "Running")))
            .values(status="Pending", error=None)
        )
        return True

    def step_started(self, run_id: int, name: str, now: datetime) -> None:
        self.session.execute(
            update(StepRow)
            .where(StepRow.run_id == run_id, StepRow.name == name)
            .values(status="Running", started_at=now, ended_at=None, attempts=StepRow.attempts + 1)
        )

    def step_ended(
        self,
        run_id: int,
        name: str,
        now: datetime,
        *,
        outputs: dict[str, Any] | None,
        log: str,
        error: str | None,
    ) -> None:
        self.session.execute(
            update(StepRow)
            .where(StepRow.run_id == run_id, StepRow.name == name)
            .values(
                status="Failed" if error else "Succeeded", outputs=outputs, log=log, error=error, ended_at=now
            )
        )

    def ended(self, run_id: int, status: str, now: datetime, error: str | None = None) -> None:
        self.session.execute(
            update(Run).where(Run.id == run_id).values(status=status, active=None, error=error, ended_at=now)
        )

    def run(self, run_id: int) -> PipelineRun | None:
        found = self.session.execute(
            select(Run, PipelineRow.name)
            .join(PipelineRow, PipelineRow.id == Run.pipeline_id)
            .where(Run.id == run_id)
        ).first()
        return None if found is None else self._run(*found)

    def runs(self, pipeline: str | None = None, limit: int = 50) -> builtins.list[PipelineRun]:
        query = select(Run, PipelineRow.name).join(PipelineRow, PipelineRow.id == Run.pipeline_id)
        if pipeline is not None:
            query = query.where(PipelineRow.name == pipeline)
        return [self._run(*row) for row in self.session.execute(query.order_by(Run.id.desc()).limit(limit))]

    def _run(self, row: PipelineRunRow, pipeline: str) -> PipelineRun:
        steps = self.session.scalars(
            select(StepRow).where(StepRow.run_id == row.id).order_by(StepRow.position)
        )
        return PipelineRun(
            id=row.id,
            pipeline=pipeline,
            status=row.status,  # type: ignore[arg-type]
            trigger=row.trigger,
            error=row.error,
            started_at=row.started_at,
            ended_at=row.ended_at,
            spec=row.spec,
            steps=tuple(
                StepState(
                    s.name,
                    s.position,
                    s.status,  # type: ignore[arg-type]
                    s.outputs,
                    s.log,
                    s.error,
                    s.attempts,
                    s.started_at,
                    s.ended_at,
                )
                for s in steps
            ),
        )
