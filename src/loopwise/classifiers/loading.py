"""Finding classifier backends by name through the ``loopwise.classifiers`` entry point group.

The built-in backends are registered in loopwise's own ``pyproject.toml`` like any plugin; the table
below is only a fallback for a source checkout whose package metadata is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from loopwise.classifiers._base import TextClassifier, read_manifest
from loopwise.errors import ClassifierError

GROUP = "loopwise.classifiers"
BUILTIN = {
    "transformers": "loopwise.classifiers.transformer:TransformerClassifier",
    "tfidf": "loopwise.classifiers.tfidf:TfidfClassifier",
    "onnx": "loopwise.classifiers.onnx:OnnxClassifier",
}


def _registered() -> dict[str, EntryPoint]:
    registered = {entry.name: entry for entry in entry_points(group=GROUP)}
    for name, value in BUILTIN.items():
        registered.setdefault(name, EntryPoint(name=name, value=value, group=GROUP))
    return registered


def available_backends() -> list[str]:
    """The names of every registered backend, built-ins included, sorted."""
    return sorted(_registered())


def classifier_class(backend: str) -> type[TextClassifier]:
    """The :class:`TextClassifier` subclass registered as ``backend``; raises :class:`ClassifierError`
    naming the known backends when there is none, or when it cannot be imported."""
    backends = _registered()
    if backend not in backends:
        raise ClassifierError(
            f"unknown classifier backend {backend!r}: known backends are {', '.join(sorted(backends))} "
            f"(plugins register more under the {GROUP!r} entry point group)"
        )
    target = backends[backend].value
    try:
        loaded = backends[backend].load()
    except (ImportError, AttributeError) as exc:
        raise ClassifierError(f"classifier backend {backend!r} ({target}) cannot be imported: {exc}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, TextClassifier)):
        raise ClassifierError(f"classifier backend {backend!r} ({target}) is not a TextClassifier subclass")
    return loaded


def create_classifier(backend: str, labels: Sequence[str], **options: Any) -> TextClassifier:
    """A new, unfitted classifier of ``backend`` over ``labels``; ``options`` go to its constructor."""
    cls = classifier_class(backend)
    try:
        return cls(labels, **options)
    except TypeError as exc:
        raise ClassifierError(f"bad options for the {backend!r} classifier backend: {exc}") from exc


def load_classifier(directory: str | Path) -> TextClassifier:
    """The classifier saved in ``directory``, by the backend its manifest names.

    Raises :class:`~loopwise.errors.CheckpointError` for a missing or corrupt checkpoint and
    :class:`ClassifierError` when the backend that saved it is not installed.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    return classifier_class(str(manifest["backend"])).load(directory)
