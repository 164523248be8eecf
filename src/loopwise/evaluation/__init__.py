"""Evaluating classifiers: metrics with bootstrap intervals, paired comparisons, figures and reports.

The modules here are pure (arrays and dicts in, files out); storing evaluations is ``evaluation.service``'s
job. Names load lazily, so the storage layer can import ``evaluation.records`` without numpy or matplotlib.
"""

from __future__ import annotations

from loopwise._lazy import lazy_exports

_LAZY = {
    "paired_comparison": "compare",
    "classification_metrics": "metrics",
    "encode_labels": "metrics",
    "expected_calibration_error": "metrics",
    "reliability_table": "metrics",
    "confusion_matrix_png": "plots",
    "reliability_diagram_png": "plots",
    "training_curves_png": "plots",
    "EvaluationRecord": "records",
    "EvaluationReport": "report",
    "write_comparison_report": "report",
    "write_evaluation_report": "report",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
