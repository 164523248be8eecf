"""classification_metrics agrees with scikit-learn, and its intervals and calibration error behave."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn import metrics as skm

from loopwise.errors import DataFormatError
from loopwise.evaluation import (
    classification_metrics,
    encode_labels,
    expected_calibration_error,
    reliability_table,
)

LABELS = ["-1", "0", "1"]


def noisy_predictions(n: int, seed: int = 0, labels: list[str] = LABELS) -> tuple[list[str], np.ndarray]:
    """True labels and probabilities that lean towards the truth, so every metric is informative."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(labels), n)
    logits = rng.normal(size=(n, len(labels)))
    logits[np.arange(n), ids] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return [labels[i] for i in ids], proba


def test_point_estimates_match_scikit_learn() -> None:
    y_true, proba = noisy_predictions(600)
    y_pred = [LABELS[i] for i in proba.argmax(axis=1)]

    m = classification_metrics(y_true, proba, LABELS, bootstrap=0)

    assert m["n"] == 600
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        expected = skm.f1_score(y_true, y_pred, labels=LABELS, average=average, zero_division=0)
        assert m[f"{average}_f1"] == pytest.approx(expected)
    assert m["macro_precision"] == pytest.approx(
        skm.precision_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0)
    )
    assert m["macro_recall"] == pytest.approx(
        skm.recall_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0)
    )
    assert m["log_loss"] == pytest.approx(skm.log_loss(y_true, proba, labels=LABELS))
    assert m["brier"] == pytest.approx(
        skm.brier_score_loss(y_true, proba, labels=LABELS, scale_by_half=False)
    )
    assert m["roc_auc_ovr"] == pytest.approx(
        skm.roc_auc_score(y_true, proba, labels=LABELS, multi_class="ovr", average="macro")
    )
    assert m["confusion_matrix"] == {
        "labels": LABELS,
        "matrix": skm.confusion_matrix(y_true, y_pred, labels=LABELS).tolist(),
    }
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=LABELS, zero_division=0
    )
    for c, label in enumerate(LABELS):
        assert m["per_class"][label] == pytest.approx(
            {"precision": precision[c], "recall": recall[c], "f1": f1[c], "support": support[c]}
        )


def test_confusion_matrix_rows_are_true_labels() -> None:
    # three rows truly "-1", all predicted "1"; one row truly "0", predicted "0"
    proba = np.array([[0.1, 0.1, 0.8]] * 3 + [[0.1, 0.8, 0.1]])

    m = classification_metrics(["-1", "-1", "-1", "0"], proba, LABELS, bootstrap=0)

    assert m["confusion_matrix"]["matrix"] == [[0, 0, 3], [0, 1, 0], [0, 0, 0]]


def test_result_is_json_serializable() -> None:
    y_true, proba = noisy_predictions(100)

    m = classification_metrics(y_true, proba, LABELS, bootstrap=20)

    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_a_class_absent_from_the_truth_gives_no_auc_instead_of_crashing() -> None:
    y_true, proba = noisy_predictions(200, labels=["-1", "0"])  # no "1" rows
    proba = np.hstack([proba * 0.9, np.full((200, 1), 0.1)])
    y_pred = [LABELS[i] for i in proba.argmax(axis=1)]

    m = classification_metrics(y_true, proba, LABELS, bootstrap=10)

    assert m["roc_auc_ovr"] is None
    assert m["roc_auc_per_class"]["1"] is None
    assert m["roc_auc_per_class"]["0"] == pytest.approx(
        skm.roc_auc_score([y == "0" for y in y_true], proba[:, 1])
    )
    assert m["per_class"]["1"]["support"] == 0
    assert m["macro_f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0)
    )


def test_an_unknown_true_label_is_named_in_the_error() -> None:
    proba = np.full((2, 3), 1 / 3)

    with pytest.raises(DataFormatError, match=r"'2'.*row 1"):
        classification_metrics(["0", "2"], proba, LABELS)


