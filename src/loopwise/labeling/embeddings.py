"""Sentence embeddings of a base model, and a labeling job's embeddings cached in the artifact store.

:func:`encode` turns texts into what sentence-transformers' all-MiniLM-L6-v2 gives (the last layer's
tokens, mean-pooled over the attention mask, unit length), with any local encoder; batches are sorted by
length so that each pads only to its own longest text. Automated labeling and active learning fit linear
heads on these vectors round after round, so :func:`job_embeddings` encodes each item of a job once: the
vectors live in the artifact ``labeling/<job>/embeddings/<model key>`` (``vectors.npz``: ``ids`` int64,
``vectors`` float32), one per encoder (:func:`model_key`), so a cache made by another model is never read.
It is committed again whole (``replace=True``): a reader sees the old one or the new one, and one that
cannot be read is logged and rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopwise.errors import LoopwiseError

if TYPE_CHECKING:
    from loopwise.storage import Store

log = logging.getLogger(__name__)

#: the file of an embeddings cache, in its artifact (``labeling/<job>/embeddings/<model key>``)
CACHE_FILE = "vectors.npz"

#: texts tokenized at once (bounds the memory the token ids take for long inputs)
ENCODE_CHUNK = 4096
#: held while tokenizing: the cached fast tokenizer refuses two threads at once ("Already borrowed")
_TOKENIZING = threading.Lock()
#: the files whose bytes make an encoder's identity: configuration, tokenizer, weights
_IDENTITY_FILES = ("config.json", "tokenizer.json", "vocab.txt", "*.safetensors", "pytorch_model*.bin")
#: how the vectors are made, part of the key so that a change of recipe never reads an old cache
_RECIPE = b"mean-pooled over the attention mask, unit length, at most 256 tokens"


def encode(
    texts: Sequence[str],
    base_model: str | Path | None = None,
    *,
    batch_size: int = 64,
    max_length: int = 256,
    progress: bool = False,
) -> np.ndarray:
    """Sentence embeddings of ``texts``: float32 of shape (len(texts), hidden), unit length, in input order.

        ``base_model`` is a local model directory or a cached hub id (None: the bundled MiniLM); texts are cut
        at ``max_length`` tokens or the model's position limit, whichever is smaller. A text's vector does not
        depend on the texts batched with it. Threads may call it at once (they share one loaded model, so it
    is no faster). ``progress`` shows a progress bar on stderr. Raises
        :class:`~loopwise.errors.ClassifierError` when the model cannot be found."""
    import torch

    from loopwise.classifiers.batching import collate, tokenize

    model, tokenizer, limit = _encoder(_source(base_model))
    texts = list(texts)
    result = np.empty((len(texts), int(model.config.hidden_size)), dtype=np.float32)
    length = max_length if limit is None else min(max_length, limit)
    pad_id = tokenizer.pad_token_id or 0
    with _bar(progress, len(texts)) as advance, torch.inference_mode():
        for start in range(0, len(texts), ENCODE_CHUNK):
            with _TOKENIZING:
                ids = tokenize(tokenizer, texts[start : start + ENCODE_CHUNK], length)
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            for first in range(0, len(order), batch_size):
                rows = order[first : first + batch_size]
                batch = collate([ids[i] for i in rows], pad_id)
                result[[start + i for i in rows]] = _pooled(model, batch)
                advance(len(rows))
    return result


def _pooled(model: Any, batch: dict[str, Any]) -> np.ndarray:
    """The batch's last-layer token states, averaged over its attention mask and scaled to unit length."""
    import torch

    hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return np.asarray(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())


def _source(base_model: str | Path | None) -> str:
    """Where ``base_model`` loads from, spelt one way (an absolute directory or a hub id) for the caches."""
    from loopwise.classifiers.transformer import resolve_base_model

    source = resolve_base_model(base_model)
    return str(Path(source).resolve()) if isinstance(source, Path) else source


