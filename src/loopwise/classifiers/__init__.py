"""Text classifiers: the :class:`TextClassifier` contract, its backends and how to find them by name.

``import loopwise.classifiers`` stays cheap: the backends (which import torch or scikit-learn) are
imported on first use of their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopwise._lazy import lazy_exports
from loopwise.classifiers._base import (
    Examples,
    FitResult,
    InMemoryExamples,
    Reporter,
    TextClassifier,
    TrainConfig,
    Tunable,
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
    "TransformerClassifier": "transformer",
    "TfidfClassifier": "tfidf",
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
    "Tunable",
    "available_backends",
    "classifier_class",
    "create_classifier",
    "load_classifier",
    "read_manifest",
    "write_manifest",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
