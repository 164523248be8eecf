"""Endpoints as the domain sees them: a name, a status, and the configuration version in force, its
configuration checked (:class:`~loopwise.serving.config.EndpointConfig`).

Storage keeps configurations as mappings (:mod:`loopwise.serving.records`); the functions at the bottom are
the serving layer's way to the endpoint repository: they pass canonical mappings in and read checked
configurations back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopwise.serving.config import EndpointConfig, parse_endpoint_config
from loopwise.serving.records import ConfigRecord, EndpointRecord, EndpointStatus

if TYPE_CHECKING:
    from loopwise.storage.session import UnitOfWork


@dataclass(frozen=True)
class ConfigVersion:
    """One recorded configuration of an endpoint."""

    version: int
    config: EndpointConfig
    note: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "note": self.note,
            "created_at": self.created_at,
            "config": self.config.to_dict(),
        }


@dataclass(frozen=True)
class Endpoint:
    id: int
    name: str
    status: EndpointStatus
    #: the configuration in force
    current: ConfigVersion
    created_at: datetime
    updated_at: datetime
    failure_reason: str | None = None

    @property
    def config(self) -> EndpointConfig:
        return self.current.config

    def to_dict(self) -> dict[str, Any]:
        """What the CLI's ``--json`` and the REST API show of the endpoint."""
        return {
            "name": self.name,
            "status": self.status.value,
            "failure_reason": self.failure_reason,
            "config_version": self.current.version,
            "traffic_shares": self.config.traffic_shares(),
            "config": self.config.to_dict(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def config_version_of(record: ConfigRecord) -> ConfigVersion:
    return ConfigVersion(
        version=record.version,
        config=parse_endpoint_config(record.config, source=f"endpoint configuration {record.version}"),
        note=record.note,
        created_at=record.created_at,
    )


def endpoint_of(record: EndpointRecord) -> Endpoint:
    """The endpoint of a stored record, its configuration read back and checked."""
    return Endpoint(
        id=record.id,
        name=record.name,
        status=record.status,
        current=config_version_of(record.current),
        created_at=record.created_at,
        updated_at=record.updated_at,
        failure_reason=record.failure_reason,
    )


def load(uow: UnitOfWork, name: str, *, for_update: bool = False) -> Endpoint:
    """The endpoint (``for_update``: its row locked until the unit of work ends, on PostgreSQL)."""
    return endpoint_of(uow.endpoints.get(name, for_update=for_update))


def load_all(uow: UnitOfWork) -> list[Endpoint]:
    return [endpoint_of(record) for record in uow.endpoints.list()]


def load_history(uow: UnitOfWork, name: str) -> list[ConfigVersion]:
    """Every configuration the endpoint had, oldest first."""
    return [config_version_of(record) for record in uow.endpoints.history(name)]


def record(uow: UnitOfWork, name: str, config: EndpointConfig, note: str = "created") -> Endpoint:
    """Record a new endpoint (``Creating``) with its first configuration."""
    return endpoint_of(uow.endpoints.add(name, config.to_dict(), note))


def record_config(uow: UnitOfWork, name: str, config: EndpointConfig, note: str) -> Endpoint:
    """Record the endpoint's next configuration and put it in force."""
    return endpoint_of(uow.endpoints.add_config(name, config.to_dict(), note))


def record_status(
    uow: UnitOfWork, name: str, status: EndpointStatus, failure_reason: str | None = None
) -> Endpoint:
    return endpoint_of(uow.endpoints.set_status(name, status, failure_reason))
