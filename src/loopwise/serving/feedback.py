"""Feedback for inferences: the true labels of an inference's texts (ground truth) or a reward in [0, 1]."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from loopwise.errors import EndpointConfigError
from loopwise.serving.records import Feedback


def parse_feedback(items: Iterable[Any], *, source: str = "feedback") -> list[Feedback]:
    """Check feedback items (``{"inference_id": ..., "label": ... | "labels": [...] | "reward": r}``);
    raises :class:`EndpointConfigError` naming every bad item."""
    parsed, problems = [], []
    for number, item in enumerate(items, start=1):
        where = f"item {number}"
        if not isinstance(item, Mapping):
            problems.append((where, "expected an object with inference_id and label, labels or reward"))
            continue
        inference_id = item.get("inference_id")
        if not isinstance(inference_id, str) or not 0 < len(inference_id) <= 64:
            problems.append(
                (f"{where}.inference_id", "give the inference id the endpoint answered (1-64 characters)")
            )
            continue
        labels = item.get("labels", [item["label"]] if "label" in item else None)
        reward = item.get("reward")
        if labels is None and reward is None:
            problems.append((where, "give label (or labels, one per text) or reward"))
            continue
        if labels is not None and not (
            isinstance(labels, list) and labels and all(isinstance(x, str | int) for x in labels)
        ):
            problems.append((f"{where}.labels", "labels is a non-empty list of labels, one per text"))
            continue
        if reward is not None and not (isinstance(reward, int | float) and 0 <= reward <= 1):
            problems.append((f"{where}.reward", "reward is a number from 0 to 1"))
            continue
        parsed.append(
            Feedback(
                inference_id,
                None if labels is None else tuple(str(x) for x in labels),
                None if reward is None else float(reward),
            )
        )
    if problems:
        listed = "; ".join(f"{field}: {message}" for field, message in problems[:20])
        raise EndpointConfigError(f"{source} has {len(problems)} bad item(s): {listed}", problems)
    return parsed
