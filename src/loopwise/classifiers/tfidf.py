"""The TF-IDF baseline: word 1-2 gram TF-IDF features and a multinomial logistic regression.

Saved with joblib (pickle): load only checkpoints you trust.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from loopwise.classifiers._base import (
    Examples,
    FitResult,
    Reporter,
    TextClassifier,
    TrainConfig,
    Tunable,
    read_manifest,
    write_manifest,
)
from loopwise.classifiers.profiler import StepProfiler
from loopwise.errors import CheckpointError, ClassifierError

ARTIFACT = "tfidf.joblib"
#: examples read per chunk while loading the training data
READ_CHUNK = 10_000


class TfidfClassifier(TextClassifier):
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression with inverse regularisation ``C``.

    Of :class:`TrainConfig` only ``seed`` applies; the data is read whole into memory. Tuning specs may
    search ``C``, ``min_df`` and ``max_features``.
    """

    backend = "tfidf"
    tunable: ClassVar[Mapping[str, Tunable]] = {
        "C": Tunable(float, low=0, low_open=True, help="inverse regularisation strength (higher: less)"),
        "min_df": Tunable(int, low=1, help="drop n-grams found in fewer training texts than this"),
        "max_features": Tunable(
            int, low=1, nullable=True, help="keep only this many most frequent n-grams (null: all)"
        ),
    }

    def __init__(
        self,
        labels: Sequence[str],
        C: float = 1.0,
        max_iter: int = 2000,
        min_df: int = 1,
        max_features: int | None = None,
    ) -> None:
        super().__init__(labels)
        if C <= 0:
            raise ClassifierError(f"C must be positive, got {C}")
        self.options: dict[str, Any] = {
            "C": C,
            "max_iter": max_iter,
            "min_df": min_df,
            "max_features": max_features,
        }
        self.vectorizer: Any = None
        self.model: Any = None

    def fit(
        self,
        train: Examples,
        validation: Examples | None = None,
        config: TrainConfig | None = None,
        reporter: Reporter | None = None,
        *,
        progress: bool | None = None,
    ) -> FitResult:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        config = config or TrainConfig()
        reporter = reporter or Reporter()
        profiler = StepProfiler()
        profiler.start()
        with profiler.phase("data"):
            texts, y = self._read(train)
        if len(set(y)) < 2:
            raise ClassifierError(
                f"the training data holds {len(set(y))} of the labels {self.labels}: "
                "a classifier needs examples of at least two"
            )
        with profiler.phase("optimizer"):
            vectorizer = TfidfVectorizer(
                ngram_range=(1, 2),
                sublinear_tf=True,
                strip_accents="unicode",
                min_df=self.options["min_df"],
                max_features=self.options["max_features"],
            )
            features = vectorizer.fit_transform(texts)
            model = LogisticRegression(
                C=self.options["C"], max_iter=self.options["max_iter"], random_state=config.seed
            )
            model.fit(features, y)
        self.vectorizer, self.model = vectorizer, model
        profiler.step(len(texts))
        metrics: dict[str, float] = {}
        if validation is not None and len(validation):
            with profiler.phase("validation"):
                metrics = self._validate(validation)
            reporter.on_validation(1, 1.0, metrics)
        return FitResult(
            metrics=metrics, profile=profiler.summary(), steps=1, best_step=1 if metrics else None
        )

    def _read(self, examples: Examples) -> tuple[list[str], np.ndarray]:
        texts: list[str] = []
        ids: list[int] = []
        for chunk_texts, chunk_labels in examples.iter_chunks(READ_CHUNK):
            ids.extend(self.label_ids(chunk_labels))
            texts.extend(chunk_texts)
        return texts, np.asarray(ids, dtype=np.int64)

    def _validate(self, validation: Examples) -> dict[str, float]:
        from sklearn.metrics import f1_score, log_loss

        texts, y = self._read(validation)
        proba = self.predict_proba(texts)
        predicted = proba.argmax(axis=1)
        classes = list(range(len(self.labels)))
        return {
            "val_loss": float(log_loss(y, proba, labels=classes)),
            "val_acc": float((predicted == y).mean()),
            "val_macro_f1": float(f1_score(y, predicted, labels=classes, average="macro", zero_division=0)),
        }

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities; ``batch_size`` is ignored (scikit-learn works on the whole input)."""
        if self.model is None:
            raise ClassifierError("this TF-IDF classifier is not fitted: call fit() or load() first")
        result = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        if len(texts):
            # classes_ holds only the label ids seen in training; the other columns stay 0
            result[:, self.model.classes_] = self.model.predict_proba(self.vectorizer.transform(list(texts)))
        return result

    def save(self, directory: Path) -> None:
        import joblib

        if self.model is None:
            raise ClassifierError("this TF-IDF classifier is not fitted: call fit() before save()")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump({"vectorizer": self.vectorizer, "model": self.model}, directory / ARTIFACT)
        write_manifest(directory, self.backend, self.labels, **self.options)

    @classmethod
    def load(cls, directory: Path) -> Self:
        import joblib

        directory = Path(directory)
        manifest = read_manifest(directory)
        options = {
            key: manifest[key] for key in ("C", "max_iter", "min_df", "max_features") if key in manifest
        }
        classifier = cls(manifest["labels"], **options)
        path = directory / ARTIFACT
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: retrain the classifier or re-save it")
        try:
            fitted = joblib.load(path)
            classifier.vectorizer, classifier.model = fitted["vectorizer"], fitted["model"]
        except Exception as exc:  # unpickling fails in many ways: EOFError, UnpicklingError, KeyError, ...
            raise CheckpointError(
                f"{path} is corrupt ({type(exc).__name__}: {exc}): retrain the classifier or re-save it"
            ) from exc
        return classifier
