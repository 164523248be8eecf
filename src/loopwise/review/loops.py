"""Flow definitions and human loops as the rest of loopwise sees them, and the check of a loop's input
against its flow's task template.

A loop's life: ``InProgress`` from its start until its item has the flow's ``task_count`` answers
(``Completed``, with output.json), until its availability lifetime ends (``Failed``, reason ``Expired``),
or until someone stops it (``Stopped``; a worker's hold on it is withdrawn, so a later answer is refused).
Only a loop that is no longer in progress can be deleted. A flow's budget (``review.budget``) may stop a
loop for a more uncertain one (``Stopped``, reason ``Replaced``), or record a prediction's loop as
``Stopped`` from the start (reason ``BudgetFull`` or ``HourlyLimit``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from loopwise.errors import ReviewError
from loopwise.labeling.jobs import Category
from loopwise.review.conditions import ALWAYS, Condition

LoopStatus = Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"]
STATUSES: tuple[LoopStatus, ...] = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
#: Augmented AI's rule for loop and flow names: lowercase letters, digits and hyphens, up to 63
NAME = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
#: the most text one loop shows a worker
MAX_TEXT = 100_000


def check_name(name: str, what: str = "human loop") -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ReviewError(
            f"{what} name {name!r}: 1 to 63 lowercase letters, digits and single hyphens, starting and "
            "ending with a letter or digit"
        )
    return name


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
    condition: Condition
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

    def to_dict(self, *, reveal_webhook: bool = False) -> dict[str, Any]:
        """The flow as the API and the CLI show it: the webhook's URL redacted (``https://host/…``)
        unless ``reveal_webhook`` (for admins); its secret never."""
        from loopwise.webhooks import redact

        webhook = self.webhook if reveal_webhook or not self.webhook else redact(self.webhook)
        return {
            "FlowDefinitionName": self.name,
            "FlowDefinitionStatus": self.status,
            "team": self.team,
            "labeling_job_id": self.job_id,
            "task_title": self.title,
            "categories": [c.to_dict() for c in self.categories],
            "short_instructions": self.short_instructions,
            "full_instructions": self.full_instructions,
            "answer_key": self.answer_key,
            "task_count": self.task_count,
            "task_time_limit_s": self.task_time_limit_s,
            "task_availability_lifetime_s": self.lifetime_s,
            "activation_conditions": None if self.condition == ALWAYS else self.condition.to_dict(),
            "webhook": webhook,
            "max_open_loops": self.max_open_loops,
            "max_loops_per_hour": self.max_loops_per_hour,
            "max_loops_per_invocation": self.max_loops_per_invocation,
            "CreationTime": self.created_at.isoformat(),
        }

    def check_input(self, content: Any) -> dict[str, Any]:
        """``content`` when it fits the classification template: ``taskObject`` (the text, required) and
        ``initialValue`` (one of the categories, optional); other fields are kept as they are.
        :class:`ReviewError` names the field otherwise."""
        if isinstance(content, str | bytes):
            try:
                content = orjson.loads(content)
            except orjson.JSONDecodeError:
                raise ReviewError("InputContent: not a JSON object (a string of JSON is read too)") from None
        if not isinstance(content, Mapping):
            raise ReviewError('InputContent: an object such as {"taskObject": "the review text"}')
        text = content.get("taskObject")
        if not isinstance(text, str) or not text.strip():
            raise ReviewError("InputContent.taskObject: the text to review, a non-empty string")
        if len(text) > MAX_TEXT:
            raise ReviewError(f"InputContent.taskObject: at most {MAX_TEXT:,} characters, got {len(text):,}")
        initial = content.get("initialValue")
        if initial is not None and str(initial) not in self.labels:
            raise ReviewError(
                f"InputContent.initialValue: {initial!r} is not a category of flow {self.name} "
                f"({', '.join(self.labels)})"
            )
        return dict(content)


def content_hash(content: Mapping[str, Any]) -> str:
    """The same for the same input content, however its keys are ordered."""
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


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
