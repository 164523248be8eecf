"""Turning labelled texts into padded tensor batches, with as little padding as possible.

Texts are tokenized once into id lists without padding. For training, examples are grouped into *pools*;
each pool is sorted by token length and cut into batches, so that a batch holds texts of similar length
and :func:`collate` pads it only to its own longest text (dynamic padding). The batch order is shuffled
with a seeded RNG, and pool membership changes every epoch, so batches still differ between epochs.

Two switches on :class:`~loopwise.classifiers.TrainConfig` turn the tricks off to measure them:
``length_bucketing=False`` draws random batches and ``dynamic_padding=False`` pads every batch to
``max_seq_length``.

With ``stream_pool_size`` set, :class:`BatchStream` reads ``Examples.iter_chunks`` one pool at a time
and holds at most two pools at a time (a shuffle buffer, so that pool membership still varies).

Data-parallel ranks plan the same global batches (same seed) and each collates its share of every one
(:func:`shard_batch`), so N processes step through exactly the batches one process would.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from loopwise.classifiers._base import Examples, TrainConfig
from loopwise.errors import TrainingError

#: pool size when the whole training set is in memory: large enough that sorted batches pad little,
#: small enough that batch membership still varies between epochs
DEFAULT_POOL_BATCHES = 64
#: held while a BatchStream tokenizes: a fast tokenizer refuses to be called from two threads at once
#: ("Already borrowed"), and a prefetching producer thread may tokenize a pool while validation does
_TOKENIZING = threading.Lock()
#: the key of a rank's share of a batch that holds each example's loss weight (see :func:`shard_batch`)
EXAMPLE_WEIGHTS = "example_weights"


def tokenize(tokenizer: Any, texts: Sequence[str], max_seq_length: int) -> list[list[int]]:
    """Token ids of each text (special tokens included), truncated to ``max_seq_length``, unpadded."""
    if not texts:
        return []
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_seq_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return encoded["input_ids"]


def plan_batches(
    lengths: Sequence[int],
    batch_size: int,
    rng: random.Random,
    *,
    bucketing: bool = True,
) -> list[list[int]]:
    """Split ``range(len(lengths))`` into batches of ``batch_size`` (the last may be smaller).

    With ``bucketing`` the indices are sorted by length (ties in random order) before cutting, so each
    batch holds similar lengths; either way the order of the batches is shuffled with ``rng``.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if bucketing:
        order.sort(key=lengths.__getitem__)  # stable: equal lengths keep their random order
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    labels: Sequence[int] | None = None,
    pad_to: int | None = None,
    pin_memory: bool = False,
) -> dict[str, torch.Tensor]:
    """Pad ``sequences`` to the longest of them (or to ``pad_to``) into ``input_ids``/``attention_mask``
    tensors, plus a ``labels`` tensor when labels are given. ``pin_memory`` page-locks the tensors so that
    copies to a CUDA device can be non-blocking."""
    width = max((len(ids) for ids in sequences), default=0)
    if pad_to is not None:
        width = max(width, pad_to)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if labels is not None:
        batch["labels"] = torch.tensor(list(labels), dtype=torch.long)
    if pin_memory:
        batch = {key: value.pin_memory() for key, value in batch.items()}
    return batch


def shard_batch(batch: Sequence[int], rank: int, world_size: int) -> tuple[list[int], list[float]]:
    """Rank ``rank``'s share of a global ``batch`` (every ``world_size``-th example from the ``rank``-th,
    so the shares of a length-sorted batch pad alike) and each example's loss weight,
    ``world_size / len(batch)``.

    Summing weighted losses on each rank and averaging gradients over the ranks (what
    DistributedDataParallel does) gives the gradient of the global batch's mean loss, even when the shares
    differ in size. A rank left without an example (a last batch smaller than ``world_size``) gets the
    batch's first example with weight 0, so that every rank still runs a step (the ranks' collectives must
    match) without changing the gradient.
    """
    if not 0 <= rank < world_size:
        raise TrainingError(f"rank {rank} is outside 0..{world_size - 1}")
    share = list(batch[rank::world_size])
    if not share:
        return [batch[0]], [0.0]
    return share, [world_size / len(batch)] * len(share)


@dataclass
class Encoded:
    """Tokenized examples: unpadded id lists and label ids."""

    input_ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


