"""Text measurements and the drift tests: known answers, and the MMD test's error rates by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from loopwise.monitoring.drift import category_test, embedding_test, mmd_test, numeric_test, psi
from loopwise.monitoring.text import features, is_garbled, oov_rate, vocabulary


def test_garbled_text_is_told_from_text() -> None:
    for text in ("I love this dress!", "Très belle robe, je l'adore.", "Сидит отлично", "size 12, fits"):
        assert not is_garbled(text), text
    for text in (
        "#### 1234 $$$$ %%%",
        "Ã©tÃ© trÃ¨s bien, jâ€™adore",
        "bad \ufffd\ufffd\ufffd bytes",
        "<<<>>>",
    ):
        assert is_garbled(text), text
    measured = features(["fine text", "   ", "12345 678", ""])
    assert measured.empty.tolist() == [False, True, False, True]
    assert measured.garbled.tolist() == [False, False, True, False]
    assert measured.words.tolist() == [2, 0, 0, 0] and measured.chars.tolist() == [9, 3, 9, 0]


def test_out_of_vocabulary_rate_counts_words_outside_the_vocabulary() -> None:
    known = frozenset(vocabulary(["the dress fits", "the dress is nice", "fits well"], min_count=2))
    assert known == {"the", "dress", "fits"}
    assert oov_rate(["the dress fits"], known) == 0.0
    assert oov_rate(["The Dress, la robe"], known) == pytest.approx(0.5)  # case folded; la, robe unknown
    assert oov_rate(["123 !!!"], known) == 0.0  # no word, no rate


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_mmd_test_keeps_its_false_positive_rate_and_finds_a_shift() -> None:
    rng = np.random.default_rng(7)

    def sample(size: int, shift: float = 0.0) -> np.ndarray:
        return _unit(rng.normal(size=(size, 32)) + shift)

    same = [mmd_test(sample(200), sample(100), permutations=100, seed=i).p_value for i in range(200)]
    # p-values of a valid permutation test are uniform under no drift: about alpha of them at or below it
    assert np.mean(np.array(same) <= 0.05) <= 0.08
    assert np.mean(np.array(same) <= 0.5) == pytest.approx(0.5, abs=0.12)
    shifted = [mmd_test(sample(200), sample(100, 0.35), permutations=100, seed=i).p_value for i in range(50)]
    assert np.mean(np.array(shifted) <= 0.05) >= 0.9
    with pytest.raises(ValueError, match="at least two"):
        mmd_test(sample(10), sample(1))


def test_the_aggregated_embedding_test_keeps_its_level_and_finds_a_mean_shift() -> None:
    """The MMD and the mean test on the same permutations, aggregated by the smaller p-value: still a
    valid test (about alpha of the p-values at or below alpha when nothing changed)."""
    rng = np.random.default_rng(11)
    directions = rng.normal(size=(5, 96))

    def sample(size: int, shift: float = 0.0) -> np.ndarray:
        factors = rng.normal(size=(size, 5))
        factors[:, 0] += shift
        return factors @ directions + rng.normal(size=(size, 96))

    same = np.array(
        [embedding_test(sample(200), sample(100), permutations=100, seed=i).p_value for i in range(300)]
    )
    assert np.mean(same <= 0.05) <= 0.08 and np.mean(same <= 0.01) <= 0.025
    assert np.mean(same <= 0.5) == pytest.approx(0.5, abs=0.1)
    shifted = [embedding_test(sample(200), sample(100, 0.6), permutations=100, seed=i) for i in range(40)]
    assert np.mean([r.p_value <= 0.05 for r in shifted]) >= 0.85
    found = shifted[0]
    assert found.test == "mmd+mean" and found.details is not None
    assert set(found.details) == {"mmd", "mean"} and found.details["mean"]["components"] == 10
    # the aggregate is never below the smaller of its parts' p-values
    assert all(r.p_value >= min(r.details["mmd"]["p_value"], r.details["mean"]["p_value"]) for r in shifted)  # type: ignore[index]
    with pytest.raises(ValueError, match="at least two"):
        embedding_test(sample(10), sample(1))


def test_category_and_numeric_tests() -> None:
    assert psi([100, 100, 100], [100, 100, 100]) == 0.0
    assert psi([100, 100, 100], [300, 50, 10]) == pytest.approx(1.3877, abs=1e-3)
    with pytest.raises(ValueError, match="same bins"):
        psi([1, 2], [1, 2, 3])
    steady = category_test([500, 300, 200], [50, 30, 20])
    assert steady.p_value == pytest.approx(1.0) and steady.effect == pytest.approx(0.0)
    surge = category_test([500, 300, 200], [10, 20, 70])  # a surge of the third class
    assert surge.p_value < 1e-6 and surge.effect > 0.25
    assert category_test([10, 0], [5, 0]).p_value == 1.0  # one category seen: nothing to test
    rng = np.random.default_rng(0)
    assert numeric_test(rng.normal(size=500), rng.normal(size=500)).p_value > 0.01
    assert numeric_test(rng.normal(size=500), rng.normal(1.0, size=500)).p_value < 1e-6
