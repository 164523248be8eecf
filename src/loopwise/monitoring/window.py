"""A window of traffic summarized in one pass: what the checks need of every text, and nothing more.

Per text the summary keeps two numbers (its length and its top-class confidence); over the window, counts
(empty, garbled and out-of-range texts, words and unknown words, predicted classes), a uniform sample of at
most :data:`SAMPLE_SIZE` sentence embeddings, the texts that have ground truth (joined by inference id) and
a few examples of each problem. The embedding sample is bottom-k by a hash of each text's inference id and
position, so it is the same however the records are split up; summaries of parts merge
(:meth:`WindowBuilder.merge`), which lets several processes read a large window file by file
(:mod:`loopwise.monitoring.scan`). A packed embedding is only decoded when its text enters the sample.
"""

from __future__ import annotations

import heapq
import zlib
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopwise.monitoring.text import is_garbled, words_of

if TYPE_CHECKING:
    from loopwise.monitoring.baseline import Baseline

#: at most this many embeddings of a window go into the drift test (a uniform sample beyond)
SAMPLE_SIZE = 1000
#: examples kept of each problem (texts cut to EXAMPLE_CHARS)
EXAMPLES = 5
EXAMPLE_CHARS = 200
_KEY_SCALE = 1.0 / 2**32


@dataclass(frozen=True)
class Context:
    """What summarizing needs from the baseline (small enough to send to another process)."""

    labels: tuple[str, ...]
    vocabulary: frozenset[str]
    min_chars: int
    max_chars: int
    #: inference id -> one true label per text (feedback, human review)
    ground_truth: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, baseline: Baseline, ground_truth: Mapping[str, Sequence[str]] | None = None) -> Context:
        length = baseline.constraints["data_quality"]["length"]
        return cls(
            tuple(baseline.labels),
            baseline.vocabulary,
            int(length["min_chars"]),
            int(length["max_chars"]),
            ground_truth or {},
        )


@dataclass
class Window:
    """The summary of a window of traffic (see the module's docstring)."""

    labels: list[str]
    records: int
    chars: np.ndarray
    confidence: np.ndarray
    class_counts: np.ndarray
    empty: int
    garbled: int
    length_outside: int
    words: int
    unknown_words: int
    #: the sample of sentence embeddings (None when no text of the window had one)
    embeddings: np.ndarray | None
    #: a few texts of each problem: "garbled", "length_outside", "oov" (most unknown words first)
    examples: dict[str, list[str]]
    #: the true labels of the texts that have one, with the model's probabilities on them
    truth: list[str]
    truth_proba: np.ndarray
    #: true labels that are none of the model's classes
    unknown_labels: int
    #: the inference ids whose ground truth was found in the window
    matched: set[str]

    @property
    def texts(self) -> int:
        return len(self.chars)

    @property
    def oov_rate(self) -> float:
        return self.unknown_words / self.words if self.words else 0.0