@pytest.mark.parametrize(
    ("proba", "message"),
    [
        (np.full((2, 2), 0.5), r"shape \(2, 2\)"),
        (np.array([[2.0, -0.5, -0.5], [0.2, 0.3, 0.5]]), "logits"),
        (np.array([[0.5, 0.5, 0.5], [0.2, 0.3, 0.5]]), "row 0 sums to 1.5"),
        (np.array([[np.nan, 0.5, 0.5], [0.2, 0.3, 0.5]]), "NaN"),
    ],
)
def test_probabilities_that_are_not_probabilities_are_refused(proba: np.ndarray, message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        classification_metrics(["0", "1"], proba, LABELS)


def test_no_rows_is_refused() -> None:
    with pytest.raises(DataFormatError, match="no rows"):
        classification_metrics([], np.empty((0, 3)), LABELS)


def test_encode_labels_compares_as_strings() -> None:
    assert encode_labels([1, "-1", "0"], LABELS).tolist() == [2, 0, 1]


def test_intervals_contain_the_estimate_and_shrink_with_more_rows() -> None:
    small = classification_metrics(*noisy_predictions(200, seed=1), LABELS, bootstrap=500)
    large = classification_metrics(*noisy_predictions(5000, seed=1), LABELS, bootstrap=500)

    for m in (small, large):
        assert set(m["intervals"]) == {"accuracy", "macro_f1", "weighted_f1", "ece"}
        for name, (low, high) in m["intervals"].items():
            assert low <= m[name] <= high, name

    def width(m: dict, name: str) -> float:
        return m["intervals"][name][1] - m["intervals"][name][0]

    for name in ("accuracy", "macro_f1", "weighted_f1"):
        assert width(large, name) < width(small, name) / 3  # ~ 1/sqrt(25) = 1/5 in theory


def test_intervals_are_the_percentiles_of_plain_row_resamples() -> None:
    """The vectorized bootstrap scores exactly the resamples a loop over sklearn would score."""
    y_true, proba = noisy_predictions(150, seed=3)
    y_pred = np.array([LABELS[i] for i in proba.argmax(axis=1)])
    y = np.array(y_true)
    rows = np.random.default_rng(7).integers(0, 150, size=(40, 150))  # what the function draws with seed 7
    accuracy = [skm.accuracy_score(y[r], y_pred[r]) for r in rows]
    macro_f1 = [skm.f1_score(y[r], y_pred[r], labels=LABELS, average="macro", zero_division=0) for r in rows]

    m = classification_metrics(y_true, proba, LABELS, bootstrap=40, seed=7)

    assert m["intervals"]["accuracy"] == pytest.approx(np.percentile(accuracy, [2.5, 97.5]).tolist())
    assert m["intervals"]["macro_f1"] == pytest.approx(np.percentile(macro_f1, [2.5, 97.5]).tolist())


def test_same_seed_same_intervals_and_no_bootstrap_no_intervals() -> None:
    y_true, proba = noisy_predictions(300)

    first = classification_metrics(y_true, proba, LABELS, bootstrap=100, seed=5)
    again = classification_metrics(y_true, proba, LABELS, bootstrap=100, seed=5)
    none = classification_metrics(y_true, proba, LABELS, bootstrap=0)

    assert first["intervals"] == again["intervals"]
    assert none["intervals"] == {}


def test_a_thousand_resamples_of_ten_thousand_rows_are_quick() -> None:
    y_true, proba = noisy_predictions(10_000)

    start = time.perf_counter()
    classification_metrics(y_true, proba, LABELS, bootstrap=1000)

    assert time.perf_counter() - start < 3.0  # about 0.3 s on one core; generous for a shared machine


def test_ece_of_calibrated_predictions_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    p_one = rng.uniform(0, 1, 50_000)
    ids = (rng.uniform(0, 1, 50_000) < p_one).astype(
        int
    )  # the label is 1 with exactly the stated probability
    proba = np.column_stack([1 - p_one, p_one])

    assert expected_calibration_error(ids, proba, bins=15) < 0.015


def test_ece_of_overconfident_predictions_is_large() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 2, 5000)
    right = rng.uniform(0, 1, 5000) < 0.6  # 60% right while claiming 99%
    predicted = np.where(right, ids, 1 - ids)
    proba = np.full((5000, 2), 0.01)
    proba[np.arange(5000), predicted] = 0.99

    assert expected_calibration_error(ids, proba) == pytest.approx(0.39, abs=0.03)


def test_ece_by_hand_and_the_reliability_table() -> None:
    # confidence 0.8 and right (gap 0.2), confidence 0.6 and wrong (gap 0.6): ECE (0.2 + 0.6) / 2
    proba = np.array([[0.8, 0.2], [0.6, 0.4]])

    assert expected_calibration_error([0, 1], proba, bins=10) == pytest.approx(0.4)
    table = reliability_table([0, 1], proba, bins=10)
    assert len(table) == 10
    assert sum(row["count"] for row in table) == 2
    assert table[8] == pytest.approx(
        {"lower": 0.8, "upper": 0.9, "count": 1, "confidence": 0.8, "accuracy": 1.0}
    )
    assert table[6] == pytest.approx(
        {"lower": 0.6, "upper": 0.7, "count": 1, "confidence": 0.6, "accuracy": 0.0}
    )
    assert table[0] == {"lower": 0.0, "upper": 0.1, "count": 0, "confidence": None, "accuracy": None}


def test_ece_in_the_metrics_uses_the_requested_bins() -> None:
    y_true, proba = noisy_predictions(400)
    ids = encode_labels(y_true, LABELS)

    m = classification_metrics(y_true, proba, LABELS, bootstrap=0, ece_bins=7)

    assert m["ece"] == pytest.approx(expected_calibration_error(ids, proba, bins=7))
