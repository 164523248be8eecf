"""Stored evaluations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopwise.evaluation.records import EvaluationRecord
from loopwise.storage.tables import (
    EvaluationRow,
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
