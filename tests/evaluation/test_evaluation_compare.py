"""paired_comparison: McNemar's exact test on the discordant rows and a paired bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from loopwise.errors import DataFormatError
from loopwise.evaluation import paired_comparison


def predictions_right_with(rate: float, y_true: np.ndarray, seed: int) -> list[str]:
    right = np.random.default_rng(seed).uniform(size=len(y_true)) < rate
    return [t if ok else "wrong" for t, ok in zip(y_true, right, strict=True)]


def test_identical_predictions_are_not_significant() -> None:
    y_true = ["-1", "0", "1", "1", "0"]
    pred = ["-1", "1", "1", "0", "0"]

    result = paired_comparison(y_true, pred, pred)

    assert result["p_value"] == 1.0
    assert result["significant"] is False
    assert result["better"] is None
    assert (result["b01"], result["b10"]) == (0, 0)
    assert result["difference"] == 0.0
    assert result["difference_ci"] == [0.0, 0.0]
    assert "not significant" in result["summary"]


def test_discordant_counts_accuracies_and_p_value_are_exact() -> None:
    y_true = ["1"] * 10
    right_a = [True] * 6 + [False] * 4  # rows 0-5
    right_b = [False] * 3 + [True] * 7  # rows 3-9
    pred_a = ["1" if ok else "0" for ok in right_a]
    pred_b = ["1" if ok else "0" for ok in right_b]

    result = paired_comparison(y_true, pred_a, pred_b)

    assert result["b01"] == 4  # rows 6-9: A wrong, B right
    assert result["b10"] == 3  # rows 0-2: A right, B wrong
    assert result["accuracy_a"] == pytest.approx(0.6)
    assert result["accuracy_b"] == pytest.approx(0.7)
    assert result["difference"] == pytest.approx(0.1)
    assert result["p_value"] == pytest.approx(binomtest(4, 7, 0.5).pvalue)
    assert result["significant"] is False


def test_a_clearly_better_b_is_significant_and_said_so() -> None:
    y_true = np.random.default_rng(0).choice(["-1", "0", "1"], size=400)
    pred_a = predictions_right_with(0.6, y_true, seed=1)
    pred_b = predictions_right_with(0.9, y_true, seed=2)

    result = paired_comparison(y_true, pred_a, pred_b, name_a="baseline", name_b="tuned")

    assert result["significant"] is True
    assert result["better"] == "tuned"
    assert result["p_value"] < 0.001
    low, high = result["difference_ci"]
    assert 0 < low <= result["difference"] <= high
    points = 100 * result["difference"]
    assert result["summary"].startswith(f"tuned is better than baseline by {points:.1f} points (95% CI ")
    assert result["summary"].endswith("McNemar p<0.001: significant at 0.05")


def test_a_worse_b_names_a_as_better_with_a_positive_margin() -> None:
    y_true = np.random.default_rng(0).choice(["-1", "0", "1"], size=400)
    pred_a = predictions_right_with(0.9, y_true, seed=1)
    pred_b = predictions_right_with(0.6, y_true, seed=2)

    result = paired_comparison(y_true, pred_a, pred_b)

    assert result["better"] == "A"
    assert result["difference"] < 0
    assert result["summary"].startswith(f"A is better than B by {-100 * result['difference']:.1f} points")


def test_interval_level_follows_alpha() -> None:
    y_true = np.random.default_rng(0).choice(["0", "1"], size=300)
    pred_a = predictions_right_with(0.7, y_true, seed=1)
    pred_b = predictions_right_with(0.75, y_true, seed=2)

    wide = paired_comparison(y_true, pred_a, pred_b, alpha=0.01)
    narrow = paired_comparison(y_true, pred_a, pred_b, alpha=0.2)

    assert "(99% CI" in wide["summary"]
    assert (
        wide["difference_ci"][0]
        < narrow["difference_ci"][0]
        < narrow["difference_ci"][1]
        < wide["difference_ci"][1]
    )


def test_different_lengths_are_refused_with_the_lengths() -> None:
    with pytest.raises(DataFormatError, match=r"y_true 3, predictions of A 3, predictions of B 2"):
        paired_comparison(["0", "1", "1"], ["0", "1", "1"], ["0", "1"])
