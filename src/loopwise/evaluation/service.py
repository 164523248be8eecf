"""Evaluating registered models (or saved classifier directories) on a data set split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopwise import registry
from loopwise.classifiers import TextClassifier, load_classifier
from loopwise.data.records import DatasetVersion
from loopwise.data.splits import read_split
from loopwise.data.versions import parse_dataset_ref
from loopwise.errors import DataError, DataFormatError
from loopwise.evaluation.compare import paired_comparison
from loopwise.evaluation.metrics import classification_metrics
from loopwise.evaluation.records import EvaluationRecord
from loopwise.evaluation.report import EvaluationReport, write_comparison_report, write_evaluation_report
from loopwise.registry.records import ModelVersion

if TYPE_CHECKING:
    from loopwise.storage import Store

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class LoadedModel:
    ref: str
    classifier: TextClassifier
    version: ModelVersion | None


@dataclass(frozen=True)
class EvaluationOutcome:
    record: EvaluationRecord
    report: EvaluationReport
    metrics: dict[str, Any]
    #: the data set version evaluated on (NAME:VERSION)
    dataset: str = ""


@dataclass(frozen=True)
class ComparisonOutcome:
    comparison: dict[str, Any]
    path: Path


def load_model(store: Store, ref: str, *, device: str = "cpu", precision: str = "fp32") -> LoadedModel:
    """A registry reference (``name``, ``name:3``, ``name@alias``) or a saved classifier directory, set
    to predict on ``device`` in ``precision`` (see :meth:`TextClassifier.use_device`)."""
    if Path(ref).expanduser().is_dir():
        loaded = LoadedModel(ref, load_classifier(Path(ref).expanduser()), None)
    else:
        with store.uow() as uow:
            version = registry.resolve(uow, ref)
        version.require_checkpoint()
        loaded = LoadedModel(version.ref, load_classifier(store.artifacts.local_file(version.uri)), version)
    loaded.classifier.use_device(device, precision)
    return loaded


def predict_split(
    store: Store,
    model: LoadedModel,
    dataset: DatasetVersion,
    split: str,
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> tuple[list[str], np.ndarray]:
    """True labels and predicted probabilities (columns in the classifier's label order) of a split."""
    texts, labels = read_split(store.artifacts.local_file(dataset.split(split).uri))
    unknown = sorted(set(labels) - set(model.classifier.labels))
    if unknown:
        raise DataFormatError(
            f"split {split!r} of {dataset.ref} has labels {unknown} that model {model.ref} does not know "
            f"(it knows {model.classifier.labels}); evaluate on a data set with the same labels"
        )
    chunk = max(batch_size * 8, 256)
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(model.classifier.predict_proba(texts[start : start + chunk], batch_size=batch_size))
        if progress is not None:
            progress(min(start + chunk, len(texts)), len(texts))
    proba = np.concatenate(parts) if parts else np.zeros((0, len(model.classifier.labels)))
    return labels, proba


def _dataset(store: Store, ref: str | None, model: LoadedModel) -> DatasetVersion:
    """The data set ``ref`` names, or (``ref`` None) the version the model was trained on."""
    if ref is not None:
        name, version = parse_dataset_ref(ref)
        with store.uow() as uow:
            return uow.datasets.get(name, version)
    if model.version is None or model.version.dataset_version_id is None:
        raise DataError(
            f"model {model.ref} does not record the data set it was trained on: name one with --dataset"
        )
    with store.uow() as uow:
        return uow.datasets.get_by_id(model.version.dataset_version_id)


def _default_key(what: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    safe = what.replace(":", "-v").replace("@", "-").replace("/", "_")
    return f"evaluations/{safe}-{stamp}"


def _write_report(
    store: Store, out_dir: Path | None, what: str, write: Callable[[Path], EvaluationReport]
) -> tuple[EvaluationReport, str]:
    """The report ``write`` makes in ``out_dir``, or (None) committed to the artifact store under
    ``evaluations/``; with the report page's URI."""
    if out_dir is not None:
        report = write(out_dir)
        return report, report.html.resolve().as_uri()
    key = _default_key(what)
    report = store.artifacts.write_with(key, write)  # its paths: this host's copy of the files
    return report, store.artifacts.uri(key, report.html.name)


def evaluate(
    store: Store,
    model_ref: str,
    dataset_ref: str | None = None,
    split: str = "test",
    *,
    out_dir: Path | None = None,
    batch_size: int = 64,
    bootstrap: int = 1000,
    progress: Progress | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> EvaluationOutcome:
    """Predict every example of the split, compute the metrics, write the report, store the evaluation.
    ``dataset_ref`` None: the data set the model was trained on (its lineage). The model predicts on
    ``device`` in ``precision`` (``auto`` for either resolves on this machine)."""
    model = load_model(store, model_ref, device=device, precision=precision)
    dataset = _dataset(store, dataset_ref, model)
    y_true, proba = predict_split(store, model, dataset, split, batch_size=batch_size, progress=progress)
    metrics = classification_metrics(y_true, proba, model.classifier.labels, bootstrap=bootstrap)
    context = {
        "model": model.ref,
        "dataset": dataset.ref,
        "split": split,
        "examples": len(y_true),
        "evaluated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    report, report_uri = _write_report(
        store,
        out_dir,
        f"{model.ref}-{dataset.ref}-{split}",
        lambda folder: write_evaluation_report(
            folder, metrics, y_true=y_true, proba=proba, labels=model.classifier.labels, context=context
        ),
    )
    headline = {
        f"{split}_{key}": metrics[key]
        for key in ("accuracy", "macro_f1", "weighted_f1", "log_loss", "ece")
        if metrics.get(key) is not None
    }
    with store.uow() as uow:
        record = uow.evaluations.add(
            model_ref=model.ref,
            model_version_id=model.version.id if model.version else None,
            dataset_version_id=dataset.id,
            split=split,
            metrics=headline,
            report_uri=report_uri,
        )
        if model.version is not None:
            uow.models.update_metrics(model.version.id, headline)
    return EvaluationOutcome(record, report, metrics, dataset.ref)


def compare(
    store: Store,
    model_a: str,
    model_b: str,
    dataset_ref: str | None = None,
    split: str = "test",
    *,
    out_dir: Path | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
    alpha: float = 0.05,
    device: str = "cpu",
    precision: str = "fp32",
) -> ComparisonOutcome:
    """Paired comparison of two models on the same examples (McNemar and paired bootstrap at
    ``alpha``), both predicting on ``device`` in ``precision``. ``dataset_ref`` None: the data set the
    first model was trained on."""
    first = load_model(store, model_a, device=device, precision=precision)
    second = load_model(store, model_b, device=device, precision=precision)
    dataset = _dataset(store, dataset_ref, first)
    y_true, proba_a = predict_split(store, first, dataset, split, batch_size=batch_size, progress=progress)
    _, proba_b = predict_split(store, second, dataset, split, batch_size=batch_size, progress=progress)
    pred_a = [first.classifier.labels[i] for i in proba_a.argmax(axis=1)]
    pred_b = [second.classifier.labels[i] for i in proba_b.argmax(axis=1)]
    comparison = paired_comparison(y_true, pred_a, pred_b, name_a=first.ref, name_b=second.ref, alpha=alpha)
    context = {"model_a": first.ref, "model_b": second.ref, "dataset": dataset.ref, "split": split}
    if out_dir is not None:
        return ComparisonOutcome(comparison, write_comparison_report(out_dir, comparison, context))
    key = _default_key(f"compare-{first.ref}-{second.ref}-{dataset.ref}-{split}")
    path = store.artifacts.write_with(
        key, lambda folder: write_comparison_report(folder, comparison, context)
    )
    return ComparisonOutcome(comparison, path)
