"""Sentence embeddings for labeling: unit vectors that do not depend on their batch, and a job's cache in
the artifact store that encodes each item once per encoder and survives a corrupt file."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopwise.labeling import embeddings
from loopwise.labeling.embeddings import CACHE_FILE, encode, job_embeddings, model_key
from loopwise.storage import Store

TEXTS = ["I love this dress, it fits well", "too small", "The fabric tore after one wash and I sent it back"]


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The texts of every call to :func:`encode` that :func:`job_embeddings` makes."""
    calls: list[list[str]] = []

    def counting(texts: Sequence[str], *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(list(texts))
        return encode(texts, *args, **kwargs)

    monkeypatch.setattr(embeddings, "encode", counting)
    return calls


def _cache(store: Store, job: str, model: Path) -> Path:
    return store.artifacts.local(_key(job, model)) / CACHE_FILE


def _key(job: str, model: Path) -> str:
    return f"labeling/{job}/embeddings/{model_key(model)}"


def _another_model(model: Path, folder: Path) -> Path:
    """A copy of ``model`` whose configuration differs (in a dropout rate, so its vectors do not)."""
    copy = Path(shutil.copytree(model, folder))
    config = (copy / "config.json").read_text(encoding="utf-8")
    (copy / "config.json").write_text(
        config.replace('"hidden_act"', '"hidden_dropout_prob": 0.2, "hidden_act"')
    )
    return copy


def test_vectors_have_unit_length_and_the_models_width(tiny_bert_dir: Path) -> None:
    vectors = encode(TEXTS, tiny_bert_dir)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encode([], tiny_bert_dir).shape == (0, 32)


def test_a_texts_vector_does_not_depend_on_its_batch(tiny_bert_dir: Path) -> None:
    alone = encode(["too small"], tiny_bert_dir)[0]
    longer = [f"{text} " * 20 for text in TEXTS]
    mixed = encode([*longer, "too small", *longer], tiny_bert_dir, batch_size=4)
    assert np.abs(mixed[3] - alone).max() < 1e-5
    # and the batches, sorted by length, come back in input order
    assert np.abs(mixed[0] - encode([longer[0]], tiny_bert_dir)[0]).max() < 1e-5


def test_texts_are_cut_at_max_length(tiny_bert_dir: Path) -> None:
    long = "word " * 50
    cut = encode([long, long + "and then something else entirely"], tiny_bert_dir, max_length=16)
    assert np.abs(cut[0] - cut[1]).max() < 1e-5
    assert encode(["word " * 5000], tiny_bert_dir).shape == (1, 32)  # past the 512 positions: cut there


def test_the_model_key_is_stable_and_tells_models_apart(tiny_bert_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_bert_dir, tmp_path / "copy"))
    assert model_key(tiny_bert_dir) == model_key(copy) and len(model_key(copy)) == 16
    assert model_key(_another_model(tiny_bert_dir, tmp_path / "changed")) != model_key(tiny_bert_dir)


def test_a_second_call_encodes_nothing_and_new_items_only_the_new(
    sqlite_store: Store, tiny_bert_dir: Path, encoded: list[list[str]]
) -> None:
    items = list(enumerate(TEXTS, start=1))
    first = job_embeddings(sqlite_store, "reviews", items, tiny_bert_dir)
    assert encoded == [TEXTS] and _cache(sqlite_store, "reviews", tiny_bert_dir).exists()
    again = job_embeddings(sqlite_store, "reviews", items, tiny_bert_dir)
    assert len(encoded) == 1 and np.array_equal(first, again)
    more = job_embeddings(sqlite_store, "reviews", [*items, (7, "fits like a glove")], tiny_bert_dir)
    assert encoded[1:] == [["fits like a glove"]] and more.shape == (4, 32)
    assert np.array_equal(more[:3], first)
    assert np.abs(more[3] - encode(["fits like a glove"], tiny_bert_dir)[0]).max() < 1e-5


def test_rows_follow_the_order_asked(sqlite_store: Store, tiny_bert_dir: Path) -> None:
    items = list(enumerate(TEXTS, start=1))
    forward = job_embeddings(sqlite_store, "reviews", items, tiny_bert_dir)
    backward = job_embeddings(sqlite_store, "reviews", [(3, TEXTS[2]), (1, TEXTS[0])], tiny_bert_dir)
    assert np.array_equal(backward, forward[[2, 0]])
    assert job_embeddings(sqlite_store, "reviews", [], tiny_bert_dir).shape == (0, 32)


def test_another_model_keeps_its_own_file(
    sqlite_store: Store, tiny_bert_dir: Path, tmp_path: Path, encoded: list[list[str]]
) -> None:
    other = _another_model(tiny_bert_dir, tmp_path / "other")
    items = list(enumerate(TEXTS, start=1))
    job_embeddings(sqlite_store, "reviews", items, tiny_bert_dir)
    job_embeddings(sqlite_store, "reviews", items, other)
    assert encoded == [TEXTS, TEXTS]
    keys = sqlite_store.artifacts.list("labeling/reviews/embeddings")
    assert keys == sorted(_key("reviews", m) for m in (tiny_bert_dir, other))


def test_a_corrupt_cache_is_rebuilt_with_a_warning(
    sqlite_store: Store, tiny_bert_dir: Path, encoded: list[list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    items = list(enumerate(TEXTS, start=1))
    expected = job_embeddings(sqlite_store, "reviews", items, tiny_bert_dir)
    path = _cache(sqlite_store, "reviews", tiny_bert_dir)
    path.write_bytes(path.read_bytes()[:100])  # a file cut short
    with caplog.at_level(logging.WARNING, logger="loopwise.labeling.embeddings"):
        rebuilt = job_embeddings(sqlite_store, "reviews", items, tiny_bert_dir)
    assert "cannot be read" in caplog.text and _key("reviews", tiny_bert_dir) in caplog.text
    assert encoded == [TEXTS, TEXTS] and np.abs(rebuilt - expected).max() < 1e-6
    with np.load(_cache(sqlite_store, "reviews", tiny_bert_dir)) as stored:
        assert stored["ids"].tolist() == [1, 2, 3] and stored["vectors"].dtype == np.float32
    assert not list((sqlite_store.artifacts.root / ".staging").iterdir())  # no staged copy left behind
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.integration
def test_minilm_puts_similar_sentences_closer_than_unrelated_ones() -> None:
    dress, similar, unrelated = encode(
        ["I love this dress, it fits well", "This dress fits me perfectly", "The train to Paris was late"]
    )
    assert float(dress @ similar) > float(dress @ unrelated) + 0.3
