"""Classification metrics for one model on one split, with bootstrap intervals.

Pure functions: labels and probabilities in, a JSON-able dict out. ``proba`` is an ``(n, k)`` array whose
columns follow ``labels``; the prediction of a row is its most probable column (the first one on ties).

Accuracy, the F1s and the calibration error are computed from the same confusion counts and bin sums as
their bootstrap resamples, so a point estimate and its interval always describe the same statistic.
The point estimates agree with scikit-learn (``zero_division=0``); the tests pin that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from loopwise.errors import ConfigurationError, DataFormatError

__all__ = [
    "classification_metrics",
    "encode_labels",
    "expected_calibration_error",
    "reliability_table",
]

# Rows drawn per bootstrap chunk: bounds the resampling's memory to a few tens of MB whatever n is.
_ROWS_PER_CHUNK = 1_000_000
# How far a row of ``proba`` may sum from 1 before it is refused as not being probabilities.
_SUM_TOLERANCE = 1e-3
_CI_PERCENTILES = (2.5, 97.5)


def classification_metrics(
    y_true: Sequence[str],
    proba: np.ndarray,
    labels: Sequence[str],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    ece_bins: int = 15,
) -> dict[str, Any]:
    """Score predicted probabilities against true labels.

    Returns a JSON-able dict with ``n``, ``accuracy``, ``macro_f1``, ``weighted_f1``, ``macro_precision``,
    ``macro_recall``, ``log_loss``, ``ece`` (top-label, ``ece_bins`` equal-width bins), ``brier``
    (multiclass: the mean over rows of the squared distance to the one-hot truth, 0..2), ``roc_auc_ovr``
    (one-vs-rest macro average, ``None`` unless every class has both positive and negative rows),
    ``roc_auc_per_class`` (``None`` for a class that is absent from, or is all of, ``y_true``),
    ``per_class`` ``{label: {precision, recall, f1, support}}``, ``confusion_matrix``
    ``{"labels": [...], "matrix": [[...]]}`` (rows are true labels, columns predicted), ``intervals``
    ``{metric: [low, high]}`` (95% percentile intervals from ``bootstrap`` resamples of the rows, for
    accuracy, macro_f1, weighted_f1 and ece; empty when ``bootstrap`` is 0) and ``bootstrap``
    (the resample count, seed and confidence level, to reproduce the intervals).

    Raises :class:`DataFormatError` when a true label is not in ``labels``, when ``proba`` has the wrong
    shape or does not hold probabilities, or when there are no rows; :class:`ConfigurationError` when
    ``bootstrap`` is negative or ``ece_bins`` is below 1.
    """
    if bootstrap < 0:
        raise ConfigurationError(f"bootstrap must be 0 (no intervals) or a positive count, not {bootstrap}")
    _check_bins(ece_bins)
    names = _label_names(labels)
    ids = encode_labels(y_true, names)
    proba = _checked_proba(proba, len(ids), len(names))
    k = len(names)
    n = len(ids)

    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(n), pred]
    correct = (pred == ids).astype(float)
    bin_ids = _bin_index(confidence, ece_bins)

    confusion = np.bincount(ids * k + pred, minlength=k * k).reshape(k, k)
    scores = _scores(confusion)
    precision, recall, f1 = _per_class_rates(confusion)
    auc_per_class = _per_class_auc(ids, proba, names)

    result: dict[str, Any] = {
        "n": n,
        "labels": names,
        "accuracy": float(scores["accuracy"]),
        "macro_f1": float(scores["macro_f1"]),
        "weighted_f1": float(scores["weighted_f1"]),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "log_loss": float(log_loss(ids, proba, labels=np.arange(k))),
        "ece": _ece_from_bins(bin_ids, confidence, correct, ece_bins),
        "brier": float(((proba - np.eye(k)[ids]) ** 2).sum(axis=1).mean()),
        "roc_auc_ovr": _macro_auc(auc_per_class),
        "roc_auc_per_class": auc_per_class,
        "per_class": {
            name: {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(confusion[c].sum()),
            }
            for c, name in enumerate(names)
        },
        "confusion_matrix": {"labels": names, "matrix": confusion.tolist()},
        "intervals": {},
        "bootstrap": {"resamples": bootstrap, "seed": seed, "confidence": 0.95, "ece_bins": ece_bins},
    }
    if bootstrap:
        samples = _bootstrap(ids * k + pred, bin_ids, confidence, correct, k, ece_bins, bootstrap, seed)
        result["intervals"] = {
            name: [float(v) for v in np.percentile(values, _CI_PERCENTILES)]
            for name, values in samples.items()
        }
    return result


def encode_labels(y_true: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """The column index in ``labels`` of each true label, as an int array.

    Values are compared as strings, so ``1`` matches ``"1"``. Raises :class:`DataFormatError` naming the
    first row whose label is not one of ``labels``.
    """
    names = _label_names(labels)
    index = {name: i for i, name in enumerate(names)}
    ids = np.empty(len(y_true), dtype=np.intp)
    for row, value in enumerate(y_true):
        try:
            ids[row] = index[str(value)]
        except KeyError:
            raise DataFormatError(
                f"true label {str(value)!r} (row {row}) is not one of the model's labels {names}; "
                "evaluate on data labelled with the same label set, or drop those rows"
            ) from None
    return ids


def expected_calibration_error(
    y_true_ids: Sequence[int] | np.ndarray, proba: np.ndarray, bins: int = 15
) -> float:
    """Top-label expected calibration error over ``bins`` equal-width confidence bins.

    The weighted mean, over bins, of ``|accuracy - mean confidence|``: 0 for a perfectly calibrated model,
    up to 1 for a confidently wrong one. ``y_true_ids`` are column indices into ``proba``.
    """
    _check_bins(bins)
    ids, proba = _checked_ids(y_true_ids, proba)
    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(len(ids)), pred]
    correct = (pred == ids).astype(float)
    return _ece_from_bins(_bin_index(confidence, bins), confidence, correct, bins)


def reliability_table(
    y_true_ids: Sequence[int] | np.ndarray, proba: np.ndarray, bins: int = 15
) -> list[dict[str, Any]]:
    """One row per equal-width confidence bin: ``lower``, ``upper``, ``count``, and the mean top-label
    ``confidence`` and ``accuracy`` of its rows (``None`` for an empty bin). What the reliability diagram
    draws; JSON-able."""
    _check_bins(bins)
    ids, proba = _checked_ids(y_true_ids, proba)
    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(len(ids)), pred]
    correct = (pred == ids).astype(float)
    bin_ids = _bin_index(confidence, bins)
    counts = np.bincount(bin_ids, minlength=bins)
    conf_sums = np.bincount(bin_ids, weights=confidence, minlength=bins)
    correct_sums = np.bincount(bin_ids, weights=correct, minlength=bins)
    rows = []
    for b in range(bins):
        count = int(counts[b])
        rows.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": count,
                "confidence": float(conf_sums[b] / count) if count else None,
                "accuracy": float(correct_sums[b] / count) if count else None,
            }
        )
    return rows


# --- internals -------------------------------------------------------------------------------------------


def _label_names(labels: Sequence[str]) -> list[str]:
    names = [str(label) for label in labels]
    if len(names) < 2:
        raise DataFormatError(f"a classifier needs at least 2 labels to evaluate, got {names}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataFormatError(f"labels must be distinct; {duplicates} appear more than once in {names}")
    return names


def _check_bins(bins: int) -> None:
    if bins < 1:
        raise ConfigurationError(f"the number of calibration bins must be at least 1, not {bins}")


def _checked_proba(proba: np.ndarray, n: int, k: int) -> np.ndarray:
    """``proba`` as float64, checked to be ``(n, k)`` probabilities and renormalized to sum exactly to 1."""
    if n == 0:
        raise DataFormatError("there are no rows to evaluate; check that the split is not empty")
    array = np.asarray(proba, dtype=float)
    if array.shape != (n, k):
        raise DataFormatError(
            f"proba has shape {array.shape} but {n} rows and {k} labels need ({n}, {k}); "
            "its columns must follow the labels, one row per true label"
        )
    if not np.isfinite(array).all():
        raise DataFormatError("proba holds NaN or infinite values; check the model's output")
    if array.min() < -_SUM_TOLERANCE or array.max() > 1 + _SUM_TOLERANCE:
        raise DataFormatError(
            f"proba holds values outside [0, 1] (min {array.min():.4g}, max {array.max():.4g}); "
            "pass probabilities (a softmax output), not logits"
        )
    sums = array.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > _SUM_TOLERANCE)
    if bad.size:
        raise DataFormatError(
            f"proba row {int(bad[0])} sums to {sums[bad[0]]:.4g}, not 1 ({bad.size} such rows); "
            "pass one probability per label for each row"
        )
    array = np.clip(array, 0.0, 1.0)
    return array / array.sum(axis=1, keepdims=True)


def _checked_ids(y_true_ids: Sequence[int] | np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(y_true_ids)
    array = np.asarray(proba, dtype=float)
    if array.ndim != 2 or ids.ndim != 1 or ids.shape[0] != array.shape[0]:
        raise DataFormatError(
            f"y_true_ids has shape {ids.shape} and proba {array.shape}; need (n,) label indices and (n, k)"
        )
    if ids.size and (
        not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= array.shape[1]
    ):
        raise DataFormatError(
            f"y_true_ids must be integer column indices in 0..{array.shape[1] - 1}; "
            "use encode_labels() to turn label names into indices"
        )
    return ids.astype(np.intp), _checked_proba(array, len(ids), array.shape[1])


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins ``[b/bins, (b+1)/bins)``, the last one closed at 1."""
    return np.minimum((confidence * bins).astype(np.intp), bins - 1)


