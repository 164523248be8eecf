"""Activation conditions: when a prediction goes to people.

A condition is a tree. Its leaves look at one prediction (the class probabilities of one text):

=========================  =====================================================================
``confidence_below: t``    the top class's probability is below ``t`` (the course: 0.90)
``margin_below: m``        the top two probabilities are less than ``m`` apart
``entropy_above: h``       the distribution's entropy, in bits divided by log2(classes), is above ``h``
``class_below: {c: t}``    the predicted class is ``c`` and its probability is below ``t`` (per class)
``predicted_in: [c, ...]`` the predicted class is one of these
``audit: p``               a random ``p`` percent of predictions, whatever they say
=========================  =====================================================================

and ``all: [...]`` / ``any: [...]`` combine them (Augmented AI's And / Or). A flow with no condition sends
every prediction. :func:`parse_condition` checks a tree once, naming the path of every problem;
:meth:`Condition.evaluate` then costs microseconds, and reports each leaf's value and whether it fired
(Augmented AI's activation condition results), so a loop records why it started.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopwise.errors import ReviewError
from loopwise.review.records import Flow

LEAVES = ("confidence_below", "margin_below", "entropy_above", "class_below", "predicted_in", "audit")
COMBINERS = ("all", "any")


@dataclass(frozen=True)
class Condition:
    """One node: a leaf (``kind`` in :data:`LEAVES` with its ``value``) or ``all`` / ``any`` of
    ``children``."""

    kind: str
    value: Any = None
    children: tuple[Condition, ...] = ()

    def evaluate(
        self, probabilities: Sequence[float], labels: Sequence[str], rng: random.Random
    ) -> tuple[bool, list[dict[str, Any]]]:
        """Whether the prediction goes to people, and every leaf's result (``condition``, ``threshold``,
        ``value``, ``fired``). All leaves are evaluated, so the record is whole."""
        results: list[dict[str, Any]] = []
        top = max(range(len(probabilities)), key=probabilities.__getitem__)
        fired = self._evaluate(probabilities, labels, top, rng, results)
        return fired, results

    def _evaluate(
        self,
        p: Sequence[float],
        labels: Sequence[str],
        top: int,
        rng: random.Random,
        results: list[dict[str, Any]],
    ) -> bool:
        if self.kind in COMBINERS:
            outcomes = [child._evaluate(p, labels, top, rng, results) for child in self.children]
            return all(outcomes) if self.kind == "all" else any(outcomes)
        value: Any
        if self.kind == "confidence_below":
            value = float(p[top])
            fired = value < self.value
        elif self.kind == "margin_below":
            ranked = sorted(p, reverse=True)
            value = float(ranked[0] - ranked[1]) if len(ranked) > 1 else 1.0
            fired = value < self.value
        elif self.kind == "entropy_above":
            value = _normalized_entropy(p)
            fired = value > self.value
        elif self.kind == "class_below":
            threshold = self.value.get(labels[top])
            value = {"class": labels[top], "confidence": float(p[top])}
            fired = threshold is not None and p[top] < threshold
        elif self.kind == "predicted_in":
            value = labels[top]
            fired = value in self.value
        else:  # audit
            value = rng.random() * 100
            fired = value < self.value
        results.append({"condition": self.kind, "threshold": self.value, "value": value, "fired": fired})
        return fired

    def to_dict(self) -> dict[str, Any]:
        if self.kind in COMBINERS:
            return {self.kind: [child.to_dict() for child in self.children]}
        return {self.kind: list(self.value) if isinstance(self.value, tuple) else self.value}


#: a flow with no condition: every prediction goes to people
ALWAYS = Condition("all")


def _normalized_entropy(p: Sequence[float]) -> float:
    if len(p) < 2:
        return 0.0
    entropy = -sum(x * math.log2(x) for x in p if x > 0)
    return float(entropy / math.log2(len(p)))


def parse_condition(raw: Any, labels: Sequence[str], *, where: str = "conditions") -> Condition:
    """The condition tree of ``raw`` (a mapping with one key, or a list read as ``all``), checked against
    the flow's ``labels``; :class:`ReviewError` names the path of every problem."""
    problems: list[str] = []
    parsed = _parse(raw, [str(x) for x in labels], where, problems)
    if problems:
        raise ReviewError(f"the activation conditions are not valid: {'; '.join(problems)}")
    return parsed


def _parse(raw: Any, labels: list[str], where: str, problems: list[str]) -> Condition:
    if raw is None:
        return ALWAYS
    if isinstance(raw, list):
        raw = {"all": raw}
    if not isinstance(raw, Mapping) or len(raw) != 1:
        problems.append(f"{where}: one of {', '.join(LEAVES + COMBINERS)} (a mapping with one key)")
        return ALWAYS
    ((kind, value),) = raw.items()
    here = f"{where}.{kind}"
    if kind in COMBINERS:
        if not isinstance(value, list) or not value:
            problems.append(f"{here}: a non-empty list of conditions")
            return ALWAYS
        children = tuple(_parse(child, labels, f"{here}[{i}]", problems) for i, child in enumerate(value))
        return Condition(kind, children=children)
    if kind in ("confidence_below", "margin_below", "entropy_above"):
        if not _number(value) or not 0 <= value <= 1:
            problems.append(f"{here}: a number from 0 to 1, got {value!r}")
        return Condition(kind, float(value) if _number(value) else 0.0)
    if kind == "audit":
        if not _number(value) or not 0 < value <= 100:
            problems.append(f"{here}: a percentage above 0 and at most 100, got {value!r}")
        return Condition(kind, float(value) if _number(value) else 0.0)
    if kind == "class_below":
        if not isinstance(value, Mapping) or not value:
            problems.append(f"{here}: a mapping of class to threshold, such as {{'-1': 0.95}}")
            return ALWAYS
        thresholds = {}
        for label, threshold in value.items():
            if str(label) not in labels:
                problems.append(f"{here}.{label}: not a category of the flow ({', '.join(labels)})")
            elif not _number(threshold) or not 0 <= threshold <= 1:
                problems.append(f"{here}.{label}: a number from 0 to 1, got {threshold!r}")
            else:
                thresholds[str(label)] = float(threshold)
        return Condition(kind, thresholds)
    if kind == "predicted_in":
        if not isinstance(value, list | tuple) or not value:
            problems.append(f"{here}: a non-empty list of classes")
            return ALWAYS
        unknown = [str(x) for x in value if str(x) not in labels]
        if unknown:
            problems.append(f"{here}: {', '.join(unknown)} not categories of the flow ({', '.join(labels)})")
        return Condition(kind, tuple(str(x) for x in value))
    problems.append(f"{here}: unknown condition; use one of {', '.join(LEAVES + COMBINERS)}")
    return ALWAYS


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def flow_condition(flow: Flow) -> Condition:
    """The flow's activation conditions, read back from their stored mapping."""
    return parse_condition(flow.conditions, flow.labels)
