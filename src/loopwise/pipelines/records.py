"""Pipeline runs and their steps as the rest of loopwise sees them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

RunStatus = Literal["Running", "Succeeded", "Failed"]
StepStatus = Literal["Pending", "Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class StepState:
    name: str
    position: int
    status: StepStatus
    outputs: dict[str, Any] | None
    log: str
    error: str | None
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class PipelineRun:
    id: int
    pipeline: str
    status: RunStatus
    trigger: str
    error: str | None
    started_at: datetime
    ended_at: datetime | None
    spec: str
    steps: tuple[StepState, ...]

    def step(self, name: str) -> StepState:
        return next(s for s in self.steps if s.name == name)

    def outputs(self) -> dict[str, dict[str, Any]]:
        """The outputs of the steps that succeeded, by step."""
        return {s.name: dict(s.outputs or {}) for s in self.steps if s.status == "Succeeded"}

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("spec")
        return found
