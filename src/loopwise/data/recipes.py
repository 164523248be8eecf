"""How rows become train / validation / test splits, and the course's ``reviews`` recipe.

Two splitting rules share one definition of the sizes: hold out ``1 - train`` of the rows, then give the test
split ``test / (1 - train)`` of the holdout, both stratified by label. Those float expressions are the
course's; they are why its 90/5/5 split of 6,153 rows is 5,537 / 307 / 309 rather than 5,537 / 308 / 308.

* :func:`plan_splits` is the course's procedure, row for row: optionally ``sample(n, random_state=seed)``
  per class down to the smallest, then scikit-learn's ``train_test_split(..., stratify=...,
  random_state=seed)`` twice. It holds several 8-byte arrays per row, so it serves in-memory recipes.
* :func:`assign_splits` gives the same sizes per class (up to how ties are broken) from one seeded shuffle
  per class, in about 1 byte per row (plus 16 per row of the largest label) besides the 1-byte result;
  imports of any size use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from loopwise.errors import DataError, DataFormatError

SPLITS = ("train", "validation", "test")
REVIEWS_LABELS = ["-1", "0", "1"]
_REVIEWS_COLUMNS = ["Title", "Review Text", "Rating", "Class Name"]
_REVIEWS_NEEDED = ["Review Text", "Rating", "Class Name"]
_RATING_SENTIMENT = {1: "-1", 2: "-1", 3: "0", 4: "1", 5: "1"}

DropNa = Literal["any", "needed"]


def check_ratios(train: float, validation: float, test: float) -> None:
    """Raise :class:`DataError` unless the three shares lie in [0, 1], train is positive and they sum to 1."""
    shares = {"train": train, "validation": validation, "test": test}
    for name, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise DataError(f"the {name} share must lie between 0 and 1, got {share}")
    if train <= 0.0:
        raise DataError("the train share must be above 0")
    if abs(train + validation + test - 1.0) > 1e-9:
        raise DataError(
            f"train, validation and test shares must add up to 1, got {train} + {validation} + {test} "
            f"= {train + validation + test:g}"
        )


def balance_indices(codes: np.ndarray, n_labels: int, seed: int) -> np.ndarray:
    """Row indices keeping ``min(class size)`` rows of every class present, classes in code order.

    Within a class the rows are those (and in the order) ``DataFrame.sample(n, random_state=seed)`` picks.
    """
    groups = [np.flatnonzero(codes == code) for code in range(n_labels)]
    groups = [group for group in groups if len(group)]
    if not groups:
        return np.empty(0, dtype=np.int64)
    smallest = min(len(group) for group in groups)
    picked = [
        group[np.random.RandomState(seed).choice(len(group), smallest, replace=False)] for group in groups
    ]
    return np.concatenate(picked)


def plan_splits(
    codes: np.ndarray,
    n_labels: int,
    *,
    train: float = 0.9,
    validation: float = 0.05,
    test: float = 0.05,
    seed: int = 42,
    balance: bool = False,
    labels: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Row indices (into ``codes``, shuffled) of each split with a positive share, stratified by label code.

    ``codes`` holds one label code per row (0 .. n_labels-1); ``labels`` names them in messages. Raises
    :class:`DataError` when the shares are wrong or a class is too small to be split stratified.
    """
    from sklearn.model_selection import train_test_split

    check_ratios(train, validation, test)
    codes = np.asarray(codes)
    rows = balance_indices(codes, n_labels, seed) if balance else np.arange(len(codes))
    strata = codes[rows]
    if validation + test == 0.0:
        return {"train": rows}
    _check_stratifiable(np.bincount(strata, minlength=n_labels), labels)
    try:
        train_rows, holdout = train_test_split(
            rows, test_size=1 - train, shuffle=True, random_state=seed, stratify=strata
        )
        if validation == 0.0 or test == 0.0:
            return {"train": train_rows, "test" if validation == 0.0 else "validation": holdout}
        validation_rows, test_rows = train_test_split(
            holdout, test_size=test / (1 - train), shuffle=True, random_state=seed, stratify=codes[holdout]
        )
    except ValueError as exc:
        names = labels if labels is not None else [str(code) for code in range(n_labels)]
        counts = ", ".join(f"{names[code]}: {int((strata == code).sum())}" for code in range(n_labels))
        raise DataError(
            f"cannot split {len(rows)} rows stratified into {train}/{validation}/{test} ({exc}); rows per "
            f"label: {counts}. Use larger validation/test shares, more data, or drop the rare labels."
        ) from None
    return {"train": train_rows, "validation": validation_rows, "test": test_rows}


