"""The ``TextClassifier`` contract every backend implements, and the types that cross it.

A backend is a subclass of :class:`TextClassifier` registered under the ``loopwise.classifiers`` entry
point group (the built-ins go through the same path; see ``pyproject.toml``). The contract test suite in
``tests/classifiers/contract.py`` runs against every registered backend.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import numpy as np

from loopwise.errors import CheckpointError, ClassifierError

MANIFEST = "classifier.json"
MANIFEST_FORMAT = 1


class Examples(Protocol):
    """Labelled texts to fit on. Labels are label *names* (strings such as ``"-1"``).

    ``iter_chunks`` may be called once per epoch; each call starts again from the first example and
    yields ``(texts, labels)`` chunks of at most ``chunk_size`` in a fixed order. Implementations may
    stream from disk; callers must not assume the whole set fits in memory.
    """

    def __len__(self) -> int: ...

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[list[str], list[str]]]: ...


@dataclass(frozen=True)
class InMemoryExamples:
    """Examples held in two equally long lists."""

    texts: Sequence[str]
    labels: Sequence[str]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ClassifierError(
                f"{len(self.texts)} texts but {len(self.labels)} labels: give one label per text"
            )

    def __len__(self) -> int:
        return len(self.texts)

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[list[str], list[str]]]:
        for start in range(0, len(self.texts), chunk_size):
            yield list(self.texts[start : start + chunk_size]), list(self.labels[start : start + chunk_size])


@dataclass
class TrainConfig:
    """Hyperparameters of one fit. Backends ignore what does not apply to them (TF-IDF ignores most)."""

    learning_rate: float = 5e-5
    batch_size: int = 16
    epochs: int = 1
    max_seq_length: int = 128
    #: how many of the lowest encoder layers (and the embeddings) stay frozen; -1 freezes the whole encoder
    freeze_layers: int = 0
    seed: int = 42
    #: stop each epoch after this many optimizer steps (the course's train_steps_per_epoch); None: whole epoch
    steps_per_epoch: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    validation_batch_size: int = 64
    #: also validate every N steps (validation always runs at each epoch's end when data is given)
    eval_every_steps: int | None = None
    dynamic_padding: bool = True
    length_bucketing: bool = True
    #: examples read, tokenized and bucketed together; None holds the whole training set in memory
    stream_pool_size: int | None = None
    #: metric that picks the best checkpoint (higher is better, but for names ending in "loss")
    selection_metric: str = "val_acc"
    #: auto, cpu, cuda, cuda:N or mps (:mod:`loopwise.classifiers.devices`); auto: the freest accelerator
    device: str = "auto"
    #: auto, fp32, bf16 or fp16 (autocast; fp16 with loss scaling); auto: bf16 where native (GPUs, and CPUs
    #: with AVX-512 BF16 or AMX), fp16 on older GPUs, fp32 on other CPUs
    precision: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Tunable:
    """One constructor option of a backend that tuning specs may set (``static``) or search
    (``parameters``), declared in :attr:`TextClassifier.tunable`.

    ``type`` is the value's type (``int``, ``float``, ``bool`` or ``str``); ``low``/``high`` bound numeric
    values (inclusive, but ``low`` is excluded when ``low_open``: ``C`` must be above 0); ``nullable``
    allows ``None`` (say, no limit).
    """

    type: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    nullable: bool = False
    #: one line for the user: what the option does
    help: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (already of :attr:`type`) is within the bounds."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def bounds(self) -> str:
        """The bounds in words, as the tuning checker's messages give them (``above 0``, ``at least 1``)."""
        low = None if self.low is None else f"{'above' if self.low_open else 'at least'} {self.low:g}"
        high = None if self.high is None else f"at most {self.high:g}"
        return " and ".join(part for part in (low, high) if part) or "any value"


class Reporter:
    """Receives metrics while a fit runs. Called from the training thread; must not raise.

    ``should_stop`` is polled after each report: returning True ends the fit early (the best checkpoint so
    far is kept). The base class ignores everything.
    """

    def on_train_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        """Training metrics (``loss``, ``learning_rate``, ``examples_per_s``) every few steps."""

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        """Validation metrics (``val_loss``, ``val_acc``, ``val_macro_f1``) after each validation pass."""

    def should_stop(self) -> bool:
        return False

    def discard_model(self) -> bool:
        """Asked once the fit ended: True when its model is not wanted (a tuner pruned the trial), so the
        training service records the run ``stopped`` and registers nothing."""
        return False