def _ece_from_bins(bin_ids: np.ndarray, confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    # sum over bins of (count/n) * |accuracy - confidence| == sum |correct_sum - confidence_sum| / n
    gap = np.bincount(bin_ids, weights=correct - confidence, minlength=bins)
    return float(np.abs(gap).sum() / len(bin_ids))


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ratio, 0 where the denominator is 0 (scikit-learn's ``zero_division=0``)."""
    return np.divide(
        numerator,
        denominator,
        out=np.zeros(np.broadcast(numerator, denominator).shape),
        where=denominator > 0,
    )


def _per_class_rates(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per class from confusion counts of shape ``(..., k, k)``, rows true."""
    counts = confusion.astype(float)
    tp = np.diagonal(counts, axis1=-2, axis2=-1)
    support = counts.sum(axis=-1)
    predicted = counts.sum(axis=-2)
    return _divide(tp, predicted), _divide(tp, support), _divide(2 * tp, support + predicted)


def _scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro F1 and weighted F1 of one or many confusion matrices (shape ``(..., k, k)``)."""
    counts = confusion.astype(float)
    support = counts.sum(axis=-1)
    n = support.sum(axis=-1)
    _, _, f1 = _per_class_rates(counts)
    return {
        "accuracy": np.trace(counts, axis1=-2, axis2=-1) / n,
        "macro_f1": f1.mean(axis=-1),
        "weighted_f1": (f1 * support).sum(axis=-1) / n,
    }


def _per_class_auc(ids: np.ndarray, proba: np.ndarray, names: list[str]) -> dict[str, float | None]:
    aucs: dict[str, float | None] = {}
    for c, name in enumerate(names):
        positive = ids == c
        if positive.all() or not positive.any():
            aucs[name] = None  # one-vs-rest AUC needs rows on both sides
        else:
            aucs[name] = float(roc_auc_score(positive, proba[:, c]))
    return aucs


def _macro_auc(per_class: dict[str, float | None]) -> float | None:
    values = [v for v in per_class.values() if v is not None]
    if len(values) < len(per_class):
        return None  # a macro average over fewer classes would not be comparable
    return float(np.mean(values))


def _bootstrap(
    cells: np.ndarray,
    bin_ids: np.ndarray,
    confidence: np.ndarray,
    correct: np.ndarray,
    k: int,
    bins: int,
    resamples: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Accuracy, macro/weighted F1 and ECE of ``resamples`` row resamples (drawn with replacement).

    ``cells`` is each row's confusion cell (``true * k + predicted``). Each chunk of resamples is scored at
    once: offsetting every resample's cells by ``resample * k * k`` lets one ``bincount`` build all their
    confusion matrices, and the same trick gives their per-bin calibration gaps.
    """
    rng = np.random.default_rng(seed)
    n = len(cells)
    per_chunk = max(1, _ROWS_PER_CHUNK // n)
    out = {name: np.empty(resamples) for name in ("accuracy", "macro_f1", "weighted_f1", "ece")}
    for start in range(0, resamples, per_chunk):
        size = min(per_chunk, resamples - start)
        rows = rng.integers(0, n, size=(size, n))
        offset = np.arange(size)[:, None]
        confusion = np.bincount((offset * (k * k) + cells[rows]).ravel(), minlength=size * k * k).reshape(
            size, k, k
        )
        for name, values in _scores(confusion).items():
            out[name][start : start + size] = values
        gaps = np.bincount(
            (offset * bins + bin_ids[rows]).ravel(),
            weights=(correct - confidence)[rows].ravel(),
            minlength=size * bins,
        ).reshape(size, bins)
        out["ece"][start : start + size] = np.abs(gaps).sum(axis=1) / n
    return out
