"""Checking a window of captured traffic against a baseline: data quality constraints and drift tests.

Rates (empty, garbled, text length out of range) are violated only when a one-sided binomial test says the
window's rate is above the constraint at the baseline's ``alpha``, so that a handful of records does not
raise an alarm by chance; drift is a two-sample test per signal (see :mod:`loopwise.monitoring.drift`).
A window with fewer than ``min_records`` texts is reported as such, with no verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy import stats

from loopwise.monitoring.baseline import Baseline
from loopwise.monitoring.drift import TestResult, category_test, mmd_test, numeric_test
from loopwise.monitoring.text import TextFeatures, features, oov_rate

#: at most this many embeddings of a window go into the MMD test (a random sample beyond)
MAX_WINDOW_EMBEDDINGS = 1000
EXAMPLES = 5


@dataclass(frozen=True)
class Window:
    """The texts of a window of traffic with the model's answers (and embeddings, where captured)."""

    texts: list[str]
    proba: np.ndarray
    embeddings: np.ndarray | None
    #: each text's inference id and its place in that inference (to join ground truth)
    keys: list[tuple[str, int]] = field(default_factory=list)

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], labels: Sequence[str]) -> Window:
        texts: list[str] = []
        rows: list[list[float]] = []
        vectors: list[list[float]] = []
        keys: list[tuple[str, int]] = []
        for record in records:
            order = [record["labels"].index(label) for label in labels]
            texts.extend(record["input"])
            keys.extend((str(record.get("inference_id")), i) for i in range(len(record["input"])))
            rows.extend([p[i] for i in order] for p in record["probabilities"])
            if record.get("embedding") is not None:
                vectors.extend(record["embedding"])
        proba = np.array(rows, dtype=np.float64).reshape(len(rows), len(labels))
        embeddings = np.array(vectors, dtype=np.float32) if len(vectors) == len(texts) and vectors else None
        return cls(texts, proba, embeddings, keys)

    def truth(self, ground_truth: dict[str, tuple[str, ...]]) -> tuple[np.ndarray, list[str]]:
        """The positions of the texts with a true label in ``ground_truth`` (inference id -> one label
        per text), and those labels."""
        positions, labels = [], []
        for position, (inference_id, index) in enumerate(self.keys):
            given = ground_truth.get(inference_id)
            if given is not None and index < len(given):
                positions.append(position)
                labels.append(given[index])
        return np.array(positions, dtype=np.int64), labels

    @cached_property
    def features(self) -> TextFeatures:
        """The texts' measurements, made once for every check that needs them."""
        return features(self.texts)


@dataclass
class Violation:
    check: str  # "data_quality", "drift" or "model_quality"
    constraint: str  # e.g. "empty_rate", "embeddings"
    observed: float
    threshold: float
    message: str
    p_value: float | None = None
    examples: list[str] = field(default_factory=list)


@dataclass
class WindowReport:
    records: int
    texts: int
    status: str  # "ok", "violations" or "too_few_records"
    message: str
    data_quality: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    model_quality: dict[str, Any] = field(default_factory=dict)
    #: length and confidence histograms of the window beside the baseline's, on the same bins
    histograms: dict[str, Any] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_window(
    baseline: Baseline,
    window: Window,
    *,
    records: int,
    kinds: Sequence[str] = ("data-quality", "drift"),
    ground_truth: dict[str, tuple[str, ...]] | None = None,
) -> WindowReport:
    constraints = baseline.constraints
    minimum = int(constraints["min_records"])
    n = len(window.texts)
    if n < minimum:
        return WindowReport(
            records,
            n,
            "too_few_records",
            f"{n} texts in the window, fewer than the {minimum} a verdict needs (constraints.min_records): "
            "no drift or quality verdict",
        )
    report = WindowReport(records, n, "ok", "", histograms=_histograms(baseline, window))
    if "data-quality" in kinds:
        _data_quality(baseline, window, report)
    if "drift" in kinds:
        _drift(baseline, window, report)
    if "model-quality" in kinds:
        _model_quality(baseline, window, report, ground_truth or {})
    report.status = "violations" if report.violations else "ok"
    report.message = (
        f"{len(report.violations)} violation(s): " + ", ".join(v.constraint for v in report.violations)
        if report.violations
        else "no violation"
    )
    return report


