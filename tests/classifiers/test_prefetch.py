"""Batches prepared on a background thread: the same batches in the same order (the same losses), a bounded
queue, producer errors raised in the training thread, and no thread left once a fit ends or raises."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_loop import Recorder, encode, examples
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from loopwise.classifiers import InMemoryExamples, TrainConfig
from loopwise.classifiers.devices import Placement
from loopwise.classifiers.loop import train
from loopwise.classifiers.prefetch import PREFETCH_DEPTH, Prefetcher, prefetch_depth
from loopwise.errors import ClassifierError


def _batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "loopwise-batches"]


def test_items_come_in_order_at_most_depth_ahead() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for item in range(20):
            produced.append(item)
            yield item

    with Prefetcher(source(), depth=3) as prefetched:
        assert next(prefetched) == 0
        time.sleep(0.3)  # the producer runs ahead until the queue is full, no further
        assert len(produced) <= 1 + 3 + 1  # taken, queued, and the one waiting for room
        assert [0, *prefetched] == list(range(20))
    assert not prefetched.running


def test_an_error_in_the_producer_is_raised_in_the_consumer_at_its_item() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ClassifierError("label 'x' is not one of -1, 0, 1")

    seen = []
    with pytest.raises(ClassifierError, match="label 'x'"), Prefetcher(source()) as prefetched:
        seen.extend(prefetched)
    assert seen == [1, 2] and not prefetched.running


def test_closing_early_stops_the_producer_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            item = 0
            while True:
                yield item
                item += 1
        finally:
            closed.set()

    prefetched = Prefetcher(endless(), depth=2)
    assert [next(prefetched) for _ in range(5)] == [0, 1, 2, 3, 4]
    prefetched.close()
    assert not prefetched.running and closed.is_set()
    prefetched.close()  # twice is fine
    with pytest.raises(StopIteration):
        next(prefetched)
    with pytest.raises(ValueError, match="depth 0"):
        Prefetcher(iter([]), depth=0)


def test_the_default_prefetches_on_accelerators_and_when_streaming() -> None:
    memory, streaming = TrainConfig(), TrainConfig(stream_pool_size=64)
    assert prefetch_depth(Placement("cpu"), memory) == 0
    assert prefetch_depth(Placement("cpu"), streaming) == PREFETCH_DEPTH
    assert prefetch_depth(Placement("cuda:0", "bf16"), memory) == PREFETCH_DEPTH


# -- in a fit -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def _fit(tiny_bert_dir: Path, tokenizer, data, prefetch: int, reporter=None, **config):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3)
    config = TrainConfig(
        **{"batch_size": 8, "learning_rate": 2e-3, "max_seq_length": 16, "seed": 3, **config}
    )
    result = train(
        model,
        tokenizer,
        data,
        encode,
        3,
        validation=examples(24, 9),
        config=config,
        reporter=reporter,
        prefetch=prefetch,
    )
    return model, result


class _Watching(Recorder):
    """Notes at each report whether a producer thread is running."""

    def __init__(self) -> None:
        super().__init__()
        self.producing: list[bool] = []

    def on_train_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        super().on_train_step(step, epoch, metrics)
        self.producing.append(bool(_batch_threads()))


@pytest.mark.parametrize("stream_pool_size", [None, 16])
def test_prefetching_gives_the_same_batches_losses_and_model(
    tiny_bert_dir: Path, tokenizer, stream_pool_size: int | None
) -> None:
    torch.set_num_threads(1)
    data = examples(60, 1)
    runs = []
    for depth in (0, 2):
        recorder = _Watching()
        model, result = _fit(
            tiny_bert_dir,
            tokenizer,
            data,
            depth,
            recorder,
            epochs=2,
            eval_every_steps=3,
            stream_pool_size=stream_pool_size,
        )
        losses = [metrics["loss"] for _, metrics in recorder.train_steps]
        runs.append((losses, recorder.validations, result.steps, model.state_dict()))
        assert recorder.producing == [depth > 0] * len(losses) and not _batch_threads()
    (losses_a, validations_a, steps_a, state_a), (losses_b, validations_b, steps_b, state_b) = runs
    assert steps_a == steps_b == 2 * 8 and losses_a == losses_b and len(losses_a) >= 1
    assert validations_a == validations_b
    assert all(torch.equal(state_a[name], state_b[name]) for name in state_a)


class _BadChunk:
    """Examples whose second chunk holds an unknown label: a streaming fit meets it mid-epoch, on the
    producer thread."""

    def __init__(self) -> None:
        good = examples(32, 2)
        self.texts, self.labels = list(good.texts), list(good.labels)
        self.labels[20] = "7"

    def __len__(self) -> int:
        return len(self.texts)

    def iter_chunks(self, chunk_size: int):
        return InMemoryExamples(self.texts, self.labels).iter_chunks(chunk_size)


def test_a_producer_error_fails_the_fit_in_its_thread_and_leaves_no_thread(
    tiny_bert_dir: Path, tokenizer
) -> None:
    with pytest.raises(ValueError, match="'7' is not in list"):
        _fit(tiny_bert_dir, tokenizer, _BadChunk(), 2, stream_pool_size=16)
    assert not _batch_threads()


class _Exploding(Recorder):
    def on_train_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        raise RuntimeError("the reporter's store went away")


def test_a_fit_that_raises_in_the_step_leaves_no_thread(tiny_bert_dir: Path, tokenizer) -> None:
    with pytest.raises(RuntimeError, match="store went away"):
        _fit(tiny_bert_dir, tokenizer, examples(200, 1), 2, _Exploding())
    assert not _batch_threads()
    _, result = _fit(tiny_bert_dir, tokenizer, examples(40, 1), 2, steps_per_epoch=2)
    assert result.steps == 2 and not _batch_threads()  # a fit stopped by steps_per_epoch mid-epoch
