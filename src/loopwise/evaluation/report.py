"""Evaluation and comparison reports on disk: JSON for programs, one self-contained HTML page for people.

``evaluation.json`` keeps the course's shape (``report["metrics"]["accuracy"]["value"]``) and adds the
rest: every scalar metric as ``{"value": ...}`` (with ``"ci95": [low, high]`` where a bootstrap interval
was computed), the per-class scores, the confusion matrix, the reliability table and the caller's context.
Every file is written atomically; the HTML page is written last, so its presence means the report is whole.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from loopwise.errors import DataFormatError
from loopwise.evaluation._files import write_text_atomic
from loopwise.evaluation.metrics import encode_labels, reliability_table
from loopwise.evaluation.plots import confusion_matrix_png, reliability_diagram_png

__all__ = ["EvaluationReport", "write_comparison_report", "write_evaluation_report"]

EVALUATION_JSON = "evaluation.json"
CONFUSION_MATRIX_PNG = "confusion_matrix.png"
RELIABILITY_PNG = "reliability_diagram.png"
EVALUATION_HTML = "report.html"
COMPARISON_JSON = "comparison.json"
COMPARISON_HTML = "comparison.html"

_REQUIRED_KEYS = ("n", "accuracy", "per_class", "confusion_matrix")
_HEADLINE = ("accuracy", "macro_f1", "weighted_f1")
_TITLES = {
    "n": "Rows",
    "accuracy": "Accuracy",
    "macro_f1": "Macro F1",
    "weighted_f1": "Weighted F1",
    "macro_precision": "Macro precision",
    "macro_recall": "Macro recall",
    "log_loss": "Log loss",
    "ece": "Expected calibration error",
    "brier": "Brier score",
    "roc_auc_ovr": "ROC AUC (one-vs-rest, macro)",
}
# Shown in the page's heading, in this order, when the context has them.
_CONTEXT_HEADLINE = ("model", "model_a", "model_b", "dataset", "split", "date", "evaluated_at")


@dataclass(frozen=True)
class EvaluationReport:
    """Where :func:`write_evaluation_report` put each file."""

    json: Path
    confusion_matrix_png: Path
    reliability_png: Path
    html: Path


def write_evaluation_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    *,
    y_true: Sequence[str],
    proba: np.ndarray,
    labels: Sequence[str],
    context: Mapping[str, Any],
) -> EvaluationReport:
    """Write ``evaluation.json``, ``confusion_matrix.png``, ``reliability_diagram.png`` and ``report.html``
    into ``out_dir`` (created if missing; files already there are replaced).

    ``metrics`` is what :func:`~loopwise.evaluation.classification_metrics` returned for ``y_true`` and
    ``proba``; those two are needed again to draw the reliability diagram. ``context`` (model, data set,
    split, date, anything JSON-able; datetimes and paths are written as strings) is copied into the JSON and
    shown on the page. Raises :class:`DataFormatError` when ``metrics`` lacks a key the report needs, or
    when the inputs are inconsistent (see ``classification_metrics``) or the context is not JSON-able.
    """
    missing = [key for key in _REQUIRED_KEYS if key not in metrics]
    if missing:
        raise DataFormatError(
            f"the metrics lack {missing}; pass the dict that classification_metrics() returned"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = encode_labels(y_true, labels)
    bins = int(metrics.get("bootstrap", {}).get("ece_bins", 15))
    reliability = reliability_table(ids, proba, bins)
    generated_at = datetime.now(UTC).isoformat(timespec="seconds")

    cm = metrics["confusion_matrix"]
    title = f"Confusion matrix: {context['model']}" if "model" in context else "Confusion matrix"
    cm_png = confusion_matrix_png(cm["matrix"], cm["labels"], out / CONFUSION_MATRIX_PNG, title=title)
    reliability_png = reliability_diagram_png(ids, proba, out / RELIABILITY_PNG, bins)

    document = evaluation_document(metrics, reliability=reliability, context=context)
    document["generated_at"] = generated_at
    json_path = write_text_atomic(out / EVALUATION_JSON, _dumps(document))

    page = _template("report.html").render(
        title=f"Evaluation of {context['model']}" if "model" in context else "Evaluation",
        headline_context=_headline_context(context),
        context=_display_context(context),
        headline=[
            _metric_row(name, document["metrics"]) for name in _HEADLINE if name in document["metrics"]
        ],
        others=[
            _metric_row(name, document["metrics"])
            for name in document["metrics"]
            if name not in _HEADLINE and name != "n"
        ],
        n=metrics["n"],
        per_class=_per_class_rows(metrics),
        confusion=cm,
        reliability=reliability,
        bootstrap=metrics.get("bootstrap", {}),
        confusion_png=_data_uri(cm_png),
        reliability_png=_data_uri(reliability_png),
        generated_at=generated_at,
    )
    html_path = write_text_atomic(out / EVALUATION_HTML, page)
    return EvaluationReport(
        json=json_path, confusion_matrix_png=cm_png, reliability_png=reliability_png, html=html_path
    )


def evaluation_document(
    metrics: Mapping[str, Any], *, reliability: list[dict[str, Any]], context: Mapping[str, Any]
) -> dict[str, Any]:
    """The content of ``evaluation.json`` (without ``generated_at``)."""
    intervals = metrics.get("intervals", {})
    scalars: dict[str, Any] = {}
    for name, value in metrics.items():
        if _is_scalar(value):
            scalars[name] = {"value": value}
            if name in intervals:
                scalars[name]["ci95"] = list(intervals[name])
    return {
        "metrics": scalars,
        "labels": list(metrics.get("labels", metrics["confusion_matrix"]["labels"])),
        "per_class": metrics["per_class"],
        "roc_auc_per_class": metrics.get("roc_auc_per_class", {}),
        "confusion_matrix": metrics["confusion_matrix"],
        "reliability": reliability,
        "bootstrap": metrics.get("bootstrap", {}),
        "context": dict(context),
    }


def write_comparison_report(
    out_dir: str | Path, comparison: Mapping[str, Any], context: Mapping[str, Any]
) -> Path:
    """Write ``comparison.json`` (``{"comparison": ..., "context": ..., "generated_at": ...}``) and a small
    ``comparison.html`` into ``out_dir``; returns the HTML page's path (the JSON lies beside it).

    ``comparison`` is what :func:`~loopwise.evaluation.paired_comparison` returned. Raises
    :class:`DataFormatError` when it lacks the summary or the context is not JSON-able.
    """
    missing = [
        key for key in ("summary", "name_a", "name_b", "accuracy_a", "accuracy_b") if key not in comparison
    ]
    if missing:
        raise DataFormatError(
            f"the comparison lacks {missing}; pass the dict that paired_comparison() returned"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    document = {"comparison": dict(comparison), "context": dict(context), "generated_at": generated_at}
    write_text_atomic(out / COMPARISON_JSON, _dumps(document))
    page = _template("comparison.html").render(
        title=f"Comparison: {comparison['name_a']} vs {comparison['name_b']}",
        headline_context=_headline_context(context),
        context=_display_context(context),
        c=comparison,
        generated_at=generated_at,
    )
    return write_text_atomic(out / COMPARISON_HTML, page)


# --- internals -------------------------------------------------------------------------------------------


def _is_scalar(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _metric_row(name: str, scalars: Mapping[str, Any]) -> dict[str, Any]:
    entry = scalars[name]
    return {
        "name": name,
        "title": _TITLES.get(name, name),
        "value": entry["value"],
        "ci95": entry.get("ci95"),
    }


def _per_class_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    aucs = metrics.get("roc_auc_per_class", {})
    return [
        {"label": label, **scores, "auc": aucs.get(label)} for label, scores in metrics["per_class"].items()
    ]


def _headline_context(context: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(key, _text(context[key])) for key in _CONTEXT_HEADLINE if key in context]


def _display_context(context: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(key), _text(value)) for key, value in context.items()]


def _text(value: Any) -> str:
    """A context value as shown on the page: strings and dates plain, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date | Path):
        return _json_default(value)
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _dumps(document: Mapping[str, Any]) -> str:
    try:
        return (
            json.dumps(document, indent=2, allow_nan=False, default=_json_default, ensure_ascii=False) + "\n"
        )
    except (TypeError, ValueError) as exc:
        raise DataFormatError(
            f"the report cannot be written as JSON ({exc}); give the context plain strings, numbers, lists "
            "and dicts (NaN and infinity are not allowed)"
        ) from exc


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def _percent(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("loopwise.evaluation", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = _number
    env.filters["percent"] = _percent
    return env


def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)