def _data_quality(baseline: Baseline, window: Window, report: WindowReport) -> None:
    limits = baseline.constraints["data_quality"]
    alpha = float(baseline.constraints["alpha"])
    measured = window.features
    length = limits["length"]
    outside = (measured.chars < length["min_chars"]) | (measured.chars > length["max_chars"])
    for name, flags, limit in (
        ("empty_rate", measured.empty, limits["empty_rate"]["max"]),
        ("garbled_rate", measured.garbled, limits["garbled_rate"]["max"]),
        ("length_outside_rate", outside, length["max_outside_rate"]),
    ):
        count = int(flags.sum())
        rate = count / len(flags)
        p_value = float(stats.binomtest(count, len(flags), min(float(limit), 1.0), "greater").pvalue)
        report.data_quality[name] = {"observed": rate, "max": limit, "p_value": p_value, "count": count}
        if rate > limit and p_value <= alpha:
            examples = [window.texts[i][:200] for i in np.flatnonzero(flags)[:EXAMPLES]]
            report.violations.append(
                Violation(
                    "data_quality",
                    name,
                    rate,
                    float(limit),
                    f"{name} {rate:.1%} is above its maximum {limit:.1%} ({count} of {len(flags)} texts)",
                    p_value,
                    examples,
                )
            )
    observed_oov = oov_rate(window.texts, baseline.vocabulary)
    oov_limit = float(limits["oov_rate"]["max"])
    report.data_quality["oov_rate"] = {"observed": observed_oov, "max": oov_limit}
    if observed_oov > oov_limit:
        report.violations.append(
            Violation(
                "data_quality",
                "oov_rate",
                observed_oov,
                oov_limit,
                f"{observed_oov:.1%} of the words are outside the baseline's vocabulary "
                f"(maximum {oov_limit:.1%})",
                examples=window.texts[:EXAMPLES],
            )
        )


def _drift(baseline: Baseline, window: Window, report: WindowReport) -> None:
    limits = baseline.constraints["drift"]
    tests: dict[str, TestResult] = {}
    if baseline.embeddings is not None and window.embeddings is not None:
        sample = window.embeddings
        if len(sample) > MAX_WINDOW_EMBEDDINGS:
            pick = np.random.default_rng(0).choice(len(sample), MAX_WINDOW_EMBEDDINGS, replace=False)
            sample = sample[pick]
        tests["embeddings"] = mmd_test(baseline.embeddings, sample)
    reference_counts = [
        baseline.statistics["predictions"]["class_counts"][label] for label in baseline.labels
    ]
    window_counts = np.bincount(window.proba.argmax(axis=1), minlength=len(baseline.labels)).tolist()
    tests["predicted_class"] = category_test(reference_counts, window_counts)
    tests["confidence"] = numeric_test(baseline.sample("confidence"), window.proba.max(axis=1))
    tests["length"] = numeric_test(baseline.sample("chars"), window.features.chars)
    for name, result in tests.items():
        report.drift[name] = result.to_dict()
        limit = limits[name]
        drifted = result.p_value <= limit["max_p_value"]
        if name == "predicted_class":
            drifted = drifted and result.effect > limit["max_psi"]
        if drifted:
            report.violations.append(
                Violation(
                    "drift",
                    name,
                    result.effect,
                    float(limit.get("max_psi", limit["max_p_value"])),
                    f"{name} drifted: {result.test} p = {result.p_value:.2g} "
                    f"(at most {limit['max_p_value']}), effect {result.effect:.3f}",
                    result.p_value,
                )
            )


