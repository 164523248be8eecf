"""Baselines: what training data and the model's answers on it look like, and the constraints that traffic
is checked against.

A baseline is a folder: ``statistics.json`` (text lengths, empty / garbled / out-of-vocabulary rates,
predicted classes, confidences), ``constraints.json`` (suggested from the statistics; edit it to tighten
or loosen a check), ``vocabulary.json`` and ``embeddings.npy`` (a reference sample of the model's sentence
embeddings, where the model has them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loopwise.errors import DataFormatError
from loopwise.evaluation._files import write_bytes_atomic, write_text_atomic
from loopwise.monitoring.text import TextFeatures, features, oov_rate, vocabulary

STATISTICS, CONSTRAINTS, VOCABULARY, EMBEDDINGS = (
    "statistics.json",
    "constraints.json",
    "vocabulary.json",
    "embeddings.npy",
)
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: confidence histograms: ten bins over [0, 1]
CONFIDENCE_EDGES = np.linspace(0.0, 1.0, 11)


@dataclass
class Baseline:
    statistics: dict[str, Any]
    constraints: dict[str, Any]
    vocabulary: frozenset[str]
    #: the reference sample of sentence embeddings (None when the model has none)
    embeddings: np.ndarray | None
    directory: Path

    @property
    def labels(self) -> list[str]:
        return list(self.statistics["predictions"]["labels"])

    def sample(self, name: str) -> np.ndarray:
        """A reference sample kept in the statistics (``confidence`` or ``chars``)."""
        return np.asarray(self.statistics["samples"][name], dtype=np.float64)


def summarize(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"count": 0}
    return {
        "count": len(values),
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
        "quantiles": {f"p{round(q * 100):02d}": float(np.quantile(values, q)) for q in QUANTILES},
    }


def compute(
    texts: Sequence[str],
    proba: np.ndarray,
    labels: Sequence[str],
    embeddings: np.ndarray | None,
    *,
    source: dict[str, Any],
    evaluation: tuple[Sequence[str], np.ndarray] | None = None,
    reference_size: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any], list[str], np.ndarray | None]:
    """Statistics, suggested constraints, vocabulary and the embedding reference: of the text from
    ``texts``, of the model's answers from ``proba`` (and ``embeddings``), its answers on texts it did not
    learn from (``texts`` themselves, or held-out texts of the same kind when ``texts`` trained the model:
    a model is surer of its training data than of traffic, and a baseline of those answers flags every
    window). ``evaluation``: the true labels and the model's probabilities on held-out data (a validation
    split), for the model's quality and the calibration that estimates accuracy from confidences while
    traffic has no ground truth yet."""
    if len(texts) < 20:
        raise DataFormatError(f"a baseline needs at least 20 texts; got {len(texts)}")
    if len(proba) < 20:
        raise DataFormatError(f"a baseline needs the model's answers on at least 20 texts; got {len(proba)}")
    rng = np.random.default_rng(seed)
    measured = features(texts)
    # the vocabulary comes from 80% of the texts and the reference out-of-vocabulary rate from the rest,
    # so that the rate is what unseen text of the same kind shows
    order = rng.permutation(len(texts))
    cut = int(len(texts) * 0.8)
    vocab = vocabulary(texts[i] for i in order[:cut])
    reference_oov = oov_rate((texts[i] for i in order[cut:]), frozenset(vocab))
    confidence = proba.max(axis=1)
    keep = np.sort(rng.choice(len(proba), size=min(reference_size, len(proba)), replace=False))
    keep_texts = np.sort(rng.choice(len(texts), size=min(reference_size, len(texts)), replace=False))
    text = _text_statistics(measured, reference_oov)
    statistics = {
        "source": source,
        "count": len(texts),
        "answers_count": len(proba),
        "text": text,
        "predictions": _prediction_statistics(proba, labels),
        "embeddings": None
        if embeddings is None
        else {"count": len(keep), "dimension": int(embeddings.shape[1]), "file": EMBEDDINGS},
        "samples": {
            "confidence": confidence[keep].round(6).tolist(),
            "chars": measured.chars[keep_texts].tolist(),
        },
    }
    constraints = _constraints(measured, text["chars"], reference_oov)
    if evaluation is not None:
        quality, calibration = _model_quality(evaluation[0], evaluation[1], labels)
        statistics["model_quality"] = quality
        statistics["calibration"] = calibration
        constraints["model_quality"] = {
            "min_accuracy": round(max(0.0, quality["accuracy"] - 0.05), 4),
            "min_macro_f1": round(max(0.0, quality["macro_f1"] - 0.05), 4),
        }
    reference = None if embeddings is None else np.asarray(embeddings[keep], dtype=np.float32)
    return statistics, constraints, vocab, reference


def _text_statistics(measured: TextFeatures, reference_oov: float) -> dict[str, Any]:
    """The text's lengths and its empty, garbled and out-of-vocabulary rates."""
    return {
        "chars": summarize(measured.chars),
        "words": summarize(measured.words),
        "empty_rate": float(measured.empty.mean()),
        "garbled_rate": float(measured.garbled.mean()),
        "oov_rate": reference_oov,
    }


