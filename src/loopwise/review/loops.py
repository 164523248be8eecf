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
from typing import Any

import orjson

from loopwise.errors import ReviewError
from loopwise.review.conditions import ALWAYS, flow_condition
from loopwise.review.records import Flow
from loopwise.webhooks import redact

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


def content_hash(content: Mapping[str, Any]) -> str:
    """The same for the same input content, however its keys are ordered."""
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def describe_flow(flow: Flow, *, reveal_webhook: bool = False) -> dict[str, Any]:
    """The flow as the API and the CLI show it: the webhook's URL redacted (``https://host/…``)
    unless ``reveal_webhook`` (for admins); its secret never."""
    webhook = flow.webhook if reveal_webhook or not flow.webhook else redact(flow.webhook)
    return {
        "FlowDefinitionName": flow.name,
        "FlowDefinitionStatus": flow.status,
        "team": flow.team,
        "labeling_job_id": flow.job_id,
        "task_title": flow.title,
        "categories": [c.to_dict() for c in flow.categories],
        "short_instructions": flow.short_instructions,
        "full_instructions": flow.full_instructions,
        "answer_key": flow.answer_key,
        "task_count": flow.task_count,
        "task_time_limit_s": flow.task_time_limit_s,
        "task_availability_lifetime_s": flow.lifetime_s,
        "activation_conditions": _shown(flow),
        "webhook": webhook,
        "max_open_loops": flow.max_open_loops,
        "max_loops_per_hour": flow.max_loops_per_hour,
        "max_loops_per_invocation": flow.max_loops_per_invocation,
        "CreationTime": flow.created_at.isoformat(),
    }


def check_input(flow: Flow, content: Any) -> dict[str, Any]:
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
    if initial is not None and str(initial) not in flow.labels:
        raise ReviewError(
            f"InputContent.initialValue: {initial!r} is not a category of flow {flow.name} "
            f"({', '.join(flow.labels)})"
        )
    return dict(content)


def _shown(flow: Flow) -> dict[str, Any] | None:
    condition = flow_condition(flow)
    return None if condition == ALWAYS else condition.to_dict()
