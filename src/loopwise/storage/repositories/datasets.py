"""Data set versions and their splits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopwise.data.records import DatasetVersion, SplitInfo
from loopwise.errors import NotFoundError
from loopwise.storage.repositories._versioning import _insert_versioned
from loopwise.storage.tables import (
    DatasetSplitRow,
    DatasetVersionRow,
)

_SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


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
