"""Activation conditions: each leaf, And / Or trees, the results recorded, and refusals naming the path."""

from __future__ import annotations

import math
import random

import pytest

from loopwise.errors import ReviewError
from loopwise.review.conditions import parse_condition

LABELS = ["-1", "0", "1"]


def fired(raw: object, p: list[float], seed: int = 0) -> bool:
    return parse_condition(raw, LABELS).evaluate(p, LABELS, random.Random(seed))[0]


def test_each_leaf_fires_on_its_side_of_the_threshold_only() -> None:
    assert fired({"confidence_below": 0.9}, [0.05, 0.05, 0.9]) is False  # the course: 0.90 is confident
    assert fired({"confidence_below": 0.9}, [0.1, 0.11, 0.79]) is True
    assert fired({"margin_below": 0.2}, [0.1, 0.4, 0.5]) is True
    assert fired({"margin_below": 0.2}, [0.1, 0.2, 0.7]) is False
    assert fired({"entropy_above": 0.9}, [1 / 3, 1 / 3, 1 / 3]) is True
    assert fired({"entropy_above": 0.5}, [0.0, 0.0, 1.0]) is False
    # per class: the predicted class's own threshold; a class without one never fires
    assert fired({"class_below": {"-1": 0.95}}, [0.9, 0.05, 0.05]) is True
    assert fired({"class_below": {"-1": 0.95}}, [0.05, 0.05, 0.9]) is False
    assert fired({"predicted_in": ["-1", "0"]}, [0.2, 0.7, 0.1]) is True
    assert fired({"predicted_in": ["-1", "0"]}, [0.2, 0.1, 0.7]) is False


def test_and_or_trees_and_every_leaf_recorded() -> None:
    tree = {"any": [{"all": [{"predicted_in": ["1"]}, {"confidence_below": 0.95}]}, {"predicted_in": ["-1"]}]}
    condition = parse_condition(tree, LABELS)
    yes, results = condition.evaluate([0.02, 0.06, 0.92], LABELS, random.Random(0))
    assert yes and [r["condition"] for r in results] == ["predicted_in", "confidence_below", "predicted_in"]
    assert results[1] == {"condition": "confidence_below", "threshold": 0.95, "value": 0.92, "fired": True}
    no, results = condition.evaluate([0.01, 0.02, 0.97], LABELS, random.Random(0))
    assert not no and [r["fired"] for r in results] == [True, False, False]
    assert parse_condition(condition.to_dict(), LABELS) == condition  # stored and read back the same
    # a list reads as all of it; none means every prediction
    assert fired([{"predicted_in": ["1"]}, {"confidence_below": 0.5}], [0.0, 0.6, 0.4]) is False
    assert fired(None, [0.0, 0.0, 1.0]) is True


def test_audit_sends_about_its_share_whatever_the_prediction() -> None:
    condition = parse_condition({"audit": 5}, LABELS)
    rng = random.Random(7)
    sent = sum(condition.evaluate([0.0, 0.0, 1.0], LABELS, rng)[0] for _ in range(20_000))
    # binomial(20000, 0.05): mean 1000, sd 31; six sd either side
    assert abs(sent - 1000) < 6 * math.sqrt(20_000 * 0.05 * 0.95)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"confidence_below": 1.5}, r"conditions\.confidence_below: a number from 0 to 1, got 1\.5"),
        ({"audit": 0}, r"conditions\.audit: a percentage above 0"),
        ({"class_below": {"2": 0.9}}, r"conditions\.class_below\.2: not a category"),
        ({"predicted_in": ["maybe"]}, r"conditions\.predicted_in: maybe not categories"),
        ({"any": [{"confidence_below": 0.9}, {"sometimes": 1}]}, r"conditions\.any\[1\]\.sometimes: unknown"),
        ({"all": []}, r"conditions\.all: a non-empty list"),
        ({"confidence_below": 0.9, "margin_below": 0.1}, r"conditions: one of"),
        ({"entropy_above": True}, r"entropy_above: a number from 0 to 1, got True"),
    ],
)
def test_bad_conditions_are_refused_naming_the_path(raw: object, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        parse_condition(raw, LABELS)