def _prediction_statistics(proba: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """The model's answers: its predicted classes and its confidence."""
    counts = np.bincount(proba.argmax(axis=1), minlength=len(labels))
    confidence = proba.max(axis=1)
    return {
        "labels": list(labels),
        "class_counts": {label: int(n) for label, n in zip(labels, counts, strict=True)},
        "class_distribution": {label: float(n / len(proba)) for label, n in zip(labels, counts, strict=True)},
        "confidence": summarize(confidence),
        "confidence_histogram": np.histogram(confidence, CONFIDENCE_EDGES)[0].tolist(),
    }


def _constraints(measured: TextFeatures, chars: dict[str, Any], reference_oov: float) -> dict[str, Any]:
    """The suggested constraints on data quality and drift (model quality's are added by the caller)."""
    return {
        "min_records": 50,
        "alpha": 0.01,
        "data_quality": {
            "empty_rate": {"max": round(max(0.01, 2 * float(measured.empty.mean())), 4)},
            "garbled_rate": {"max": round(max(0.02, 2 * float(measured.garbled.mean())), 4)},
            "oov_rate": {"max": round(min(1.0, max(0.05, 2 * reference_oov)), 4)},
            "length": {
                "min_chars": int(chars["quantiles"]["p01"]),
                "max_chars": int(np.ceil(chars["quantiles"]["p99"] * 1.25)),
                "max_outside_rate": 0.05,
            },
        },
        "drift": {
            "embeddings": {"max_p_value": 0.01},
            "predicted_class": {"max_p_value": 0.01, "max_psi": 0.2},
            "confidence": {"max_p_value": 0.01},
            "length": {"max_p_value": 0.01},
        },
    }


def _model_quality(
    truth: Sequence[str], proba: np.ndarray, labels: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's figures on held-out data, and an isotonic map from top-class confidence to the chance
    of being right (kept as its breakpoints), fitted on the same data."""
    from sklearn.isotonic import IsotonicRegression

    from loopwise.evaluation.metrics import classification_metrics

    figures = classification_metrics(truth, proba, labels, bootstrap=0)
    confidence = proba.max(axis=1)
    correct = (np.array(labels)[proba.argmax(axis=1)] == np.array(truth)).astype(float)
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(confidence, correct)
    quality = {
        "n": figures["n"],
        "accuracy": figures["accuracy"],
        "macro_f1": figures["macro_f1"],
        "per_class_f1": {name: c["f1"] for name, c in figures["per_class"].items()},
    }
    calibration = {
        "method": "isotonic",
        "x": [float(v) for v in isotonic.X_thresholds_],
        "y": [float(v) for v in isotonic.y_thresholds_],
    }
    return quality, calibration


def calibrated(confidence: np.ndarray, calibration: dict[str, Any] | None) -> np.ndarray:
    """The chance of being right for each top-class ``confidence`` (the confidence itself without a
    calibration)."""
    if not calibration or not calibration.get("x"):
        return np.asarray(confidence, dtype=np.float64)
    return np.interp(confidence, calibration["x"], calibration["y"])


def save(
    directory: Path,
    statistics: dict[str, Any],
    constraints: dict[str, Any],
    vocab: list[str],
    embeddings: np.ndarray | None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if embeddings is not None:
        import io

        buffer = io.BytesIO()
        np.save(buffer, embeddings)
        write_bytes_atomic(directory / EMBEDDINGS, buffer.getvalue())
    write_text_atomic(directory / VOCABULARY, json.dumps(vocab))
    write_text_atomic(directory / CONSTRAINTS, json.dumps(constraints, indent=2) + "\n")
    write_text_atomic(directory / STATISTICS, json.dumps(statistics, indent=2) + "\n")
    return directory


def load(directory: Path) -> Baseline:
    """The baseline in ``directory``; :class:`DataFormatError` naming the file when one is missing or
    not valid (an edited ``constraints.json`` included)."""
    documents = {}
    for name in (STATISTICS, CONSTRAINTS, VOCABULARY):
        path = directory / name
        try:
            documents[name] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataFormatError(f"{path} is missing: make the baseline again") from None
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
    check_constraints(documents[CONSTRAINTS], directory / CONSTRAINTS)
    embeddings = np.load(directory / EMBEDDINGS) if (directory / EMBEDDINGS).exists() else None
    return Baseline(
        documents[STATISTICS], documents[CONSTRAINTS], frozenset(documents[VOCABULARY]), embeddings, directory
    )


def check_constraints(constraints: Any, where: Path) -> None:
    """Refuse an edited constraints file whose thresholds are missing or not numbers in range."""
    problems = []
    paths = [
        ("min_records",),
        ("alpha",),
        ("data_quality", "empty_rate", "max"),
        ("data_quality", "garbled_rate", "max"),
        ("data_quality", "oov_rate", "max"),
        ("data_quality", "length", "min_chars"),
        ("data_quality", "length", "max_chars"),
        ("data_quality", "length", "max_outside_rate"),
        ("drift", "embeddings", "max_p_value"),
        ("drift", "predicted_class", "max_p_value"),
        ("drift", "predicted_class", "max_psi"),
        ("drift", "confidence", "max_p_value"),
        ("drift", "length", "max_p_value"),
    ]
    for path in paths:
        value: Any = constraints
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        name = ".".join(path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{name} must be a number (got {value!r})")
        elif value < 0 or (path[-1] in ("max", "alpha", "max_p_value", "max_outside_rate") and value > 1):
            problems.append(f"{name} is out of range: {value}")
    quality = constraints.get("model_quality") if isinstance(constraints, dict) else None
    if quality is not None:
        for key in ("min_accuracy", "min_macro_f1"):
            value = quality.get(key) if isinstance(quality, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                problems.append(f"model_quality.{key} must be a number from 0 to 1 (got {value!r})")
    if problems:
        raise DataFormatError(f"{where}: " + "; ".join(problems))
