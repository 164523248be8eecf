"""The classifier contract run against every built-in backend, and finding backends by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from contract import LABELS, ClassifierContract

import loopwise.classifiers
from loopwise.classifiers import (
    TextClassifier,
    TfidfClassifier,
    TrainConfig,
    TransformerClassifier,
    available_backends,
    classifier_class,
    create_classifier,
)
from loopwise.errors import ClassifierError


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two spinning
    threads sometimes made a 0.6 s fit take 10 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TestTransformerContract(ClassifierContract):
    weights_file = "model.safetensors"
    train_config = TrainConfig(learning_rate=1e-3, epochs=6, batch_size=8)

    @pytest.fixture(scope="class")
    def make_classifier(self, tiny_bert_dir: Path):
        return lambda labels: TransformerClassifier(labels, base_model=tiny_bert_dir, max_seq_length=32)


class TestTfidfContract(ClassifierContract):
    weights_file = "tfidf.joblib"

    @pytest.fixture(scope="class")
    def make_classifier(self):
        return lambda labels: TfidfClassifier(labels)


def test_builtin_backends_are_found_by_name() -> None:
    assert {"transformers", "tfidf"} <= set(available_backends())
    assert classifier_class("transformers") is TransformerClassifier
    assert classifier_class("tfidf") is TfidfClassifier


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(ClassifierError, match=r"unknown classifier backend 'svm'.*tfidf.*transformers"):
        classifier_class("svm")


def test_create_classifier_passes_options() -> None:
    classifier = create_classifier("tfidf", LABELS, C=2.5)
    assert isinstance(classifier, TfidfClassifier)
    assert classifier.options["C"] == 2.5
    with pytest.raises(ClassifierError, match="bad options"):
        create_classifier("tfidf", LABELS, learning_rat=0.1)


def test_transformer_label_ids_follow_the_order_of_labels(tiny_bert_dir: Path) -> None:
    classifier = TransformerClassifier(["1", "-1", "0"], base_model=tiny_bert_dir)
    assert classifier.model.config.label2id == {"1": 0, "-1": 1, "0": 2}
    assert classifier.model.config.num_labels == 3
    assert classifier.tokenizer.is_fast


def test_transformer_with_an_unloadable_base_model_says_which_path(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ClassifierError, match=str(tmp_path)) as info:
        TransformerClassifier(LABELS, base_model=tmp_path)
    assert "base_model" in str(info.value)


def test_public_names_are_exported() -> None:
    for name in loopwise.classifiers.__all__:
        assert getattr(loopwise.classifiers, name) is not None
    assert issubclass(loopwise.classifiers.TfidfClassifier, TextClassifier)


def test_importing_the_package_does_not_import_torch_or_sklearn() -> None:
    code = "import sys, loopwise.classifiers; print('torch' in sys.modules, 'sklearn' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False", "False"]
