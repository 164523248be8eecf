"""Repositories: queries over the tables that take and return domain objects, never rows."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loopwise.data.versions import DatasetVersion, SplitInfo
from loopwise.errors import NotFoundError, StorageError
from loopwise.evaluation.records import EvaluationRecord
from loopwise.registry.versions import ModelRef, ModelVersion
from loopwise.storage.tables import (
    DatasetSplitRow,
    DatasetVersionRow,
    EvaluationRow,
    ModelAliasRow,
    ModelVersionRow,
    RunMetricRow,
    TrainingRunRow,
    TuningJobRow,
    utcnow,
)
from loopwise.training.runs import RunMetric, RunStatus, TrainingRun
from loopwise.tuning.jobs import JobStatus, TuningJob

_VERSION_RETRIES = 20
_SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


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


class DatasetRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find_by_hash(self, name: str, content_hash: str) -> DatasetVersion | None:
        row = self.session.scalar(
            select(DatasetVersionRow).where(
                DatasetVersionRow.name == name, DatasetVersionRow.content_hash == content_hash
            )
        )
        return self._domain(row) if row else None

    def add(
        self,
        name: str,
        content_hash: str,
        labels: list[str],
        source: dict[str, Any],
        splits: Sequence[SplitInfo],
    ) -> DatasetVersion:
        def build(version: int) -> DatasetVersionRow:
            return DatasetVersionRow(
                name=name, version=version, content_hash=content_hash, labels=labels, source=source
            )

        row = _insert_versioned(self.session, build, DatasetVersionRow.version, DatasetVersionRow.name, name)
        for split in splits:
            self.session.add(
                DatasetSplitRow(
                    dataset_version_id=row.id,
                    split=split.name,
                    uri=split.uri,
                    rows=split.rows,
                    label_counts=split.label_counts,
                    sha256=split.sha256,
                )
            )
        self.session.flush()
        return self._domain(row)

    def get(self, name: str, version: int | None = None) -> DatasetVersion:
        query = select(DatasetVersionRow).where(DatasetVersionRow.name == name)
        if version is None:
            query = query.order_by(DatasetVersionRow.version.desc()).limit(1)
        else:
            query = query.where(DatasetVersionRow.version == version)
        row = self.session.scalar(query)
        if row is None:
            known = self.session.scalars(select(DatasetVersionRow.name).distinct()).all()
            which = name if version is None else f"{name}:{version}"
            hint = f"known data sets: {', '.join(sorted(known))}" if known else "no data set exists yet"
            raise NotFoundError(
                f"data set {which!r} not found ({hint}); create it with `loopwise data prepare reviews` "
                "or `loopwise data import`"
            )
        return self._domain(row)

    def get_by_id(self, dataset_version_id: int) -> DatasetVersion:
        row = self.session.get(DatasetVersionRow, dataset_version_id)
        if row is None:
            raise NotFoundError(f"data set version id {dataset_version_id} not found")
        return self._domain(row)

    def list(self) -> list[DatasetVersion]:
        rows = self.session.scalars(
            select(DatasetVersionRow).order_by(DatasetVersionRow.name, DatasetVersionRow.version)
        ).all()
        return [self._domain(row) for row in rows]

    def _domain(self, row: DatasetVersionRow) -> DatasetVersion:
        split_rows = self.session.scalars(
            select(DatasetSplitRow).where(DatasetSplitRow.dataset_version_id == row.id)
        ).all()
        ordered = sorted(split_rows, key=lambda s: (_SPLIT_ORDER.get(s.split, len(_SPLIT_ORDER)), s.split))
        splits = {s.split: SplitInfo(s.split, s.uri, s.rows, dict(s.label_counts), s.sha256) for s in ordered}
        return DatasetVersion(
            id=row.id,
            name=row.name,
            version=row.version,
            content_hash=row.content_hash,
            labels=list(row.labels),
            source=dict(row.source),
            created_at=row.created_at,
            splits=splits,
        )


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


class ModelRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        name: str,
        *,
        backend: str,
        uri: str,
        labels: list[str],
        code_version: str,
        run_id: str | None = None,
        dataset_version_id: int | None = None,
        parent_id: int | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        description: str = "",
    ) -> ModelVersion:
        def build(version: int) -> ModelVersionRow:
            return ModelVersionRow(
                name=name,
                version=version,
                backend=backend,
                uri=uri,
                labels=labels,
                run_id=run_id,
                dataset_version_id=dataset_version_id,
                parent_id=parent_id,
                params=params or {},
                metrics=metrics or {},
                code_version=code_version,
                description=description,
            )

        row = _insert_versioned(self.session, build, ModelVersionRow.version, ModelVersionRow.name, name)
        return self._domain(row)

    def resolve(self, ref: ModelRef) -> ModelVersion:
        if ref.alias is not None:
            alias = self.session.get(ModelAliasRow, (ref.name, ref.alias))
            if alias is None:
                raise NotFoundError(
                    f"model {ref.name!r} has no alias {ref.alias!r}; "
                    f"set one with `loopwise models alias {ref.name}:VERSION {ref.alias}`"
                )
            row = self.session.get(ModelVersionRow, alias.model_version_id)
        else:
            query = select(ModelVersionRow).where(ModelVersionRow.name == ref.name)
            if ref.version is None:
                query = query.order_by(ModelVersionRow.version.desc()).limit(1)
            else:
                query = query.where(ModelVersionRow.version == ref.version)
            row = self.session.scalar(query)
        if row is None:
            which = ref.name if ref.version is None else f"{ref.name}:{ref.version}"
            raise NotFoundError(f"model {which!r} not found; see `loopwise models list`")
        return self._domain(row)

    def get_by_id(self, model_version_id: int) -> ModelVersion:
        row = self.session.get(ModelVersionRow, model_version_id)
        if row is None:
            raise NotFoundError(f"model version id {model_version_id} not found")
        return self._domain(row)

    def list(self, name: str | None = None) -> list[ModelVersion]:
        query = select(ModelVersionRow).order_by(ModelVersionRow.name, ModelVersionRow.version)
        if name is not None:
            query = query.where(ModelVersionRow.name == name)
        return [self._domain(row) for row in self.session.scalars(query).all()]

    def set_alias(self, version: ModelVersion, alias: str) -> None:
        row = self.session.get(ModelAliasRow, (version.name, alias))
        if row is None:
            self.session.add(ModelAliasRow(name=version.name, alias=alias, model_version_id=version.id))
        else:
            row.model_version_id = version.id
        self.session.flush()

    def remove_alias(self, name: str, alias: str) -> None:
        result = self.session.execute(
            delete(ModelAliasRow).where(ModelAliasRow.name == name, ModelAliasRow.alias == alias)
        )
        if not getattr(result, "rowcount", 0):
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")

    def update_metrics(self, model_version_id: int, metrics: dict[str, Any]) -> None:
        row = self.session.get(ModelVersionRow, model_version_id)
        if row is None:
            raise NotFoundError(f"model version id {model_version_id} not found")
        row.metrics = {**(row.metrics or {}), **metrics}
        self.session.flush()

    def _domain(self, row: ModelVersionRow) -> ModelVersion:
        aliases = self.session.scalars(
            select(ModelAliasRow.alias)
            .where(ModelAliasRow.model_version_id == row.id)
            .order_by(ModelAliasRow.alias)
        ).all()
        return ModelVersion(
            id=row.id,
            name=row.name,
            version=row.version,
            backend=row.backend,
            uri=row.uri,
            labels=list(row.labels),
            code_version=row.code_version,
            created_at=row.created_at,
            run_id=row.run_id,
            dataset_version_id=row.dataset_version_id,
            parent_id=row.parent_id,
            params=dict(row.params or {}),
            metrics=dict(row.metrics or {}),
            description=row.description,
            aliases=tuple(aliases),
        )


class EvaluationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        *,
        model_ref: str,
        model_version_id: int | None,
        dataset_version_id: int,
        split: str,
        metrics: dict[str, Any],
        report_uri: str,
    ) -> EvaluationRecord:
        row = EvaluationRow(
            model_ref=model_ref,
            model_version_id=model_version_id,
            dataset_version_id=dataset_version_id,
            split=split,
            metrics=metrics,
            report_uri=report_uri,
        )
        self.session.add(row)
        self.session.flush()
        return self._domain(row)

    def for_model(self, model_version_id: int) -> list[EvaluationRecord]:
        rows = self.session.scalars(
            select(EvaluationRow)
            .where(EvaluationRow.model_version_id == model_version_id)
            .order_by(EvaluationRow.id)
        ).all()
        return [self._domain(row) for row in rows]

    @staticmethod
    def _domain(row: EvaluationRow) -> EvaluationRecord:
        return EvaluationRecord(
            id=row.id,
            model_ref=row.model_ref,
            model_version_id=row.model_version_id,
            dataset_version_id=row.dataset_version_id,
            split=row.split,
            metrics=dict(row.metrics),
            report_uri=row.report_uri,
            created_at=row.created_at,
        )


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
        )