@functools.lru_cache(maxsize=4)
def _encoder(source: str) -> tuple[Any, Any, int | None]:
    """The encoder at ``source`` in eval mode, its fast tokenizer and its position limit, loaded once per
    process (rounds of a job and jobs in one server share it)."""
    from transformers import AutoModel, AutoTokenizer

    from loopwise.classifiers.transformer import loads_offline, position_limit, quiet_transformers

    local = loads_offline(source)
    with quiet_transformers():  # its load reports and bars: an unused pooler and the like are expected
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
        model = AutoModel.from_pretrained(source, local_files_only=local)
    model.eval()
    return model, tokenizer, position_limit(model, tokenizer)


@contextmanager
def _bar(enabled: bool, total: int) -> Iterator[Any]:
    """A rich progress bar over ``total`` texts on stderr (or nothing); yields ``advance(count)``."""
    if not enabled:
        yield lambda count: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("embedding", total=total)
        yield lambda count: bar.update(task, advance=count)


def model_key(base_model: str | Path | None = None) -> str:
    """A short stable identity of the encoder: 16 hex digits of the sha256 of its configuration, tokenizer
    and weights files (and of how :func:`encode` pools). Two models share a key only if they share those
    bytes; computed once per process."""
    return _key_of(_source(base_model))


@functools.lru_cache(maxsize=16)
def _key_of(source: str) -> str:
    digest = hashlib.sha256(_RECIPE)
    for path in _identity_files(_model_dir(source)):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _model_dir(source: str) -> Path:
    """The local directory of ``source``: itself, or a hub id's snapshot in the cache (loaded there first)."""
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import try_to_load_from_cache

    _encoder(source)  # downloads it where the hub is reachable and it is not cached yet
    config = try_to_load_from_cache(source, "config.json")
    return Path(str(config)).parent


def _identity_files(directory: Path) -> list[Path]:
    return sorted({path for pattern in _IDENTITY_FILES for path in directory.glob(pattern)})


def job_embeddings(
    store: Store,
    job_name: str,
    items: Sequence[tuple[int, str]],
    base_model: str | Path | None = None,
    *,
    progress: bool = False,
) -> np.ndarray:
    """The embeddings of a job's ``items`` ((item id, text) pairs), one row per pair in their order.

    Items already in the job's cache for this encoder are read from it; only the others are encoded, and
    then the cache is rewritten with all of them. A cache file that cannot be read is logged as a warning
    and rebuilt. An item's text is taken to be fixed: its id alone finds its vector."""
    if not items:
        return encode([], base_model)
    key = f"labeling/{job_name}/embeddings/{model_key(base_model)}"
    known = _read_cache(store, key)
    missing = {item_id: text for item_id, text in items if item_id not in known}
    if missing:
        known.update(zip(missing, encode(list(missing.values()), base_model, progress=progress), strict=True))
        _write_cache(store, key, known)
    return np.stack([known[item_id] for item_id, _ in items])


def _read_cache(store: Store, key: str) -> dict[int, np.ndarray]:
    """The vectors of artifact ``key`` by item id; empty when there is none, logged when it cannot be read."""
    if not store.artifacts.exists(key):
        return {}
    try:
        with np.load(store.artifacts.local(key) / CACHE_FILE, allow_pickle=False) as stored:
            ids, vectors = stored["ids"], stored["vectors"]
        if ids.ndim != 1 or vectors.ndim != 2 or len(ids) != len(vectors):
            raise ValueError(f"ids of shape {ids.shape} and vectors of shape {vectors.shape} do not match")
    except (LoopwiseError, OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("the embeddings cache %s cannot be read (%s); encoding its items again", key, exc)
        return {}
    return dict(zip(ids.astype(np.int64).tolist(), vectors.astype(np.float32), strict=True))


def _write_cache(store: Store, key: str, vectors: dict[int, np.ndarray]) -> None:
    """Commit ``vectors`` as artifact ``key``, replacing the one there: a reader sees the old or the new."""
    with store.artifacts.writing(key, replace=True) as staged:
        np.savez(
            staged / CACHE_FILE,
            ids=np.fromiter(vectors, dtype=np.int64, count=len(vectors)),
            vectors=np.stack(list(vectors.values())).astype(np.float32, copy=False),
        )
