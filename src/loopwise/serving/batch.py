"""Batch transform: offline inference over a JSON lines file, in the endpoints' contract.

Input lines are ``{"features": [text]}`` (the course's contract) or ``{"text": ...}``; each output line is
``{"probability": p, "predicted_label": l}`` (plus ``probabilities`` per class), in input order. The file
is read and written in chunks, so its size is bounded by the disk, not memory; the output appears whole
or not at all (written beside it, then renamed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from loopwise.errors import DataFormatError

if TYPE_CHECKING:
    from loopwise.registry.records import ModelVersion
    from loopwise.storage import Store

#: texts read and answered at once
CHUNK = 1024


@dataclass(frozen=True)
class Placed:
    """Where a model loaded by :func:`load_placed` runs: the device asked for, the execution provider it
    got (None for backends without ONNX Runtime), the precision it runs in and the fallback warning."""

    device: str
    provider: str | None
    precision: str
    fallback: str | None = None

    @classmethod
    def of(cls, classifier: Any) -> Placed:
        return cls(
            getattr(classifier, "device", "cpu"),
            getattr(classifier, "provider", None),
            getattr(classifier, "precision", "fp32"),
            getattr(classifier, "fallback", None),
        )

    def as_dict(self) -> dict[str, str | None]:
        return {
            "device": self.device,
            "provider": self.provider,
            "precision": self.precision,
            "fallback": self.fallback,
        }


@dataclass(frozen=True)
class BatchOutcome:
    """What :func:`batch_transform` answered and where the model ran."""

    lines: int
    placed: Placed


def load_placed(store: Store, version: ModelVersion, device: str = "auto", precision: str = "auto") -> Any:
    """``version`` as endpoints serve it (its ONNX export for transformers models) on ``device`` in
    ``precision``, the values of ``--device``/``--precision`` (see
    :func:`loopwise.classifiers._providers.onnx_placement`, which raises
    :class:`~loopwise.errors.ConfigurationError`); other backends run on the CPU, their options' spelling
    checked."""
    from loopwise.classifiers._providers import onnx_placement
    from loopwise.classifiers.devices import check_device, check_precision
    from loopwise.registry.exports import serving_dir
    from loopwise.serving.worker import load_for_serving

    if version.backend != "transformers":
        check_device(device), check_precision(precision)
        return load_for_serving(serving_dir(store, version))
    device, precision = onnx_placement(device, precision)
    directory = serving_dir(store, version, precision)  # type: ignore[arg-type]
    return load_for_serving(directory, precision=precision, device=device)


def batch_transform(
    store: Store,
    model_ref: str,
    source: Path,
    target: Path,
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> BatchOutcome:
    """Answer every line of ``source`` into ``target`` with the model (its ONNX export for transformers
    models) on ``device`` in ``precision`` (:func:`load_placed`); returns the lines answered and where the
    model ran. Raises :class:`DataFormatError` naming the first bad line."""
    from loopwise import registry

    with store.uow() as uow:
        version = registry.resolve(uow, model_ref)
    classifier = load_placed(store, version, device, precision)
    partial = target.with_name(target.name + ".partial")
    done = 0
    try:
        with partial.open("wb") as out:
            for texts in _chunks(source):
                proba = classifier.predict_proba(texts, batch_size)
                for row in proba:
                    best = int(row.argmax())
                    label = classifier.labels[best]
                    answer = {
                        "probability": float(row[best]),
                        "predicted_label": int(label) if label.lstrip("-").isdigit() else label,
                        "probabilities": dict(zip(classifier.labels, row.tolist(), strict=True)),
                    }
                    out.write(orjson.dumps(answer) + b"\n")
                done += len(texts)
                if progress is not None:
                    progress(done)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return BatchOutcome(done, Placed.of(classifier))


def count_lines(path: Path) -> int:
    with path.open("rb") as lines:
        return sum(1 for line in lines if line.strip())


def _chunks(source: Path) -> Iterator[list[str]]:
    chunk: list[str] = []
    with source.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            chunk.append(_text(line, number, source))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _text(line: bytes, number: int, source: Path) -> str:
    try:
        record: Any = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise DataFormatError(f"{source} line {number} is not JSON: {exc}") from None
    text = None
    if isinstance(record, dict):
        features = record.get("features")
        if isinstance(features, list) and len(features) == 1:
            text = features[0]
        elif "text" in record:
            text = record["text"]
    if not isinstance(text, str) or not text.strip():
        raise DataFormatError(
            f"{source} line {number}: expected "
            '{"features": [text]} or {"text": ...} with a non-empty text'
        )
    return text