class BatchStream:
    """The training (or validation) batches of one data set, epoch after epoch.

    ``encode_labels`` maps label names to ids and raises for an unknown label; without streaming every
    example is tokenized (and every label checked) in the constructor, so a bad label fails before the
    first step. ``pin_memory`` collates into page-locked tensors (for non-blocking copies to CUDA).
    """

    def __init__(
        self,
        examples: Examples,
        tokenizer: Any,
        encode_labels: Callable[[Sequence[str]], list[int]],
        config: TrainConfig,
        *,
        pin_memory: bool = False,
    ) -> None:
        self.examples = examples
        self.pin_memory = pin_memory
        self.tokenizer = tokenizer
        self.encode_labels = encode_labels
        self.config = config
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.streaming = config.stream_pool_size is not None
        if config.batch_size < 1 or (config.stream_pool_size is not None and config.stream_pool_size < 1):
            raise TrainingError(
                f"batch_size ({config.batch_size}) and stream_pool_size ({config.stream_pool_size}) "
                "must be positive: fix the training configuration"
            )
        self.pool_size = config.stream_pool_size or config.batch_size * DEFAULT_POOL_BATCHES
        self._encoded: Encoded | None = None
        if not self.streaming:
            self._encoded = self._encode_all()

    def _encode(self, texts: list[str], labels: list[str]) -> Encoded:
        with _TOKENIZING:
            ids = tokenize(self.tokenizer, texts, self.config.max_seq_length)
        return Encoded(ids, self.encode_labels(labels))

    def _encode_all(self) -> Encoded:
        encoded = Encoded([], [])
        for texts, labels in self.examples.iter_chunks(max(self.pool_size, 1024)):
            chunk = self._encode(texts, labels)
            encoded.input_ids.extend(chunk.input_ids)
            encoded.labels.extend(chunk.labels)
        return encoded

    def __len__(self) -> int:
        """Batches per training epoch."""
        size = self.config.batch_size
        return sum(-(-pool // size) for pool in _pool_sizes(len(self.examples), self.pool_size))

    def _pools(self, rng: random.Random) -> Iterator[Encoded]:
        """This epoch's pools: random membership, each example in exactly one pool."""
        if self._encoded is not None:
            order = list(range(len(self._encoded)))
            rng.shuffle(order)
            for start in range(0, len(order), self.pool_size):
                picked = order[start : start + self.pool_size]
                yield Encoded(
                    [self._encoded.input_ids[i] for i in picked], [self._encoded.labels[i] for i in picked]
                )
            return
        # Streaming, like a shuffle buffer: the first chunk waits; then each chunk joins what waits, a
        # random pool_size of them are batched now and the rest wait for the next chunk. At most two
        # pools are held at once, and an example may be batched with any later chunk's examples.
        waiting = Encoded([], [])
        for texts, labels in self.examples.iter_chunks(self.pool_size):
            chunk = self._encode(texts, labels)
            waiting = Encoded(waiting.input_ids + chunk.input_ids, waiting.labels + chunk.labels)
            if len(waiting) <= self.pool_size:
                continue
            order = list(range(len(waiting)))
            rng.shuffle(order)
            now, later = order[: self.pool_size], order[self.pool_size :]
            yield Encoded([waiting.input_ids[i] for i in now], [waiting.labels[i] for i in now])
            waiting = Encoded([waiting.input_ids[i] for i in later], [waiting.labels[i] for i in later])
        if len(waiting):
            yield waiting

    def epoch(self, epoch: int, shard: tuple[int, int] | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """The training batches of epoch ``epoch`` (0-based), collated; deterministic for a given seed.

        In memory, the batches of all pools are shuffled together; when streaming, within each pool.
        ``shard=(rank, world_size)`` yields only that rank's share of each batch (:func:`shard_batch`),
        with its loss weights under :data:`EXAMPLE_WEIGHTS`.
        """
        rng = random.Random(self.config.seed * 1_000_003 + epoch)
        pad_to = None if self.config.dynamic_padding else self.config.max_seq_length
        planned: list[tuple[Encoded, list[int]]] = []
        for pool in self._pools(rng):
            lengths = [len(ids) for ids in pool.input_ids]
            batches = plan_batches(
                lengths, self.config.batch_size, rng, bucketing=self.config.length_bucketing
            )
            planned.extend((pool, batch) for batch in batches)
            if self.streaming:
                for pool_, batch in planned:
                    yield self._share(pool_, batch, pad_to, shard)
                planned = []
        rng.shuffle(planned)
        for pool, batch in planned:
            yield self._share(pool, batch, pad_to, shard)

    def _share(
        self, pool: Encoded, batch: list[int], pad_to: int | None, shard: tuple[int, int] | None
    ) -> dict[str, torch.Tensor]:
        if shard is None:
            return self._collate(pool, batch, pad_to)
        rows, weights = shard_batch(batch, *shard)
        collated = self._collate(pool, rows, pad_to)
        collated[EXAMPLE_WEIGHTS] = torch.tensor(weights, dtype=torch.float32)
        return collated

    def evaluation_batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """Every example once, in length-sorted batches (dynamic padding), for validation."""
        pools: Iterator[Encoded] | list[Encoded]
        if self._encoded is not None:
            pools = [self._encoded]
        else:
            pools = (
                self._encode(texts, labels) for texts, labels in self.examples.iter_chunks(self.pool_size)
            )
        for pool in pools:
            order = sorted(range(len(pool)), key=lambda i: len(pool.input_ids[i]))
            for start in range(0, len(order), batch_size):
                yield self._collate(pool, order[start : start + batch_size], None)

    def _collate(self, pool: Encoded, batch: list[int], pad_to: int | None) -> dict[str, torch.Tensor]:
        return collate(
            [pool.input_ids[i] for i in batch],
            self.pad_id,
            [pool.labels[i] for i in batch],
            pad_to,
            pin_memory=self.pin_memory,
        )


def _pool_sizes(total: int, pool_size: int) -> list[int]:
    return [min(pool_size, total - start) for start in range(0, total, pool_size)]
