"""Flow definitions and human loops as storage returns them (their life: :mod:`loopwise.review.loops`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from loopwise.labeling.records import Category

LoopStatus = Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"]


STATUSES: tuple[LoopStatus, ...] = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")


@dataclass(frozen=True)
class Flow:
    """A flow definition: its labeling job holds the task template (title, categories, instructions)
    and the team; ``condition`` says which predictions start a loop when an endpoint is attached."""

    id: int
    name: str
    job_id: int
    team: str
    title: str
    categories: tuple[Category, ...]
    short_instructions: str
    full_instructions: str
    answer_key: str
    task_count: int
    task_time_limit_s: int
    lifetime_s: int
    #: the activation conditions as stored (their canonical mapping; None: every prediction);
    #: :func:`loopwise.review.conditions.flow_condition` reads them
    conditions: dict[str, Any] | None
    webhook: str | None
    status: str
    created_at: datetime
    #: signs the webhook's deliveries (``loopwise.webhooks``): shown once, when the flow is made
    webhook_secret: str | None = field(default=None, repr=False, compare=False)
    #: the budget (``review.budget``): at most this many loops open at once (None: no bound) ...
    max_open_loops: int | None = None
    #: ... and this many started in any rolling hour (None: no bound)
    max_loops_per_hour: int | None = None
    #: the most loops one invocation of an attached endpoint starts (its most uncertain texts)
    max_loops_per_invocation: int = 100

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self.categories)


@dataclass(frozen=True)
class HumanLoop:
    id: int
    name: str
    flow: str
    status: LoopStatus
    input: dict[str, Any]
    content_hash: str
    created_at: datetime
    expires_at: datetime
    item_id: int | None = None
    inference_id: str | None = None
    endpoint: str | None = None
    variant: str | None = None
    activation: dict[str, Any] | None = None
    #: the prediction's top probability when an endpoint started the loop (lower: more uncertain)
    confidence: float | None = None
    failure_reason: str | None = None
    output_uri: str | None = None
    ended_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """Augmented AI's DescribeHumanLoop, plus where an endpoint's loop came from."""
        found: dict[str, Any] = {
            "HumanLoopName": self.name,
            "HumanLoopStatus": self.status,
            "FlowDefinitionName": self.flow,
            "CreationTime": self.created_at.isoformat(),
            "ExpirationTime": self.expires_at.isoformat(),
            "InputContent": self.input,
        }
        if self.failure_reason:
            found["FailureReason"] = self.failure_reason
            found["FailureCode"] = self.failure_reason.split(":", 1)[0]
        if self.output_uri:
            found["HumanLoopOutput"] = {"OutputUri": self.output_uri}
        if self.ended_at:
            found["EndTime"] = self.ended_at.isoformat()
        if self.inference_id:
            found["InferenceId"] = self.inference_id
            found["EndpointName"] = self.endpoint
            found["VariantName"] = self.variant
        if self.activation:
            found["HumanLoopActivationResults"] = self.activation
        if self.confidence is not None:
            found["Confidence"] = self.confidence
        return found
