"""Endpoints as the domain sees them: a name, a status, and the configuration version in force."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from loopwise.serving.config import EndpointConfig


class EndpointStatus(StrEnum):
    """SageMaker's endpoint states, by the same names."""

    CREATING = "Creating"
    IN_SERVICE = "InService"
    UPDATING = "Updating"
    FAILED = "Failed"


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
