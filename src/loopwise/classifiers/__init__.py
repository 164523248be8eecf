"""Text classifiers: the :class:`TextClassifier` contract, its backends and how to find them by name.

``import loopwise.classifiers`` stays cheap: the backends (which import torch or scikit-learn) are
imported on first use of their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopwise.classifiers._base import (
    Examples,
    FitResult,
    InMemoryExamples,
    Reporter,
    TextClassifier,
    TrainConfig,
    read_manifest,
    write_manifest,
)
from loopwise.classifiers.loading import (
    available_backends,
    classifier_class,
    create_classifier,
    load_classifier,
)

if TYPE_CHECKING:
    from loopwise.classifiers.tfidf import TfidfClassifier
    from loopwise.classifiers.transformer import TransformerClassifier

_LAZY = {
    "TransformerClassifier": "loopwise.classifiers.transformer",
    "TfidfClassifier": "loopwise.classifiers.tfidf",
}

__all__ = [
    "Examples",
    "FitResult",
    "InMemoryExamples",
    "Reporter",
    "TextClassifier",
    "TfidfClassifier",
    "TrainConfig",
    "TransformerClassifier",
    "available_backends",
    "classifier_class",
    "create_classifier",
    "load_classifier",
    "read_manifest",
    "write_manifest",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
