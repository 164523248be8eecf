"""Tokenizing, bucketing by length, padding and streaming training batches."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from loopwise.classifiers import InMemoryExamples, TrainConfig
from loopwise.classifiers.batching import BatchStream, collate, plan_batches, tokenize
from loopwise.errors import ClassifierError, TrainingError

PAD = 0


class WordTokenizer:
    """One id per word plus [CLS]/[SEP]; enough for batching tests and much faster than a real one."""

    pad_token_id = PAD

    def __call__(self, texts: list[str], *, truncation: bool, max_length: int, **_: object) -> dict:
        return {"input_ids": [([101] + [7] * len(text.split()) + [102])[:max_length] for text in texts]}


def numbered_examples(count: int, seed: int = 0) -> InMemoryExamples:
    """Texts of random length whose label is their own index, so that batches say which examples they hold."""
    rng = random.Random(seed)
    return InMemoryExamples(["w " * rng.randint(1, 40) for _ in range(count)], [str(i) for i in range(count)])


def encode_indices(labels: list[str]) -> list[int]:
    return [int(label) for label in labels]


def stream(examples, **config) -> BatchStream:
    return BatchStream(examples, WordTokenizer(), encode_indices, TrainConfig(**config))


def seen(batches) -> list[int]:
    return [int(i) for batch in batches for i in batch["labels"]]


class RecordingExamples:
    """Examples that record the chunk sizes asked for and hand out chunks lazily."""

    def __init__(self, inner: InMemoryExamples) -> None:
        self.inner = inner
        self.chunk_sizes: list[int] = []

    def __len__(self) -> int:
        return len(self.inner)

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[list[str], list[str]]]:
        self.chunk_sizes.append(chunk_size)
        yield from self.inner.iter_chunks(chunk_size)


def test_tokenize_truncates_and_does_not_pad(tiny_bert_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    ids = tokenize(tokenizer, ["short", "a much longer text " * 20], max_seq_length=16)
    assert len(ids[0]) < 16
    assert len(ids[1]) == 16
    assert ids[1][-1] == tokenizer.sep_token_id
    assert tokenize(tokenizer, [], 16) == []


def test_bucketing_puts_similar_lengths_together() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(256)]
    batches = plan_batches(lengths, 16, random.Random(1))
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    for (_, high), (low, _) in itertools.pairwise(spans):
        assert high <= low  # length ranges of the batches do not overlap
    random_batches = plan_batches(lengths, 16, random.Random(1), bucketing=False)

    def padding(plan: list[list[int]]) -> int:
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in plan)

    assert padding(batches) * 5 < padding(random_batches)


def test_every_example_is_seen_exactly_once_per_epoch() -> None:
    batches = stream(numbered_examples(103), batch_size=8, seed=3)
    for epoch in range(2):
        assert sorted(seen(batches.epoch(epoch))) == list(range(103))
    assert len(list(batches.epoch(0))) == len(batches) == 13


def test_dynamic_padding_pads_to_the_longest_in_the_batch() -> None:
    for batch in stream(numbered_examples(64), batch_size=8).epoch(0):
        lengths = batch["attention_mask"].sum(dim=1)
        assert batch["input_ids"].shape[1] == int(lengths.max())
        assert (batch["input_ids"][batch["attention_mask"] == 0] == PAD).all()


def test_fixed_padding_pads_to_max_seq_length() -> None:
    batches = stream(numbered_examples(32), batch_size=8, max_seq_length=64, dynamic_padding=False)
    assert {tuple(batch["input_ids"].shape) for batch in batches.epoch(0)} == {(8, 64)}


def test_collate_pads_and_masks() -> None:
    batch = collate([[1, 2, 3], [4]], pad_id=9, labels=[0, 2])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [0, 2]
    assert collate([[1]], pad_id=0, pad_to=4)["input_ids"].shape == (1, 4)


def test_batches_are_deterministic_for_a_seed_and_vary_between_epochs() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        return seen(stream(numbered_examples(200), batch_size=8, seed=seed).epoch(epoch))

    assert order(seed=5, epoch=0) == order(seed=5, epoch=0)
    assert order(seed=5, epoch=0) != order(seed=5, epoch=1)
    assert order(seed=5, epoch=0) != order(seed=6, epoch=0)


def test_pool_membership_changes_between_epochs() -> None:
    batches = stream(numbered_examples(400), batch_size=4, stream_pool_size=None)
    batches.pool_size = 40  # ten pools

    def members(epoch: int) -> set[frozenset[int]]:
        return {frozenset(int(i) for i in b["labels"]) for b in batches.epoch(epoch)}

    assert members(0) != members(1)


def test_streaming_reads_one_pool_at_a_time_and_sees_everything() -> None:
    examples = RecordingExamples(numbered_examples(100))
    batches = BatchStream(
        examples, WordTokenizer(), encode_indices, TrainConfig(batch_size=4, stream_pool_size=20)
    )
    assert examples.chunk_sizes == []  # nothing read before the first epoch
    first, second = seen(batches.epoch(0)), seen(batches.epoch(1))
    assert examples.chunk_sizes == [20, 20]
    assert sorted(first) == sorted(second) == list(range(100))
    assert first != second
    assert len(batches) == 25


def test_streaming_validation_batches_see_everything_once() -> None:
    examples = RecordingExamples(numbered_examples(50))
    batches = BatchStream(examples, WordTokenizer(), encode_indices, TrainConfig(stream_pool_size=16))
    assert sorted(seen(batches.evaluation_batches(7))) == list(range(50))
    assert examples.chunk_sizes == [16]


def test_unknown_labels_fail_before_training_when_in_memory() -> None:
    def strict(labels: list[str]) -> list[int]:
        raise ClassifierError(f"unknown label {labels[0]!r}")

    with pytest.raises(ClassifierError):
        BatchStream(numbered_examples(4), WordTokenizer(), strict, TrainConfig())


def test_non_positive_sizes_are_rejected() -> None:
    with pytest.raises(TrainingError, match="batch_size"):
        stream(numbered_examples(4), batch_size=0)
    with pytest.raises(TrainingError, match="stream_pool_size"):
        stream(numbered_examples(4), stream_pool_size=0)
