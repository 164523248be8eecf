"""The contract every :class:`~loopwise.classifiers.TextClassifier` backend keeps.

A backend's test module subclasses :class:`ClassifierContract`, overrides the class-scoped
``make_classifier`` fixture (a callable ``labels -> unfitted classifier``), names the file that holds its
weights in ``weights_file`` and may adjust ``train_config``. Every test below then runs against it.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopwise.classifiers import (
    InMemoryExamples,
    Reporter,
    TextClassifier,
    TrainConfig,
    load_classifier,
    read_manifest,
)
from loopwise.errors import CheckpointError, ClassifierError

LABELS = ["-1", "0", "1"]
CUES = {
    "-1": ["awful", "terrible", "hate", "returned", "poor"],
    "0": ["okay", "average", "fine", "decent", "alright"],
    "1": ["great", "love", "perfect", "excellent", "gorgeous"],
}
FILLER = ["the", "a", "dress", "fabric", "size", "color", "fit", "it", "was", "and", "this", "top"]


def synthetic_examples(count: int, seed: int) -> InMemoryExamples:
    """Short texts whose label is given away by three cue words among filler: separable, balanced."""
    rng = random.Random(seed)
    texts, labels = [], []
    for index in range(count):
        label = LABELS[index % len(LABELS)]
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 12))]
        for _ in range(3):
            words.insert(rng.randrange(len(words) + 1), rng.choice(CUES[label]))
        texts.append(" ".join(words))
        labels.append(label)
    return InMemoryExamples(texts, labels)


def fit_tiny(base_model: Path, count: int, epochs: int) -> Any:
    """A transformers classifier over ``base_model`` (max_seq_length 32) fine-tuned on ``count``
    synthetic examples on one thread: the reference model of the ONNX tests."""
    import torch

    from loopwise.classifiers import TransformerClassifier

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        classifier = TransformerClassifier(LABELS, base_model=base_model, max_seq_length=32)
        config = TrainConfig(learning_rate=1e-3, epochs=epochs, batch_size=8)
        classifier.fit(synthetic_examples(count, seed=0), config=config)
        return classifier
    finally:
        torch.set_num_threads(threads)


class RecordingReporter(Reporter):
    def __init__(self) -> None:
        self.train_steps: list[dict[str, float]] = []
        self.validations: list[dict[str, float]] = []

    def on_train_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.train_steps.append(metrics)

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.validations.append(metrics)


class ClassifierContract:
    weights_file: str
    train_config = TrainConfig()

    TRAIN = synthetic_examples(300, seed=1)
    VALIDATION = synthetic_examples(60, seed=2)
    TEST = synthetic_examples(90, seed=3)

    @pytest.fixture(scope="class")
    def make_classifier(self) -> Callable[[Sequence[str]], TextClassifier]:
        raise NotImplementedError("a backend's contract test overrides make_classifier")

    @pytest.fixture(scope="class")
    def fitted(self, make_classifier):
        classifier = make_classifier(LABELS)
        reporter = RecordingReporter()
        result = classifier.fit(self.TRAIN, self.VALIDATION, self.train_config, reporter)
        return classifier, result, reporter

    @pytest.fixture(scope="class")
    def saved(self, fitted, tmp_path_factory: pytest.TempPathFactory) -> Path:
        directory = tmp_path_factory.mktemp("saved") / "classifier"
        fitted[0].save(directory)
        return directory

    @pytest.fixture
    def saved_copy(self, saved: Path, tmp_path: Path) -> Path:
        return Path(shutil.copytree(saved, tmp_path / "copy"))

    def test_fit_beats_chance_on_separable_data(self, fitted) -> None:
        classifier = fitted[0]
        predicted = classifier.predict(self.TEST.texts)
        accuracy = np.mean([p == t for p, t in zip(predicted, self.TEST.labels, strict=True)])
        assert accuracy >= 0.8  # chance is 1/3

    def test_fit_reports_and_returns_validation_metrics(self, fitted) -> None:
        _, result, reporter = fitted
        assert {"val_loss", "val_acc", "val_macro_f1"} <= result.metrics.keys()
        assert 0.0 <= result.metrics["val_acc"] <= 1.0
        assert reporter.validations
        assert result.metrics in reporter.validations

    def test_predict_proba_rows_are_distributions(self, fitted) -> None:
        proba = fitted[0].predict_proba(self.TEST.texts[:7], batch_size=3)
        assert proba.shape == (7, 3)
        assert proba.dtype == np.float64
        assert (proba >= 0).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)

    def test_predict_proba_of_no_texts_is_empty(self, fitted) -> None:
        assert fitted[0].predict_proba([]).shape == (0, 3)

    def test_predict_proba_does_not_depend_on_batching(self, fitted) -> None:
        texts = self.TEST.texts[:10]
        np.testing.assert_allclose(
            fitted[0].predict_proba(texts, batch_size=1),
            fitted[0].predict_proba(texts, batch_size=64),
            atol=1e-5,
        )

    def test_predict_gives_label_names(self, fitted) -> None:
        assert set(fitted[0].predict(self.TEST.texts[:30])) <= set(LABELS)

    def test_save_load_round_trip_gives_identical_probabilities(self, fitted, saved: Path) -> None:
        classifier = fitted[0]
        loaded = type(classifier).load(saved)
        dispatched = load_classifier(saved)
        assert type(dispatched) is type(classifier)
        assert loaded.labels == dispatched.labels == LABELS
        expected = classifier.predict_proba(self.TEST.texts)
        np.testing.assert_allclose(loaded.predict_proba(self.TEST.texts), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(dispatched.predict_proba(self.TEST.texts), expected, rtol=0, atol=1e-12)

    def test_manifest_names_backend_and_labels(self, fitted, saved: Path) -> None:
        manifest = read_manifest(saved)
        assert manifest["backend"] == type(fitted[0]).backend
        assert manifest["labels"] == LABELS

    def test_unknown_label_in_training_data_raises(self, make_classifier) -> None:
        data = InMemoryExamples(["good", "bad", "meh"], ["1", "-1", "positive"])
        with pytest.raises(ClassifierError, match="positive"):
            make_classifier(LABELS).fit(data, config=self.train_config)

    def test_truncated_weights_raise_checkpoint_error(self, saved_copy: Path, fitted) -> None:
        weights = saved_copy / self.weights_file
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        with pytest.raises(CheckpointError, match=self.weights_file):
            type(fitted[0]).load(saved_copy)

    def test_missing_weights_raise_checkpoint_error(self, saved_copy: Path) -> None:
        (saved_copy / self.weights_file).unlink()
        with pytest.raises(CheckpointError, match=self.weights_file):
            load_classifier(saved_copy)

    def test_garbage_manifest_raises_checkpoint_error(self, saved_copy: Path) -> None:
        (saved_copy / "classifier.json").write_bytes(b"\x00not json{")
        with pytest.raises(CheckpointError, match=r"classifier\.json"):
            load_classifier(saved_copy)

    def test_loading_a_missing_directory_raises_checkpoint_error(self, fitted, tmp_path: Path) -> None:
        with pytest.raises(CheckpointError, match="does not exist"):
            type(fitted[0]).load(tmp_path / "nowhere")
        with pytest.raises(CheckpointError):
            load_classifier(tmp_path / "nowhere")