@dataclass
class FitResult:
    """What a fit leaves behind besides the fitted classifier."""

    #: validation metrics of the kept (best) state, or the last training metrics without validation data
    metrics: dict[str, float] = field(default_factory=dict)
    #: profiler summary: examples_per_s, time split, peak memory, CPU utilization
    profile: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    best_step: int | None = None
    stopped_early: bool = False


class TextClassifier(ABC):
    """A text classifier: fit on labelled texts, give class probabilities, save and load.

    ``labels`` are the class names in column order of :meth:`predict_proba`. Instances are not
    thread-safe while fitting; ``predict_proba`` may be called from one thread at a time.
    """

    backend: ClassVar[str]
    #: the constructor options a tuning spec may set or search, by keyword name (see :class:`Tunable`).
    #: Read by the tuning spec checker without building an instance; every name must be a keyword of
    #: ``__init__`` and none may be a :class:`TrainConfig` field (the trainer's name would win). A trial
    #: passes the values to the constructor. Empty: nothing of the backend's own is tunable.
    tunable: ClassVar[Mapping[str, Tunable]] = {}

    def __init__(self, labels: Sequence[str]) -> None:
        labels = [str(label) for label in labels]
        if len(labels) < 2:
            raise ClassifierError(f"a classifier needs at least two labels, got {labels!r}")
        if len(set(labels)) != len(labels):
            raise ClassifierError(f"labels must be distinct, got {labels!r}")
        self.labels: list[str] = labels

    @abstractmethod
    def fit(
        self,
        train: Examples,
        validation: Examples | None = None,
        config: TrainConfig | None = None,
        reporter: Reporter | None = None,
        *,
        progress: bool | None = None,
    ) -> FitResult:
        """Fit on ``train``; raise :class:`ClassifierError` for a label not in ``labels``.

        ``progress`` asks for a progress bar on stderr (None: only when stderr is a terminal); backends
        that finish in seconds may ignore it."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """An array of shape ``(len(texts), len(labels))`` whose rows sum to 1."""

    def use_device(self, device: str = "auto", precision: str = "auto") -> None:
        """Run later predictions on ``device`` in ``precision`` (the values of ``--device`` and
        ``--precision``; see :mod:`loopwise.classifiers.devices`). Called before predicting, from the
        thread that predicts; raises :class:`~loopwise.errors.ConfigurationError` for a bad or missing
        device. The default checks the spelling and keeps running on the CPU (backends without torch)."""
        from loopwise.classifiers.devices import check_device, check_precision

        check_device(device)
        check_precision(precision)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        proba = self.predict_proba(texts, batch_size=batch_size)
        return [self.labels[i] for i in proba.argmax(axis=1)]

    def predict_with_embeddings(
        self, texts: Sequence[str], batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities and each text's sentence embedding (unit length), for drift monitoring;
        ``None`` for backends without one (the default)."""
        return self.predict_proba(texts, batch_size=batch_size), None

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write everything :meth:`load` needs into ``directory`` (created if missing), manifest included
        (use :func:`write_manifest`)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> Self:
        """Load a classifier saved by :meth:`save`; raise :class:`CheckpointError` naming the bad file."""

    def label_ids(self, labels: Sequence[str]) -> list[int]:
        index = {label: i for i, label in enumerate(self.labels)}
        try:
            return [index[str(label)] for label in labels]
        except KeyError as exc:
            raise ClassifierError(
                f"unknown label {exc.args[0]!r}: this classifier knows {self.labels}; "
                "fix the data or build the classifier with that label"
            ) from None


def write_manifest(directory: Path, backend: str, labels: Sequence[str], **extra: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"format": MANIFEST_FORMAT, "backend": backend, "labels": list(labels), **extra}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not Path(directory).is_dir():
        raise CheckpointError(f"no saved classifier at {directory}: the directory does not exist")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{directory} is not a saved loopwise classifier: {MANIFEST} is missing"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is corrupt ({exc}); re-save or retrain the classifier") from exc
    if not isinstance(manifest, dict) or not {"backend", "labels"} <= manifest.keys():
        raise CheckpointError(f"{path} lacks 'backend' or 'labels'; re-save or retrain the classifier")
    return manifest
