"""The verdict of an A/B test from its comparisons and its sample-ratio check."""

from __future__ import annotations

from typing import Any

from loopwise.experiments.decisions import verdict


def comparison(challenger: str, p_value: float, difference: float, half: float = 0.02) -> dict[str, Any]:
    return {
        "control": "A",
        "challenger": challenger,
        "alpha": 0.025,
        "p_value": p_value,
        "difference": difference,
        "low": difference - half,
        "high": difference + half,
    }


def test_a_broken_split_overrides_a_significant_winner() -> None:
    assert verdict([comparison("B", 1e-6, 0.1)], 0.01, srm_p=1e-4) == ("invalid split", None)
    assert verdict([comparison("B", 1e-6, 0.1)], 0.01, srm_p=0.002) == ("winner", "B")


def test_the_winner_is_the_challenger_that_beat_the_control_by_most_or_the_control() -> None:
    both = [comparison("B", 0.001, 0.05), comparison("C", 0.001, 0.08)]
    assert verdict(both, 0.01, 0.5) == ("winner", "C")
    control_wins = [comparison("B", 0.001, -0.05), comparison("C", 0.01, -0.08)]
    assert verdict(control_wins, 0.01, 0.5) == ("winner", "A")
    # the control beat one challenger, the other is still open: nothing to decide yet
    assert verdict([comparison("B", 0.001, -0.05), comparison("C", 0.5, 0.0)], 0.01, 0.5) == (
        "keep running",
        None,
    )


def test_no_difference_needs_every_confidence_sequence_within_the_minimum_effect() -> None:
    assert verdict([comparison("B", 0.9, 0.0, half=0.005)], 0.01, 0.5) == ("no difference", None)
    assert verdict([comparison("B", 0.9, 0.0, half=0.05)], 0.01, 0.5) == ("keep running", None)
    assert verdict([], 0.01, 0.5) == ("keep running", None)
