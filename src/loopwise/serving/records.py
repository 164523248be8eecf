"""Endpoints, their configuration history, rollouts and feedback, as storage returns them.

Configurations and rollout plans are kept as the mappings they were stored as; the serving layer reads them
back (:func:`loopwise.serving.endpoints.endpoint_of`, :func:`loopwise.serving.rollout.plan_of`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Feedback:
    inference_id: str
    #: the true label of each text of the inference, in order
    labels: tuple[str, ...] | None = None
    reward: float | None = None
    created_at: datetime | None = None


class RolloutStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class Rollout:
    id: int
    endpoint: str
    variant: str
    #: the plan as stored (:meth:`RolloutPlan.model_dump`); :func:`loopwise.serving.rollout.plan_of` reads it
    plan: dict[str, Any]
    baseline: dict[str, float]
    status: RolloutStatus
    step: int
    created_at: datetime
    step_started_at: datetime
    reason: str | None = None
    finished_at: datetime | None = None


class EndpointStatus(StrEnum):
    """SageMaker's endpoint states, by the same names."""

    CREATING = "Creating"
    IN_SERVICE = "InService"
    UPDATING = "Updating"
    FAILED = "Failed"


@dataclass(frozen=True)
class ConfigRecord:
    """One recorded configuration of an endpoint: the canonical mapping of its ``EndpointConfig``."""

    version: int
    config: dict[str, Any]
    note: str
    created_at: datetime


@dataclass(frozen=True)
class EndpointRecord:
    id: int
    name: str
    status: EndpointStatus
    #: the configuration in force
    current: ConfigRecord
    created_at: datetime
    updated_at: datetime
    failure_reason: str | None = None
