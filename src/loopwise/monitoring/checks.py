"""Checking a window of captured traffic against a baseline: data quality constraints and drift tests.

Rates (empty, garbled, text length out of range) are violated only when a one-sided binomial test says the
window's rate is above the constraint at the baseline's ``alpha``, so that a handful of records does not
raise an alarm by chance; drift is a two-sample test per signal (see :mod:`loopwise.monitoring.drift`).
A window with fewer than ``min_records`` texts is reported as such, with no verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from loopwise.monitoring.baseline import Baseline
from loopwise.monitoring.drift import TestResult, category_test, embedding_test, numeric_test
from loopwise.monitoring.window import Window


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
    #: what could not be checked, and why
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_window(
    baseline: Baseline, window: Window, *, kinds: Sequence[str] = ("data-quality", "drift")
) -> WindowReport:
    """The window's checks of ``kinds`` against the baseline's constraints (model quality from the
    ground truth the window was summarized with)."""
    constraints = baseline.constraints
    minimum = int(constraints["min_records"])
    n = window.texts
    records = window.records
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
        _model_quality(baseline, window, report)
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
    n = window.texts
    for name, count, limit, examples in (
        ("empty_rate", window.empty, limits["empty_rate"]["max"], []),
        ("garbled_rate", window.garbled, limits["garbled_rate"]["max"], window.examples["garbled"]),
        (
            "length_outside_rate",
            window.length_outside,
            limits["length"]["max_outside_rate"],
            window.examples["length_outside"],
        ),
    ):
        rate = count / n
        p_value = float(stats.binomtest(count, n, min(float(limit), 1.0), "greater").pvalue)
        report.data_quality[name] = {"observed": rate, "max": limit, "p_value": p_value, "count": count}
        if rate > limit and p_value <= alpha:
            report.violations.append(
                Violation(
                    "data_quality",
                    name,
                    rate,
                    float(limit),
                    f"{name} {rate:.1%} is above its maximum {limit:.1%} ({count} of {n} texts)",
                    p_value,
                    list(examples),
                )
            )
    observed_oov = window.oov_rate
    oov_limit = float(limits["oov_rate"]["max"])
    report.data_quality["oov_rate"] = {"observed": observed_oov, "max": oov_limit, "words": window.words}
    if observed_oov > oov_limit:
        report.violations.append(
            Violation(
                "data_quality",
                "oov_rate",
                observed_oov,
                oov_limit,
                f"{observed_oov:.1%} of the words are outside the baseline's vocabulary "
                f"(maximum {oov_limit:.1%})",
                examples=list(window.examples["oov"]),
            )
        )


def _drift(baseline: Baseline, window: Window, report: WindowReport) -> None:
    limits = baseline.constraints["drift"]
    tests: dict[str, TestResult] = {}
    reference, sample = baseline.embeddings, window.embeddings
    if reference is not None and sample is not None and len(sample) >= 2:
        if sample.shape[1] != reference.shape[1]:
            report.notes.append(
                f"the window's embeddings have {sample.shape[1]} dimensions, the baseline's "
                f"{reference.shape[1]}: another model's, not comparable"
            )
        else:
            tests["embeddings"] = embedding_test(reference, sample)
    reference_counts = [
        baseline.statistics["predictions"]["class_counts"][label] for label in baseline.labels
    ]
    tests["predicted_class"] = category_test(reference_counts, window.class_counts.tolist())
    tests["confidence"] = numeric_test(baseline.sample("confidence"), window.confidence)
    tests["length"] = numeric_test(baseline.sample("chars"), window.chars)
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


def _model_quality(baseline: Baseline, window: Window, report: WindowReport) -> None:
    """Accuracy estimated from calibrated confidences (all texts), and where ground truth arrived, the
    true figures with the estimate's error on the same texts."""
    from loopwise.evaluation.metrics import classification_metrics
    from loopwise.monitoring.baseline import calibrated

    limits = baseline.constraints.get("model_quality")
    alpha = float(baseline.constraints["alpha"])
    minimum = int(baseline.constraints["min_records"])
    calibration = baseline.statistics.get("calibration")
    found: dict[str, Any] = {
        "estimated_accuracy": float(calibrated(window.confidence, calibration).mean()),
        "labelled": len(window.truth),
        "unknown_labels": window.unknown_labels,
    }
    report.model_quality = found
    truth = window.truth
    if truth:
        figures = classification_metrics(truth, window.truth_proba, baseline.labels, bootstrap=0)
        on_labelled = calibrated(window.truth_proba.max(axis=1), calibration)
        found.update(
            accuracy=figures["accuracy"],
            macro_f1=figures["macro_f1"],
            per_class_f1={name: c["f1"] for name, c in figures["per_class"].items()},
            estimate_on_labelled=float(on_labelled.mean()),
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
    chars = window.chars
    return {
        "chars": {
            "edges": [*chars_edges[:-1].tolist(), None],
            "window": np.histogram(chars, chars_edges)[0].tolist(),
            "baseline": np.histogram(baseline.sample("chars"), chars_edges)[0].tolist(),
        },
        "confidence": {
            "edges": CONFIDENCE_EDGES.tolist(),
            "window": np.histogram(window.confidence, CONFIDENCE_EDGES)[0].tolist(),
            "baseline": list(baseline.statistics["predictions"]["confidence_histogram"]),
        },
    }
