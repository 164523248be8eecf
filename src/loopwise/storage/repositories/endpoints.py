"""Endpoints and their configuration history, configurations kept as the mappings the serving layer gives."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError, StorageError
from loopwise.serving.records import ConfigRecord, EndpointRecord, EndpointStatus, EndpointVersion
from loopwise.storage.tables import EndpointConfigRow, EndpointRow, utcnow


class EndpointRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, name: str, config: Mapping[str, Any], note: str = "created") -> EndpointRecord:
        """Record a new endpoint (``Creating``) with its first configuration; raises
        :class:`StorageError` when the name is taken."""
        if self.session.scalar(select(EndpointRow.id).where(EndpointRow.name == name)) is not None:
            raise StorageError(
                f"an endpoint named {name!r} exists: change its traffic (`loopwise endpoint update-weights "
                f"{name} ...`) or delete it first (`loopwise endpoint delete {name}`)"
            )
        row = EndpointRow(name=name, status=EndpointStatus.CREATING.value, config_version=1)
        self.session.add(row)
        self.session.flush()
        self.session.add(EndpointConfigRow(endpoint_id=row.id, version=1, config=dict(config), note=note))
        self.session.flush()
        return self._domain(row)

    def get(self, name: str, *, for_update: bool = False) -> EndpointRecord:
        """The endpoint; ``for_update`` locks its row until the unit of work ends (PostgreSQL), so that
        concurrent changes to one endpoint happen one after the other."""
        return self._domain(self._row(name, for_update=for_update))

    def list(self) -> builtins.list[EndpointRecord]:
        rows = self.session.scalars(select(EndpointRow).order_by(EndpointRow.name)).all()
        return [self._domain(row) for row in rows]

    def versions(self) -> builtins.list[EndpointVersion]:
        """Every endpoint's id, status and versions, in one small query: what the servers poll."""
        rows = self.session.execute(
            select(
                EndpointRow.id,
                EndpointRow.name,
                EndpointRow.status,
                EndpointRow.config_version,
                EndpointRow.state_version,
            ).order_by(EndpointRow.name)
        )
        return [
            EndpointVersion(key, name, EndpointStatus(status), config, scale)
            for key, name, status, config, scale in rows
        ]

    def add_config(self, name: str, config: Mapping[str, Any], note: str) -> EndpointRecord:
        """Record the next configuration version and put it in force."""
        row = self._row(name, for_update=True)
        latest = self.session.scalar(
            select(func.max(EndpointConfigRow.version)).where(EndpointConfigRow.endpoint_id == row.id)
        )
        version = int(latest or 0) + 1
        self.session.add(
            EndpointConfigRow(endpoint_id=row.id, version=version, config=dict(config), note=note)
        )
        row.config_version = version
        row.updated_at = utcnow()
        self.session.flush()
        return self._domain(row)

    def set_status(
        self, name: str, status: EndpointStatus, failure_reason: str | None = None
    ) -> EndpointRecord:
        row = self._row(name, for_update=True)
        row.status = status.value
        row.failure_reason = failure_reason
        row.updated_at = utcnow()
        self.session.flush()
        return self._domain(row)

    def history(self, name: str) -> builtins.list[ConfigRecord]:
        """Every configuration the endpoint had, oldest first."""
        row = self._row(name)
        configs = self.session.scalars(
            select(EndpointConfigRow)
            .where(EndpointConfigRow.endpoint_id == row.id)
            .order_by(EndpointConfigRow.version)
        ).all()
        return [_config_version(c) for c in configs]

    def delete(self, name: str) -> None:
        row = self._row(name, for_update=True)
        for config in self.session.scalars(
            select(EndpointConfigRow).where(EndpointConfigRow.endpoint_id == row.id)
        ):
            self.session.delete(config)
        self.session.delete(row)
        self.session.flush()

    def _row(self, name: str, *, for_update: bool = False) -> EndpointRow:
        query = select(EndpointRow).where(EndpointRow.name == name)
        if for_update:
            query = query.with_for_update()
        row = self.session.scalar(query)
        if row is None:
            raise NotFoundError(f"endpoint {name!r} not found; see `loopwise endpoint list`")
        return row

    def _domain(self, row: EndpointRow) -> EndpointRecord:
        config = self.session.scalar(
            select(EndpointConfigRow).where(
                EndpointConfigRow.endpoint_id == row.id, EndpointConfigRow.version == row.config_version
            )
        )
        if config is None:
            raise StorageError(f"endpoint {row.name!r} lost its configuration {row.config_version}")
        return EndpointRecord(
            id=row.id,
            name=row.name,
            status=EndpointStatus(row.status),
            current=_config_version(config),
            created_at=row.created_at,
            updated_at=row.updated_at,
            failure_reason=row.failure_reason,
        )


def _config_version(row: EndpointConfigRow) -> ConfigRecord:
    return ConfigRecord(
        version=row.version, config=dict(row.config), note=row.note, created_at=row.created_at
    )