class WindowBuilder:
    """Summarizes texts one record at a time; :meth:`build` gives the :class:`Window`."""

    def __init__(self, context: Context, *, sample_size: int = SAMPLE_SIZE) -> None:
        self.context = context
        self.sample_size = sample_size
        self.records = 0
        self.chars = array("q")
        self.confidence = array("d")
        self.class_counts = [0] * len(context.labels)
        self.empty = self.garbled = self.length_outside = self.words = self.unknown_words = 0
        #: a max-heap (negated keys) of the sampled embeddings: (-key, ordinal, vector)
        self.sample: list[tuple[float, int, np.ndarray]] = []
        self.examples: dict[str, list[str]] = {"garbled": [], "length_outside": []}
        self.oov_examples: list[tuple[int, int, str]] = []  # a min-heap of (unknown words, ordinal, text)
        self.truth: list[str] = []
        self.truth_rows: list[list[float]] = []
        self.unknown_labels = 0
        self.matched: set[str] = set()
        self.bad_embeddings = 0
        self._orders: dict[tuple[str, ...], list[int]] = {}
        self._known = frozenset(context.labels)
        self._seen = 0

    def add_record(self, record: Mapping[str, Any], unpack: Callable[[Any], np.ndarray | None]) -> None:
        """One capture record (already checked to be well-formed, its labels a superset of the
        context's); ``unpack`` turns its ``embedding`` field into an array, only when one is sampled."""
        given = tuple(record["labels"])
        order = self._orders.get(given)
        if order is None:
            order = self._orders[given] = [given.index(label) for label in self.context.labels]
        rows = [[row[j] for j in order] for row in record["probabilities"]]
        packed = record.get("embedding")
        self._add(record["input"], rows, str(record.get("inference_id")), packed, unpack)

    def add_texts(
        self,
        texts: Sequence[str],
        proba: np.ndarray,
        embeddings: np.ndarray | None = None,
        inference_ids: Sequence[str] | None = None,
    ) -> None:
        """Texts with the model's probabilities (columns in the context's label order), one inference
        each; the embeddings, where given, one row per text."""
        rows = np.asarray(proba, dtype=np.float64).tolist()
        for i, text in enumerate(texts):
            inference_id = inference_ids[i] if inference_ids is not None else f"#{self._seen + 1}"
            vector = None if embeddings is None else embeddings[i : i + 1]
            self._add([text], rows[i : i + 1], inference_id, vector, _as_array)

    def _add(
        self,
        texts: Sequence[str],
        rows: list[list[float]],
        inference_id: str,
        packed: Any,
        unpack: Callable[[Any], np.ndarray | None],
    ) -> None:
        self.records += 1
        context = self.context
        vocabulary = context.vocabulary
        truth = context.ground_truth.get(inference_id)
        if truth is not None:
            self.matched.add(inference_id)
        vectors: np.ndarray | None = None
        for i, text in enumerate(texts):
            self._seen += 1
            row = rows[i]
            top = max(row)
            self.class_counts[row.index(top)] += 1
            self.confidence.append(top)
            length = len(text)
            self.chars.append(length)
            if not text.strip():
                self.empty += 1
            elif is_garbled(text):
                self.garbled += 1
                self._example("garbled", text)
            if length < context.min_chars or length > context.max_chars:
                self.length_outside += 1
                self._example("length_outside", text)
            words = words_of(text)
            unknown = len(words) - sum(map(vocabulary.__contains__, words))
            self.words += len(words)
            if unknown:
                self.unknown_words += unknown
                self._oov_example(unknown, text)
            if truth is not None and i < len(truth):
                if truth[i] in self._known:
                    self.truth.append(truth[i])
                    self.truth_rows.append(row)
                else:
                    self.unknown_labels += 1
            if packed is not None:
                key = zlib.crc32(f"{inference_id}/{i}".encode()) * _KEY_SCALE
                if len(self.sample) < self.sample_size or key < -self.sample[0][0]:
                    if vectors is None:
                        try:
                            vectors = unpack(packed)
                        except ValueError:
                            self.bad_embeddings += 1
                            packed = None
                            continue
                    if vectors is not None and i < len(vectors):
                        self._sample(key, vectors[i])

    def _example(self, problem: str, text: str) -> None:
        kept = self.examples[problem]
        if len(kept) < EXAMPLES:
            kept.append(text[:EXAMPLE_CHARS])

    def _oov_example(self, unknown: int, text: str) -> None:
        entry = (unknown, -self._seen, text[:EXAMPLE_CHARS])
        if len(self.oov_examples) < EXAMPLES:
            heapq.heappush(self.oov_examples, entry)
        elif entry > self.oov_examples[0]:
            heapq.heapreplace(self.oov_examples, entry)

    def _sample(self, key: float, vector: np.ndarray) -> None:
        entry = (-key, self._seen, np.array(vector, dtype=np.float32))
        if len(self.sample) < self.sample_size:
            heapq.heappush(self.sample, entry)
        else:
            heapq.heapreplace(self.sample, entry)

    def merge(self, other: WindowBuilder) -> None:
        """Add what ``other`` (a summary of other records, for the same context) holds."""
        self.records += other.records
        self.chars.extend(other.chars)
        self.confidence.extend(other.confidence)
        self.class_counts = [a + b for a, b in zip(self.class_counts, other.class_counts, strict=True)]
        for name in ("empty", "garbled", "length_outside", "words", "unknown_words", "unknown_labels"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.bad_embeddings += other.bad_embeddings
        # the keys decide, ordinals only break ties
        joined = [(key, self._seen + ordinal, vector) for key, ordinal, vector in other.sample]
        self.sample = heapq.nlargest(self.sample_size, self.sample + joined, key=lambda e: e[0])
        heapq.heapify(self.sample)
        for problem, texts in other.examples.items():
            self.examples[problem] = (self.examples[problem] + texts)[:EXAMPLES]
        shifted = [(n, ordinal - self._seen, text) for n, ordinal, text in other.oov_examples]
        self.oov_examples = heapq.nlargest(EXAMPLES, self.oov_examples + shifted)
        heapq.heapify(self.oov_examples)
        self.truth.extend(other.truth)
        self.truth_rows.extend(other.truth_rows)
        self.matched |= other.matched
        self._seen += other._seen

    def build(self) -> Window:
        labels = list(self.context.labels)
        examples = {
            **self.examples,
            "oov": [text for _, _, text in sorted(self.oov_examples, reverse=True)],
        }
        embeddings = (
            np.stack([vector for _, _, vector in sorted(self.sample, key=lambda e: e[1])])
            if self.sample
            else None
        )
        return Window(
            labels,
            self.records,
            np.frombuffer(self.chars, dtype=np.int64).copy(),
            np.frombuffer(self.confidence, dtype=np.float64).copy(),
            np.array(self.class_counts, dtype=np.int64),
            self.empty,
            self.garbled,
            self.length_outside,
            self.words,
            self.unknown_words,
            embeddings,
            examples,
            list(self.truth),
            np.array(self.truth_rows, dtype=np.float64).reshape(len(self.truth_rows), len(labels)),
            self.unknown_labels,
            set(self.matched),
        )


def _as_array(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float32)


def window_of(
    baseline: Baseline,
    texts: Sequence[str],
    proba: np.ndarray,
    embeddings: np.ndarray | None = None,
    *,
    inference_ids: Sequence[str] | None = None,
    ground_truth: Mapping[str, Sequence[str]] | None = None,
) -> Window:
    """The window of ``texts`` with the model's ``proba`` (columns in the baseline's label order) and
    embeddings: traffic that is not in capture files (a batch, a benchmark's sample)."""
    builder = WindowBuilder(Context.of(baseline, ground_truth))
    builder.add_texts(texts, proba, embeddings, inference_ids)
    return builder.build()
