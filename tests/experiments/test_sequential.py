"""The always-valid A/B statistics: false positives under continuous peeking, power, the ratio itself,
and the sample-ratio-mismatch test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loopwise.experiments.ratio import sample_ratio_mismatch
from loopwise.experiments.sequential import msprt_lambda, peeking_false_positive_rate, sequential_test


@pytest.mark.parametrize("alpha", [0.05, 0.10])
def test_peeking_after_every_observation_keeps_false_positives_at_or_below_alpha(alpha: float) -> None:
    msprt, naive = peeking_false_positive_rate(rate=0.7, n=2000, replicates=2000, alpha=alpha, seed=1)
    assert msprt <= alpha  # A/A tests looked at 2,000 times each
    assert naive > 3 * alpha  # what the fixed-sample z-test does when peeked at: the reason for the mSPRT


def test_a_real_difference_is_found() -> None:
    rng = np.random.default_rng(7)
    found = 0
    for _ in range(200):
        result = sequential_test(rng.random(2000) < 0.65, rng.random(2000) < 0.72)
        found += result.p_value < 0.05
        assert result.low <= result.high
    assert found / 200 > 0.8  # 7 points of accuracy at 2,000 answers each


def test_the_ratio_and_the_interval_follow_the_formula() -> None:
    d, v, tau = 0.04, 0.0004, 0.05
    expected = math.sqrt(v / (v + tau**2)) * math.exp(d**2 * tau**2 / (2 * v * (v + tau**2)))
    assert msprt_lambda(np.array([d]), np.array([v]), tau)[0] == pytest.approx(expected)
    assert msprt_lambda(np.array([0.3]), np.array([0.0]))[0] == 1.0  # no data yet: no evidence
    result = sequential_test([1, 0, 1, 1, 0, 1, 1, 1], [1, 1, 1, 1, 1, 0, 1, 1])
    assert result.n_a == result.n_b == 8 and result.difference == pytest.approx(7 / 8 - 6 / 8)
    assert 0 < result.p_value <= 1 and result.low < result.difference < result.high
    assert sequential_test([1], [0]).p_value == 1.0  # too little to say anything


def test_sample_ratio_mismatch_flags_a_broken_split() -> None:
    _, fine = sample_ratio_mismatch({"A": 5030, "B": 4970}, {"A": 50, "B": 50})
    _, broken = sample_ratio_mismatch({"A": 600, "B": 400}, {"A": 50, "B": 50})
    _, weighted = sample_ratio_mismatch({"A": 810, "B": 190, "C": 0}, {"A": 80, "B": 20, "C": 0})
    assert fine > 0.3 and broken < 1e-9 and weighted > 0.3
    assert sample_ratio_mismatch({"A": 10}, {"A": 1}) == (0.0, 1.0)
