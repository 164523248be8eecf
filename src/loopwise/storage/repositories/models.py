"""Model versions and aliases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError
from loopwise.registry.records import ModelRef, ModelVersion
from loopwise.storage.repositories._versioning import _insert_versioned
from loopwise.storage.tables import (
    ModelAliasRow,
    ModelVersionRow,
    utcnow,
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

    def mark_checkpoint_removed(self, model_version_id: int) -> None:
        row = self.session.get(ModelVersionRow, model_version_id)
        if row is None:
            raise NotFoundError(f"model version id {model_version_id} not found")
        row.checkpoint_removed_at = utcnow()
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
            checkpoint_removed_at=row.checkpoint_removed_at,
        )
