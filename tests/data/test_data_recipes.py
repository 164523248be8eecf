"""The course reviews recipe and the two splitting rules, without a database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loopwise.data.recipes import REVIEWS_LABELS, assign_splits, check_ratios, plan_splits, reviews_splits
from loopwise.errors import DataError, DataFormatError


def _sizes(frames: dict) -> dict[str, int]:
    return {name: len(frame) for name, frame in frames.items()}


def test_course_split_is_5537_307_309_balanced(reviews_csv: Path) -> None:
    result = reviews_splits(reviews_csv)
    assert result.labels == REVIEWS_LABELS == ["-1", "0", "1"]
    assert (result.rows_read, result.rows_kept, result.rows_used) == (23_486, 19_662, 6_153)
    assert _sizes(result.frames) == {"train": 5_537, "validation": 307, "test": 309}
    counts = {name: frame["label"].value_counts().to_dict() for name, frame in result.frames.items()}
    assert counts["train"] == {"-1": 1_846, "0": 1_846, "1": 1_845}
    assert counts["validation"] == {"-1": 102, "0": 102, "1": 103}
    assert counts["test"] == {"-1": 103, "0": 103, "1": 103}
    train = result.frames["train"]
    assert list(train.columns) == ["text", "label", "title", "class_name", "rating"]
    assert set(train.loc[train["label"] == "-1", "rating"]) == {1, 2}
    assert set(train.loc[train["label"] == "0", "rating"]) == {3}
    assert set(train.loc[train["label"] == "1", "rating"]) == {4, 5}
    assert not set(train["text"]) & set(result.frames["test"]["text"])


def test_course_options(reviews_csv: Path) -> None:
    needed = reviews_splits(reviews_csv, dropna="needed", balance=False)
    assert needed.rows_kept == 22_628
    assert sum(_sizes(needed.frames).values()) == 22_628
    assert needed.frames["train"]["label"].value_counts().to_dict() == pytest.approx(
        {"1": 17_435 * 0.9, "0": 2_823 * 0.9, "-1": 2_370 * 0.9}, abs=2
    )
    unbalanced = reviews_splits(reviews_csv, balance=False, train=0.8, validation=0.1, test=0.1)
    assert sum(_sizes(unbalanced.frames).values()) == 19_662
    assert len(unbalanced.frames["train"]) == pytest.approx(0.8 * 19_662, abs=1)


def test_course_recipe_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("Title,Review Text,Rating\na,b,5\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="'Class Name'"):
        reviews_splits(path)


@pytest.mark.parametrize(
    ("shares", "message"),
    [((0.9, 0.1, 0.1), "add up to 1"), ((0.0, 0.5, 0.5), "above 0"), ((1.2, -0.1, -0.1), "between 0 and 1")],
)
def test_shares_are_checked(shares: tuple[float, float, float], message: str) -> None:
    with pytest.raises(DataError, match=message):
        check_ratios(*shares)
    with pytest.raises(DataError, match=message):
        assign_splits(np.zeros(10, dtype=np.int32), 2, train=shares[0], validation=shares[1], test=shares[2])


def _codes(counts: list[int], seed: int = 0) -> np.ndarray:
    codes = np.concatenate([np.full(n, code, dtype=np.int32) for code, n in enumerate(counts)])
    return np.random.default_rng(seed).permutation(codes)


def test_assign_splits_is_stratified_and_seeded() -> None:
    codes = _codes([2_000, 500, 7_500])
    assignment = assign_splits(codes, 3, train=0.8, validation=0.1, test=0.1, seed=7)
    assert assignment.dtype == np.int8
    per_split = {split: np.bincount(codes[assignment == split], minlength=3).tolist() for split in (0, 1, 2)}
    # the course's float shares: 0.1 / (1 - 0.8) is 0.5000000000000001, so test gets the odd row
    assert per_split == {0: [1_600, 400, 6_000], 1: [200, 50, 749], 2: [200, 50, 751]}
    again = assign_splits(codes, 3, train=0.8, validation=0.1, test=0.1, seed=7)
    other = assign_splits(codes, 3, train=0.8, validation=0.1, test=0.1, seed=8)
    assert np.array_equal(assignment, again)
    assert not np.array_equal(assignment, other)


def test_assign_splits_uses_the_course_sizes() -> None:
    codes = _codes([2_051, 2_051, 2_051])
    assignment = assign_splits(codes, 3)
    assert np.bincount(assignment, minlength=3).tolist() == [5_537, 307, 309]


def test_assign_splits_balances_and_skips_empty_shares() -> None:
    codes = _codes([100, 40, 300])
    assignment = assign_splits(codes, 3, train=0.75, validation=0.25, test=0.0, balance=True)
    kept = assignment >= 0
    assert np.bincount(codes[kept], minlength=3).tolist() == [40, 40, 40]
    assert set(np.unique(assignment[kept]).tolist()) == {0, 1}
    assert (assign_splits(codes, 3, train=1.0, validation=0.0, test=0.0) == 0).all()


def test_a_label_with_one_row_cannot_be_stratified() -> None:
    codes = _codes([50, 1, 50])
    with pytest.raises(DataError, match=r"label 'b' has only 1 row"):
        assign_splits(codes, 3, labels=["a", "b", "c"])
    with pytest.raises(DataError, match=r"label 'b' has only 1 row"):
        plan_splits(codes, 3, labels=["a", "b", "c"])


def test_plan_splits_is_sklearn_twice() -> None:
    from sklearn.model_selection import train_test_split

    codes = _codes([300, 200, 100])
    plan = plan_splits(codes, 3, seed=3)
    rows = np.arange(len(codes))
    train, holdout = train_test_split(rows, test_size=1 - 0.9, random_state=3, stratify=codes)
    validation, test = train_test_split(
        holdout, test_size=0.05 / (1 - 0.9), random_state=3, stratify=codes[holdout]
    )
    assert [plan[name].tolist() for name in ("train", "validation", "test")] == [
        train.tolist(),
        validation.tolist(),
        test.tolist(),
    ]
