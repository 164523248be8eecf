"""A model version's serving form: its ONNX export, made on first use and cached beside the artifacts.

A transformers model version is served from an ONNX export (``serving/<name>/v<version>/onnx`` in the
artifact store; ``model.int8.onnx`` added when a variant asks for int8, with a report of what int8 did to
accuracy, :data:`QUANTIZATION_REPORT`; ``model.fp16.onnx`` when a GPU variant asks for fp16); any other
backend is served from its checkpoint as it is. An export is built in a staging directory and committed to
the artifact store (replacing the export with fewer precisions), so a reader never sees half of one; hosts
load both from their local copies (:meth:`~loopwise.storage.artifacts.ArtifactStore.local`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopwise._extras import needs_extra
from loopwise.errors import EndpointConfigError
from loopwise.registry.records import ModelVersion

if TYPE_CHECKING:
    from loopwise.classifiers.onnx import Precision
    from loopwise.storage import Store

#: the int8 export's accuracy against PyTorch, written beside it
QUANTIZATION_REPORT = "quantization.json"


def serving_dir(store: Store, version: ModelVersion, precision: Precision = "fp32") -> Path:
    """The directory a variant's workers load for ``version``: its ONNX export for transformers models
    (made on first use and cached beside the artifacts; int8 or fp16 added when asked for, keeping the
    precisions exported before, which other variants' workers may load), the checkpoint itself for other
    backends."""
    version.require_checkpoint()
    if version.backend != "transformers":
        if precision != "fp32":
            raise EndpointConfigError(
                f"model {version.ref} ({version.backend}) has no {precision} form: use precision fp32",
                [("precision", f"{precision} needs a transformers model")],
            )
        return store.artifacts.local_file(version.uri)
    from loopwise.classifiers import read_manifest

    key = export_key(version)
    present: set[str] = set()
    if store.artifacts.exists(key):
        exported = store.artifacts.local(key)
        present = set(read_manifest(exported).get("precisions", ["fp32"]))
        if precision in present:
            return exported  # served as exported: no torch needed (a host with the core alone)
    with needs_extra(f"exporting {version.ref} to ONNX ({precision})"):
        _export(store, version, key, present | {"fp32", precision})
    return store.artifacts.local(key)


def export_key(version: ModelVersion) -> str:
    """The artifact key of a model version's ONNX export."""
    return f"serving/{version.name}/v{version.version}/onnx"


def _export(store: Store, version: ModelVersion, key: str, wanted: set[str]) -> None:
    """Export the transformers checkpoint in the ``wanted`` precisions as artifact ``key``, built in a
    staging directory and committed in place of the export there. Needs torch (``loopwise[train]``)."""
    from loopwise.classifiers.onnx import export_onnx
    from loopwise.classifiers.transformer import TransformerClassifier

    original = TransformerClassifier.load(store.artifacts.local_file(version.uri))
    with store.artifacts.writing(key, replace=True) as staged:
        export_onnx(original, staged, int8="int8" in wanted, fp16="fp16" in wanted)
        if "int8" in wanted:
            _quantization_report(store, version, original, staged)


def quantization_report(directory: Path) -> dict[str, Any] | None:
    """What int8 did to accuracy, measured when the export was made (None when it was not measured)."""
    path = directory / QUANTIZATION_REPORT
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None


def _quantization_report(store: Store, version: ModelVersion, original: Any, directory: Path) -> None:
    """Measure int8 against PyTorch (and fp32 ONNX) on the model's validation split, into the export."""
    from loopwise.classifiers.onnx import OnnxClassifier
    from loopwise.data.splits import read_split

    if version.dataset_version_id is None:
        return
    with store.uow() as uow:
        dataset = uow.datasets.get_by_id(version.dataset_version_id)
    split = "validation" if "validation" in dataset.splits else "test" if "test" in dataset.splits else None
    if split is None:
        return
    texts, labels = read_split(store.artifacts.local_file(dataset.split(split).uri))
    if not texts:
        return
    truth = np.array(labels)
    predictions = {
        "pytorch": original.predict(texts),
        "onnx_fp32": OnnxClassifier.load(directory, "fp32").predict(texts),
        "onnx_int8": OnnxClassifier.load(directory, "int8").predict(texts),
    }
    accuracy = {name: float((np.array(p) == truth).mean()) for name, p in predictions.items()}
    report = {
        "dataset": dataset.ref,
        "split": split,
        "n": len(texts),
        "accuracy": accuracy,
        "int8_change": accuracy["onnx_int8"] - accuracy["pytorch"],
        "int8_agreement_with_pytorch": float(
            (np.array(predictions["onnx_int8"]) == np.array(predictions["pytorch"])).mean()
        ),
    }
    (directory / QUANTIZATION_REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
