"""Endpoints as the domain sees them: a name, a status, and the configuration version in force."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

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
