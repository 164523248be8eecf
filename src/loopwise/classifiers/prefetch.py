"""Preparing the next batches on a background thread while the current step runs.

:class:`Prefetcher` runs an iterator (a :class:`~loopwise.classifiers.batching.BatchStream` epoch: pools
tokenized when streaming, batches collated and, for CUDA, pinned) on one producer thread, at most
``depth`` items ahead, through a bounded queue. The consumer sees exactly the items, in exactly the order,
that iterating the source itself would give: the producer is the only thread that advances the source (and
so its seeded RNG), which keeps a fit's batches and losses the same as without prefetching.

An exception raised by the source is raised again in the consumer, at the item where it happened.
:meth:`Prefetcher.close` (also on leaving a ``with`` block, however it is left) stops the producer, waits
for its thread to end and closes the source: no thread outlives the epoch that started it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from loopwise.classifiers._base import TrainConfig
    from loopwise.classifiers.devices import Placement

T = TypeVar("T")

#: how long the producer waits on a full queue before it checks whether it was told to stop (seconds)
_POLL_S = 0.05
_ITEM, _END, _ERROR = "item", "end", "error"

#: training batches prepared ahead on accelerators, where the host thread is free while the device computes
PREFETCH_DEPTH = 2


def prefetch_depth(placement: Placement, config: TrainConfig) -> int:
    """How many batches to prepare ahead by default: :data:`PREFETCH_DEPTH` on an accelerator (the host
    thread is free while the device computes) and when streaming (each pool is tokenized mid-epoch), 0 on
    the CPU with the data in memory, where the producer thread only competes with the step for the same
    cores (measured: docs/benchmarks.md, prefetch)."""
    if placement.kind != "cpu" or config.stream_pool_size is not None:
        return PREFETCH_DEPTH
    return 0


class Prefetcher(Generic[T]):
    """An iterator over ``source``'s items, produced on a background thread at most ``depth`` ahead.

    Use it from one consumer thread, in a ``with`` block (or call :meth:`close`). ``depth`` must be at
    least 1. The source is advanced only on the producer thread until :meth:`close`, which closes it
    (when it has a ``close``, as generators do) on the calling thread after the producer ended.
    """

    def __init__(self, source: Iterator[T], depth: int = 2, *, name: str = "loopwise-prefetch") -> None:
        if depth < 1:
            raise ValueError(f"depth {depth}: prefetch at least 1 item, or iterate the source directly")
        self._source = source
        self._queue: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            for item in self._source:
                if not self._put((_ITEM, item)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put((_ERROR, exc))
            return
        self._put((_END, None))

    def _put(self, entry: tuple[str, object]) -> bool:
        """Queue ``entry``, waiting for room; False when told to stop first."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Prefetcher[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == _ITEM:
            return value  # type: ignore[return-value]
        self._done = True
        self._thread.join()
        if kind == _ERROR:
            assert isinstance(value, BaseException)
            raise value
        raise StopIteration

    @property
    def running(self) -> bool:
        """Whether the producer thread is still alive."""
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop the producer, wait for its thread, close the source; safe to call twice."""
        self._done = True
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # make room: a producer blocked on a full queue stops
                self._queue.get_nowait()
            self._thread.join(timeout=_POLL_S)
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
