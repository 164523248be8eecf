"""Other base models: the BERT, RoBERTa, DistilBERT and DeBERTa-v2 families fine-tune, save, load, predict
and export to ONNX, each from a tiny random configuration and a tokenizer built here (nothing is
downloaded); and a base model that cannot be had says so in one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from contract import LABELS, synthetic_examples

from loopwise.classifiers import TrainConfig, TransformerClassifier, load_classifier
from loopwise.classifiers.onnx import OnnxClassifier, export_onnx
from loopwise.classifiers.transformer import resolve_base_model
from loopwise.errors import ClassifierError

#: the texts the tokenizers learn their vocabularies from
CORPUS = [*synthetic_examples(300, seed=7).texts, "an example", "a second, longer example", "x"]
SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def _fast(tokenizer: Any, **special: str) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)


def _bert_style(tokenizer: Any) -> Any:
    """``tokenizer`` (trained with [PAD] [CLS] [SEP] [UNK] [MASK]) framing texts as [CLS] text [SEP]."""
    from tokenizers import processors

    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    specials = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]"}
    return _fast(tokenizer, mask_token="[MASK]", **specials)


def wordpiece() -> Any:
    """A BERT-style WordPiece tokenizer: [CLS] text [SEP]."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials))
    return _bert_style(tokenizer)


def byte_bpe() -> Any:
    """A RoBERTa-style byte-level BPE tokenizer: <s> text </s>, padded with <pad> (id 1)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>"))
    )
    return _fast(
        tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
    )


def unigram() -> Any:
    """A DeBERTa-v3-style unigram (SentencePiece-like) tokenizer with a metaspace pre-tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    trainer = trainers.UnigramTrainer(vocab_size=150, special_tokens=specials, unk_token="[UNK]")
    tokenizer.train_from_iterator(CORPUS, trainer)
    return _bert_style(tokenizer)


def bert(tokenizer: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer), max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, **SIZES
    )


def roberta(tokenizer: Any) -> Any:
    from transformers import RobertaConfig

    # positions start after the pad id (2 + 64 = 66 embeddings for 64 tokens), as roberta-base's 514 do
    return RobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=66,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
        **SIZES,
    )


def distilbert(tokenizer: Any) -> Any:
    from transformers import DistilBertConfig

    return DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
    )


def deberta_v2(tokenizer: Any) -> Any:
    from transformers import DebertaV2Config

    # DeBERTa-v3's layout: relative attention only (no absolute positions, no token types)
    return DebertaV2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        relative_attention=True,
        position_buckets=16,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
        **SIZES,
    )


FAMILIES: dict[str, tuple[Callable[[Any], Any], Callable[[], Any]]] = {
    "bert": (bert, wordpiece),
    "roberta": (roberta, byte_bpe),
    "distilbert": (distilbert, wordpiece),
    "deberta-v2": (deberta_v2, unigram),
}


def tiny_model_dir(family: str, directory: Path) -> Path:
    """A tiny random ``family`` encoder and its tokenizer saved with ``save_pretrained`` in ``directory``."""
    from transformers import AutoModel

    config_of, tokenizer_of = FAMILIES[family]
    tokenizer = tokenizer_of()
    torch.manual_seed(0)
    AutoModel.from_config(config_of(tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_fine_tunes_saves_loads_predicts_and_exports(family: str, tmp_path: Path) -> None:
    base = tiny_model_dir(family, tmp_path / "base")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        classifier = TransformerClassifier(LABELS, base_model=base, max_seq_length=32)
        before = classifier.predict_proba(list(synthetic_examples(30, seed=1).texts))
        result = classifier.fit(
            synthetic_examples(150, seed=0), config=TrainConfig(learning_rate=1e-3, epochs=2, batch_size=8)
        )
    finally:
        torch.set_num_threads(threads)
    assert result.steps == 38
    texts = [*synthetic_examples(30, seed=1).texts, "x", "a very long review " * 40]
    trained = classifier.predict_proba(texts)
    assert not np.allclose(trained[:30], before, atol=1e-4)  # fine-tuning changed the model
    np.testing.assert_allclose(trained.sum(axis=1), 1.0, atol=1e-9)

    classifier.save(tmp_path / "saved")
    loaded = load_classifier(tmp_path / "saved")
    assert isinstance(loaded, TransformerClassifier) and loaded.labels == LABELS
    assert loaded.base_model == str(base)
    np.testing.assert_allclose(loaded.predict_proba(texts), trained, atol=1e-6)

    exported = export_onnx(loaded, tmp_path / "onnx", int8=True)
    onnx = OnnxClassifier.load(exported)
    for batch_size in (1, 7):  # padding within a batch does not change an answer
        np.testing.assert_allclose(onnx.predict_proba(texts, batch_size=batch_size), trained, atol=1e-5)
    proba, embeddings = onnx.predict_with_embeddings(texts)
    np.testing.assert_allclose(proba, trained, atol=1e-5)
    assert embeddings is not None and embeddings.shape == (len(texts), 32)
    assert OnnxClassifier.load(exported, "int8").predict_proba(texts).shape == (len(texts), 3)


def test_an_input_longer_than_the_position_embeddings_is_refused_with_the_limit(tmp_path: Path) -> None:
    base = tiny_model_dir("roberta", tmp_path / "base")
    with pytest.raises(ClassifierError, match=r"longer than .* takes \(64 tokens\).*--max-seq-length 64"):
        TransformerClassifier(LABELS, base_model=base, max_seq_length=128)
    assert TransformerClassifier(LABELS, base_model=base, max_seq_length=64).max_seq_length == 64


def test_a_hub_id_offline_and_not_cached_says_how_to_point_at_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ClassifierError) as raised:
        TransformerClassifier(LABELS, base_model="roberta-base")
    message = str(raised.value)
    assert "\n" not in message
    assert "'roberta-base'" in message and "not in the local cache" in message and "offline" in message
    assert "--base-model a local directory" in message


def test_a_missing_directory_or_a_file_is_not_taken_for_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(ClassifierError, match="no such directory, and not a hub id"):
        resolve_base_model(str(tmp_path / "nowhere"))
    with pytest.raises(ClassifierError, match="no such directory"):
        resolve_base_model("./models/mine")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ClassifierError, match="a file, not a model directory"):
        resolve_base_model(weights)
    assert resolve_base_model(tmp_path) == tmp_path


def test_online_a_hub_id_is_passed_on_to_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert resolve_base_model("roberta-base") == "roberta-base"
    assert resolve_base_model("FacebookAI/roberta-base") == "FacebookAI/roberta-base"
