"""Training runs as the domain sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    #: stopped early by its reporter (a tuner pruned the trial) and kept no model
    STOPPED = "stopped"


@dataclass(frozen=True)
class RunMetric:
    step: int
    epoch: float
    name: str
    value: float


@dataclass(frozen=True)
class TrainingRun:
    id: str
    status: RunStatus
    backend: str
    base_model: str
    dataset_version_id: int | None
    params: dict[str, Any]
    code_version: str
    started_at: datetime
    metrics: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    artifact_uri: str | None = None
    finished_at: datetime | None = None
