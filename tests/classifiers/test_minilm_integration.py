"""Fine-tuning the bundled MiniLM on a balanced slice of the course reviews (slow: about a minute)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from loopwise.classifiers import InMemoryExamples, TrainConfig, TransformerClassifier

pytestmark = pytest.mark.integration

TRAIN_PER_CLASS = 240
TEST_PER_CLASS = 60


def sentiment(rating: int) -> str:
    return "-1" if rating <= 2 else "0" if rating == 3 else "1"


def balanced_slice(path: Path) -> tuple[InMemoryExamples, InMemoryExamples]:
    by_label: dict[str, list[str]] = {"-1": [], "0": [], "1": []}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = (row["Review Text"] or "").strip()
            if text and row["Rating"]:
                by_label[sentiment(int(row["Rating"]))].append(text)
    rng = random.Random(42)
    train, test = [], []
    for label, texts in by_label.items():
        picked = rng.sample(texts, TRAIN_PER_CLASS + TEST_PER_CLASS)
        train += [(text, label) for text in picked[:TRAIN_PER_CLASS]]
        test += [(text, label) for text in picked[TRAIN_PER_CLASS:]]
    rng.shuffle(train)
    return InMemoryExamples(*zip(*train, strict=True)), InMemoryExamples(*zip(*test, strict=True))


def test_fine_tuned_minilm_beats_the_majority_baseline(reviews_csv: Path) -> None:
    train, test = balanced_slice(reviews_csv)
    classifier = TransformerClassifier(["-1", "0", "1"], max_seq_length=64)
    result = classifier.fit(
        train, config=TrainConfig(learning_rate=1e-4, batch_size=16, epochs=2), progress=False
    )

    predicted = classifier.predict(test.texts)
    accuracy = sum(p == t for p, t in zip(predicted, test.labels, strict=True)) / len(test)
    majority = max(test.labels.count(label) for label in set(test.labels)) / len(test)
    speed = result.profile["examples_per_s"]
    print(f"accuracy {accuracy:.3f}, majority {majority:.3f}, {speed:.1f} examples/s")
    assert accuracy >= majority + 0.15, (accuracy, majority)
    assert result.steps == 2 * (3 * TRAIN_PER_CLASS // 16)
    assert result.profile["examples_per_s"] > 0