def assign_splits(
    codes: np.ndarray,
    n_labels: int,
    *,
    train: float = 0.9,
    validation: float = 0.05,
    test: float = 0.05,
    seed: int = 42,
    balance: bool = False,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """The split of every row as an int8 (0 train, 1 validation, 2 test; -1 left out by balancing).

    Stratified by ``codes`` (0 .. n_labels-1): the holdout takes ``ceil((1 - train) * rows)`` rows and the
    test split ``ceil(test / (1 - train) * holdout)`` of them, shared out between labels in proportion to
    their rows (largest remainders first). Within each label, rows are drawn by one shuffle from a
    generator seeded with ``seed``. ``labels`` names the codes in messages. Raises :class:`DataError` for
    wrong shares or labels too small to split.
    """
    check_ratios(train, validation, test)
    codes = np.asarray(codes)
    counts = np.bincount(codes, minlength=n_labels)[:n_labels] if len(codes) else np.zeros(n_labels, np.int64)
    keep = np.where(counts > 0, counts[counts > 0].min(), 0) if balance and counts.any() else counts
    total = int(keep.sum())
    hold = test_rows = np.zeros(n_labels, dtype=np.int64)
    if validation + test > 0.0:
        _check_stratifiable(keep, labels)
        hold = _apportion(math.ceil((1 - train) * total), keep)
        if validation == 0.0:
            test_rows = hold
        elif test > 0.0:
            test_rows = _apportion(math.ceil(test / (1 - train) * int(hold.sum())), hold)
        if int(hold.sum()) >= total:
            raise DataError(f"{total} rows leave none for training with a train share of {train}; add rows")
    assignment = np.full(len(codes), -1, dtype=np.int8)
    rng = np.random.default_rng(seed)
    # few labels: one scan per label; many: one stable sort (8 bytes per row) instead of L scans
    order = np.argsort(codes, kind="stable") if n_labels > 64 else None
    starts = np.concatenate([[0], np.cumsum(counts)])
    for code in range(n_labels):
        if not counts[code]:
            continue
        rows = np.flatnonzero(codes == code) if order is None else order[starts[code] : starts[code + 1]]
        rows = rng.permutation(rows)
        rows = rows[: keep[code]]
        n_train = int(keep[code] - hold[code])
        n_validation = int(hold[code] - test_rows[code])
        assignment[rows[:n_train]] = 0
        assignment[rows[n_train : n_train + n_validation]] = 1
        assignment[rows[n_train + n_validation :]] = 2
    return assignment


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` shared out in proportion to ``weights``: floors, then +1 by largest remainder."""
    weights = np.asarray(weights, dtype=np.int64)
    if total <= 0 or not weights.any():
        return np.zeros_like(weights)
    quotas = total * weights / weights.sum()
    shares = np.floor(quotas).astype(np.int64)
    extra = total - int(shares.sum())
    if extra > 0:
        shares[np.argsort(-(quotas - shares), kind="stable")[:extra]] += 1
    return np.minimum(shares, weights)


def _check_stratifiable(counts: np.ndarray, labels: Sequence[str] | None) -> None:
    """Every label present (``counts``: rows per label code) needs at least two rows."""
    present = counts[counts > 0]
    if len(present) and present.min() < 2:
        code = int(np.flatnonzero(counts == present.min())[0])
        name = repr(labels[code]) if labels is not None else f"code {code}"
        raise DataError(
            f"label {name} has only {present.min()} row; a stratified split needs at least 2 rows of "
            "every label (more for small shares). Add rows or drop that label."
        )


@dataclass(frozen=True)
class ReviewsSplits:
    """The reviews recipe's output: one frame per split (``text``, ``label``, ``title``, ``class_name``,
    ``rating``) in the course's row order, the source file's sha256, and row counts along the way."""

    frames: dict[str, pd.DataFrame]
    labels: list[str]
    sha256: str
    rows_read: int
    rows_kept: int
    rows_used: int


def reviews_splits(
    csv_path: Path,
    *,
    balance: bool = True,
    dropna: DropNa = "any",
    train: float = 0.9,
    validation: float = 0.05,
    test: float = 0.05,
    seed: int = 42,
) -> ReviewsSplits:
    """The course's sentiment splits of the Women's E-Commerce Clothing Reviews CSV.

    Sentiment from Rating (1-2 -> "-1", 3 -> "0", 4-5 -> "1"); rows empty in any column are dropped
    (``dropna="any"``, the course: 19,662 rows) or only rows empty in Review Text, Rating or Class Name
    (``dropna="needed"``: 22,628); then :func:`plan_splits`. The defaults give 5,537 / 307 / 309 rows.
    """
    from loopwise.data.readers import check_utf8, require_columns

    if dropna not in ("any", "needed"):
        raise DataError(f"dropna must be 'any' or 'needed', got {dropna!r}")
    check_ratios(train, validation, test)
    sha256 = check_utf8(csv_path)
    try:
        frame = pd.read_csv(csv_path, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(f"{csv_path} is not a readable CSV file: {exc}") from None
    require_columns(csv_path, [str(c) for c in frame.columns], _REVIEWS_COLUMNS)
    rows_read = len(frame)
    frame = frame.dropna() if dropna == "any" else frame.dropna(subset=_REVIEWS_NEEDED)
    ratings = pd.to_numeric(frame["Rating"], errors="coerce")
    sentiment = ratings.map(_RATING_SENTIMENT)
    if sentiment.isna().any():
        row = int(sentiment.isna().to_numpy().argmax())
        raise DataFormatError(
            f"{csv_path}, data row {int(frame.index[row]) + 1}: Rating {frame['Rating'].iloc[row]!r} is not "
            "one of 1-5; this is not the course's reviews file"
        )
    out = pd.DataFrame(
        {
            "text": frame["Review Text"].astype(str).to_numpy(),
            "label": sentiment.astype(str).to_numpy(),
            "title": frame["Title"].fillna("").astype(str).to_numpy(),
            "class_name": frame["Class Name"].astype(str).to_numpy(),
            "rating": ratings.astype("int64").to_numpy(),
        }
    )
    codes = out["label"].map({label: code for code, label in enumerate(REVIEWS_LABELS)}).to_numpy()
    plan = plan_splits(
        codes,
        len(REVIEWS_LABELS),
        train=train,
        validation=validation,
        test=test,
        seed=seed,
        balance=balance,
        labels=REVIEWS_LABELS,
    )
    frames = {name: out.iloc[plan[name]].reset_index(drop=True) for name in SPLITS if name in plan}
    return ReviewsSplits(
        frames=frames,
        labels=list(REVIEWS_LABELS),
        sha256=sha256,
        rows_read=rows_read,
        rows_kept=len(out),
        rows_used=sum(len(rows) for rows in plan.values()),
    )


__all__ = [
    "REVIEWS_LABELS",
    "SPLITS",
    "ReviewsSplits",
    "assign_splits",
    "balance_indices",
    "check_ratios",
    "plan_splits",
    "reviews_splits",
]
