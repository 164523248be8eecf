"""The certificate behind machine labels: the lowest confidence threshold whose accuracy people's answers
vouch for, at a target accuracy and a confidence level.

The answers are out-of-fold: each validating item was scored by a model that never trained on it (see
:mod:`loopwise.labeling.learners`). Thresholds are tried from the highest confidence down, at a
label-free sequence of counts (``start`` items, then about 10% more each step); each is kept only while
the one-sided Clopper-Pearson lower bound of the accuracy above it reaches the target, and the first
failure ends the sequence (fixed-sequence testing: the family-wise error stays at ``1 - level`` however
many thresholds are tried). Clopper-Pearson is exact for a binomial count, so it is as tight as a valid
bound can be at the small counts of a job of a few thousand items; ``docs/labeling.md`` says what the
guarantee assumes, and tests/labeling/test_certificate.py simulates it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METHOD = "cross-fit, fixed-sequence Clopper-Pearson"
#: each threshold tried holds about this much more of the validating answers than the one before
GROWTH = 1.1


def lower_bound(correct: int, total: int, level: float) -> float:
    """The one-sided Clopper-Pearson lower bound of a proportion at confidence ``level``."""
    from scipy.stats import beta

    if total == 0 or correct == 0:
        return 0.0
    return float(beta.ppf(1 - level, correct, total - correct + 1))


def fewest_passing(target: float, level: float) -> int:
    """The fewest items, all right, whose accuracy's lower bound reaches ``target``."""
    return math.ceil(math.log(1 - level) / math.log(target))


def first_count(validating: int, target: float, level: float) -> int:
    """How many answers the first threshold tried holds: half of them, between the fewest that could pass
    at all and four times that (236 for 0.95 at 95%). It depends on the count only, never on the answers,
    so the sequence stays valid; starting where a single wrong answer fails it would be fragile."""
    fewest = fewest_passing(target, level)
    return max(fewest, min(4 * fewest, validating // 2))


def counts_tried(validating: int, start: int) -> list[int]:
    """The counts of answers above each threshold tried, from ``start`` growing by :data:`GROWTH`, the
    last one every answer."""
    counts, count = [], start
    while count < validating:
        counts.append(count)
        count = max(count + 1, math.ceil(count * GROWTH))
    return [*counts, validating] if validating >= start else []


@dataclass(frozen=True)
class Certificate:
    """What the answers vouch for: ``threshold`` (None: no machine labels) with ``above`` answers at or
    over it, ``errors_above`` of them wrong, and their accuracy's ``lower_bound``."""

    target: float
    confidence: float
    validated_on: int
    threshold: float | None
    above: int
    errors_above: int
    lower_bound: float | None
    why_not_more: str
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def certify(
    scores: np.ndarray, correct: np.ndarray, target: float, level: float, *, start: int | None = None
) -> Certificate:
    """The lowest threshold on ``scores`` (out-of-fold confidences) whose accuracy above it, judged by
    ``correct``, has a lower bound of at least ``target`` at ``level`` in a fixed sequence from the top;
    ``start`` overrides :func:`first_count` (never below the fewest answers that could pass)."""
    n = len(scores)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    ordered = np.asarray(scores, dtype=float)[order]
    right = np.cumsum(np.asarray(correct, dtype=bool)[order])
    fewest = fewest_passing(target, level)
    start = first_count(n, target, level) if start is None else max(fewest, start)
    kept: tuple[float, int, int, float] | None = None
    failed: tuple[float, int, int, float] | None = None
    done = 0
    for count in counts_tried(n, start):
        while count < n and ordered[count] == ordered[count - 1]:
            count += 1  # a threshold keeps every answer of equal confidence or none
        if count <= done:
            continue
        done = count
        step = (float(ordered[count - 1]), count, count - int(right[count - 1]))
        bound = lower_bound(count - step[2], count, level)
        if bound < target:
            failed = (*step, bound)
            break
        kept = (*step, bound)
    why = _why_not_more(n, start, kept, failed, target)
    if kept is None:
        return Certificate(target, level, n, None, 0, 0, None, why)
    threshold, above, errors, bound = kept
    return Certificate(target, level, n, threshold, above, errors, round(bound, 6), why)


def _why_not_more(
    n: int,
    start: int,
    kept: tuple[float, int, int, float] | None,
    failed: tuple[float, int, int, float] | None,
    target: float,
) -> str:
    """Why the machine may label no more than the certificate allows, in one sentence for the admin."""
    if n < start or (kept is None and failed is None):
        return (
            f"{n} answers from people validate thresholds and the first threshold needs {start}: "
            "people label more at random first"
        )
    if failed is None:
        return "every validating answer is above the threshold: the lowest confidence seen passes"
    threshold, count, errors, bound = failed
    which = "the next threshold down" if kept else "the first threshold tried"
    return (
        f"{which} ({threshold:.3f}: {count} answers, {errors} wrong) has a lower bound of "
        f"{math.floor(bound * 1000) / 1000:.3f}, under the target {target}"  # rounded down: never "= target"
    )
