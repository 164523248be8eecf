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


@dataclass(frozen=True)
class EndpointVersion:
    """What the servers poll of an endpoint to see that it changed: its id (a re-created endpoint has a
    new one), status, configuration version in force, and the version of its live state beside the
    configuration (the autoscaler's instance counts, a bandit's evidence)."""

    id: int
    name: str
    status: EndpointStatus
    config_version: int
    state_version: int


@dataclass(frozen=True)
class VariantLoad:
    """One server's report of an autoscaled variant's traffic: invocations over the policy's period
    and live instances (``reported_at``: the database's clock, set when stored)."""

    endpoint: str
    variant: str
    invocations: int
    period_s: float
    instances: int
    replica: str = ""
    reported_at: datetime | None = None


@dataclass(frozen=True)
class VariantScale:
    """An autoscaled variant's instance count on every server, and when its cooldowns began."""

    endpoint: str
    variant: str
    instances: int
    changed_at: datetime
    scaled_out_at: datetime | None = None


@dataclass(frozen=True)
class ScalingEvent:
    """One decision of the autoscaler (times are the database's clock)."""

    endpoint: str
    variant: str
    at: datetime
    instances_before: int
    instances_after: int
    #: invocations per instance over the policy's period, across the servers
    metric: float
    invocations: int
    #: the servers whose reports were counted
    replicas: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.timestamp(),
            "endpoint": self.endpoint,
            "variant": self.variant,
            "instances_before": self.instances_before,
            "instances_after": self.instances_after,
            "metric": self.metric,
            "invocations": self.invocations,
            "replicas": self.replicas,
        }