def _model_quality(
    baseline: Baseline, window: Window, report: WindowReport, ground_truth: dict[str, tuple[str, ...]]
) -> None:
    """Accuracy estimated from calibrated confidences (all texts), and where ground truth arrived, the
    true figures with the estimate's error on the same texts."""
    from loopwise.evaluation.metrics import classification_metrics
    from loopwise.monitoring.baseline import calibrated

    limits = baseline.constraints.get("model_quality")
    alpha = float(baseline.constraints["alpha"])
    minimum = int(baseline.constraints["min_records"])
    chance = calibrated(window.proba.max(axis=1), baseline.statistics.get("calibration"))
    found: dict[str, Any] = {"estimated_accuracy": float(chance.mean()), "labelled": 0}
    report.model_quality = found
    positions, truth = window.truth(ground_truth)
    known = set(baseline.labels)
    keep = [i for i, label in enumerate(truth) if label in known]
    found["unknown_labels"] = len(truth) - len(keep)
    positions, truth = positions[keep], [truth[i] for i in keep]
    found["labelled"] = len(truth)
    if truth:
        figures = classification_metrics(truth, window.proba[positions], baseline.labels, bootstrap=0)
        found.update(
            accuracy=figures["accuracy"],
            macro_f1=figures["macro_f1"],
            per_class_f1={name: c["f1"] for name, c in figures["per_class"].items()},
            estimate_on_labelled=float(chance[positions].mean()),
        )
        found["estimate_error"] = found["estimate_on_labelled"] - figures["accuracy"]
    if limits is None:
        found["message"] = "the baseline has no model quality (it was made without a validation split)"
        return
    if len(truth) >= minimum:
        correct = round(found["accuracy"] * len(truth))
        p_value = float(stats.binomtest(correct, len(truth), limits["min_accuracy"], "less").pvalue)
        found["p_value"] = p_value
        if found["accuracy"] < limits["min_accuracy"] and p_value <= alpha:
            report.violations.append(
                Violation(
                    "model_quality",
                    "accuracy",
                    found["accuracy"],
                    float(limits["min_accuracy"]),
                    f"accuracy {found['accuracy']:.1%} on {len(truth)} labelled texts is below its minimum "
                    f"{limits['min_accuracy']:.1%}",
                    p_value,
                )
            )
        if found["macro_f1"] < limits["min_macro_f1"]:
            report.violations.append(
                Violation(
                    "model_quality",
                    "macro_f1",
                    found["macro_f1"],
                    float(limits["min_macro_f1"]),
                    f"macro F1 {found['macro_f1']:.3f} on {len(truth)} labelled texts is below its minimum "
                    f"{limits['min_macro_f1']:.3f}",
                )
            )
    elif found["estimated_accuracy"] < limits["min_accuracy"]:
        report.violations.append(
            Violation(
                "model_quality",
                "estimated_accuracy",
                found["estimated_accuracy"],
                float(limits["min_accuracy"]),
                f"accuracy estimated from calibrated confidences, {found['estimated_accuracy']:.1%}, is "
                f"below the minimum {limits['min_accuracy']:.1%} ({len(truth)} labelled texts so far, "
                f"fewer than {minimum})",
            )
        )


def _histograms(baseline: Baseline, window: Window) -> dict[str, Any]:
    from loopwise.monitoring.baseline import CONFIDENCE_EDGES

    top = max(1, int(baseline.constraints["data_quality"]["length"]["max_chars"]))
    chars_edges = np.append(np.linspace(0, top, 21), np.inf)  # the last bin: longer than the baseline's
    chars = window.features.chars
    return {
        "chars": {
            "edges": [*chars_edges[:-1].tolist(), None],
            "window": np.histogram(chars, chars_edges)[0].tolist(),
            "baseline": np.histogram(baseline.sample("chars"), chars_edges)[0].tolist(),
        },
        "confidence": {
            "edges": CONFIDENCE_EDGES.tolist(),
            "window": np.histogram(window.proba.max(axis=1), CONFIDENCE_EDGES)[0].tolist(),
            "baseline": list(baseline.statistics["predictions"]["confidence_histogram"]),
        },
    }
