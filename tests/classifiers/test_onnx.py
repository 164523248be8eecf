"""The ONNX backend: a fine-tuned transformers classifier exported, then run by ONNX Runtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from contract import LABELS, fit_tiny, synthetic_examples

from loopwise.classifiers import TransformerClassifier, create_classifier, load_classifier
from loopwise.classifiers.onnx import FP32, INT8, OnnxClassifier, export_onnx
from loopwise.errors import CheckpointError, ClassifierError

TEXTS = [
    "I love this product!",
    "OK, but not great.",
    "This is not the right product.",
    "x",
    "a very long review " * 40,  # longer than the sample the model was exported with: truncated to 32
]


@pytest.fixture(scope="module")
def trained(tiny_bert_dir: Path) -> TransformerClassifier:
    return fit_tiny(tiny_bert_dir, 300, 6)


@pytest.fixture(scope="module")
def exported(trained: TransformerClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(trained, tmp_path_factory.mktemp("onnx"), int8=True)


def test_the_exported_model_gives_pytorchs_probabilities(
    trained: TransformerClassifier, exported: Path
) -> None:
    assert {path.name for path in exported.iterdir()} == {FP32, INT8, "tokenizer.json", "classifier.json"}
    onnx = load_classifier(exported)  # by the manifest's backend, fp32
    assert isinstance(onnx, OnnxClassifier) and onnx.labels == LABELS and onnx.precision == "fp32"
    texts = TEXTS + list(synthetic_examples(40, seed=1).texts)
    expected = trained.predict_proba(texts)
    assert len(set(trained.predict(texts))) > 1  # a fitted model, not a uniform guess
    for batch_size in (1, 7, 64):  # batching and padding do not change an answer
        got = onnx.predict_proba(texts, batch_size=batch_size)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert onnx.predict(texts) == trained.predict(texts)
    assert onnx.predict_proba([]).shape == (0, 3)


def test_int8_is_close_to_fp32(exported: Path) -> None:
    fp32 = OnnxClassifier.load(exported)
    int8 = OnnxClassifier.load(exported, precision="int8", threads=1)
    texts = TEXTS + list(synthetic_examples(40, seed=2).texts)
    a, b = fp32.predict_proba(texts), int8.predict_proba(texts)
    np.testing.assert_allclose(b.sum(axis=1), 1.0, atol=1e-9)
    assert np.abs(a - b).max() < 0.05
    assert (exported / INT8).stat().st_size < (exported / FP32).stat().st_size


def test_bad_exports_and_misuse_say_what_to_do(
    trained: TransformerClassifier, exported: Path, tmp_path: Path
) -> None:
    fp32_only = export_onnx(trained, tmp_path / "fp32")
    assert not (fp32_only / INT8).exists()
    with pytest.raises(CheckpointError, match=r"holds no int8 model.*export it again with int8"):
        OnnxClassifier.load(fp32_only, precision="int8")
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / FP32).write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match=r"cannot load .*model\.onnx.*export the classifier again"):
        OnnxClassifier.load(broken)
    (broken / FP32).unlink()
    with pytest.raises(CheckpointError, match=r"model\.onnx is missing"):
        OnnxClassifier.load(broken)
    with pytest.raises(ClassifierError, match="exporting a fine-tuned transformers classifier"):
        create_classifier("onnx", LABELS)
    onnx = OnnxClassifier.load(exported)
    with pytest.raises(ClassifierError, match="only predicts"):
        onnx.fit(synthetic_examples(6, seed=0))


def test_the_export_gives_each_texts_sentence_embedding(
    trained: TransformerClassifier, exported: Path
) -> None:
    onnx = OnnxClassifier.load(exported)
    texts = [*TEXTS, TEXTS[0]]
    proba, embeddings = onnx.predict_with_embeddings(texts, batch_size=2)
    np.testing.assert_allclose(proba, onnx.predict_proba(texts), atol=1e-9)
    assert embeddings is not None and embeddings.shape == (len(texts), 32)  # the tiny BERT's hidden size
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embeddings[0], embeddings[-1], atol=1e-6)
    # the same as mean-pooling PyTorch's last layer over the tokens
    encoded = trained.tokenizer(TEXTS[:3], padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        hidden = trained.model(**encoded, output_hidden_states=True).hidden_states[-1]
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(embeddings[:3], expected, atol=1e-5)
    assert trained.predict_with_embeddings(["x"])[1] is None  # backends without one say so


def test_texts_are_grouped_by_length_so_padding_stays_small() -> None:
    from loopwise.classifiers.onnx import MAX_PADDING, length_groups

    lengths = [10, 80, 82, 85, 120, 30, 31, 128, 90, 12]
    groups = length_groups(lengths, batch_size=3)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))  # each text once
    assert all(len(g) <= 3 for g in groups)
    for group in groups:
        real = sum(lengths[i] for i in group)
        assert max(lengths[i] for i in group) * len(group) <= (1 + MAX_PADDING) * real
    assert [lengths[i] for i in groups[0]] == [10, 12]  # shortest first
    assert length_groups([], 8) == []


def test_an_export_mutes_its_own_thread_only(capsys: pytest.CaptureFixture[str]) -> None:
    """What the exporter prints is dropped, but another thread (the main job beside a server exporting a
    canary) keeps printing meanwhile; stdout is itself again afterwards."""
    import sys
    import threading

    from loopwise.classifiers.onnx import _quiet_exporter

    inside, printed = threading.Event(), threading.Event()

    def export() -> None:
        with _quiet_exporter():
            print("exporter chatter")
            inside.set()
            assert printed.wait(10)

    worker = threading.Thread(target=export)
    before = sys.stdout
    worker.start()
    assert inside.wait(10)
    print("the main job goes on")
    printed.set()
    worker.join(10)
    out = capsys.readouterr().out
    assert "the main job goes on" in out and "exporter chatter" not in out
    assert sys.stdout is before
