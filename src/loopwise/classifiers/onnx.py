"""The ONNX backend: a fine-tuned transformers classifier exported to ONNX and run by ONNX Runtime.

:func:`export_onnx` turns a :class:`~loopwise.classifiers.transformer.TransformerClassifier` into a
directory that :class:`OnnxClassifier` loads without torch or transformers: ``model.onnx`` (fp32, dynamic
batch and sequence axes; torch's ``torch.export``-based exporter), optionally ``model.int8.onnx`` (ONNX
Runtime's dynamic int8 quantization of the linear layers, for the CPU) and ``model.fp16.onnx`` (for GPUs:
the model exported by torch in half precision, since onnxconverter-common's float16 conversion is not a
dependency), ``tokenizer.json`` (run by the ``tokenizers`` library) and the manifest. A classifier loads
on a serving device (:mod:`loopwise.classifiers._providers`): ONNX Runtime's CUDA provider for ``cuda``,
falling back to the CPU with one warning. Serving uses it: ONNX Runtime answered a short request in 9 ms
against PyTorch's 16 ms on this kind of machine, 5-7 ms in int8.

An ONNX classifier only predicts; fine-tune the transformers checkpoint it came from instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

from loopwise.classifiers._base import (
    Examples,
    FitResult,
    Reporter,
    TextClassifier,
    TrainConfig,
    read_manifest,
    write_manifest,
)
from loopwise.errors import CheckpointError, ClassifierError

if TYPE_CHECKING:
    from loopwise.classifiers.transformer import TransformerClassifier

FP32 = "model.onnx"
INT8 = "model.int8.onnx"
FP16 = "model.fp16.onnx"
TOKENIZER = "tokenizer.json"
Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")
#: each precision's model file
FILES: dict[str, str] = {"fp32": FP32, "fp16": FP16, "int8": INT8}
#: the ONNX opset of exported models
OPSET = 18


def export_onnx(
    classifier: TransformerClassifier, directory: Path, *, int8: bool = False, fp16: bool = False
) -> Path:
    """Export ``classifier`` into ``directory`` (created; files there are replaced): ``model.onnx``,
    with ``int8`` also ``model.int8.onnx``, with ``fp16`` also ``model.fp16.onnx`` (a half-precision copy
    of the model exported by torch; the classifier itself is untouched), the tokenizer and the manifest.
    Returns ``directory``. Raises :class:`ClassifierError` when the model cannot be exported."""
    import copy

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _export(classifier, classifier.model, directory / FP32)
    if fp16:
        _export(classifier, copy.deepcopy(classifier.model).half(), directory / FP16)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _quiet_exporter():
            quantize_dynamic(directory / FP32, directory / INT8, weight_type=QuantType.QInt8)
    classifier.tokenizer.backend_tokenizer.save(str(directory / TOKENIZER))
    write_manifest(
        directory,
        OnnxClassifier.backend,
        classifier.labels,
        max_seq_length=classifier.max_seq_length,
        pad_id=int(classifier.tokenizer.pad_token_id or 0),
        base_model=classifier.base_model,
        precisions=["fp32", *(["fp16"] if fp16 else []), *(["int8"] if int8 else [])],
    )
    return directory


def _export(classifier: TransformerClassifier, module: Any, path: Path) -> None:
    """``module`` (the classifier's model or a half-precision copy) exported to ``path`` in one file."""
    import torch

    model = _logits_only(module).eval()
    sample = classifier.tokenizer(
        ["an example", "a second, longer example"], padding=True, return_tensors="pt"
    )
    inputs = (sample["input_ids"], sample["attention_mask"])
    batch, length = torch.export.Dim("batch"), torch.export.Dim("sequence", max=classifier.max_seq_length)
    try:
        with _quiet_exporter(), torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                model,
                inputs,
                str(path),
                input_names=["input_ids", "attention_mask"],
                output_names=["logits", "sentence_embedding"],
                dynamic_shapes={"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}},
                opset_version=OPSET,
                dynamo=True,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:
        raise ClassifierError(
            f"cannot export {classifier.base_model} to ONNX ({type(exc).__name__}: {str(exc)[:500]})"
        ) from exc
    _inline_external_data(path)


class OnnxClassifier(TextClassifier):
    """An exported classifier run by ONNX Runtime (see :func:`export_onnx`); prediction only.

    ``precision``: ``fp32``, ``fp16`` or ``int8`` (when exported with it); ``threads``: ONNX Runtime's
    intra-op threads (default: ``OMP_NUM_THREADS``, else all cores); ``device``: ``cpu``, ``cuda``,
    ``cuda:N`` or ``auto`` (:mod:`loopwise.classifiers._providers`). ``provider`` is the execution
    provider the model runs on, and ``fallback`` the warning given when a GPU device fell back to the
    CPU (None otherwise); an fp16 model falls back to its fp32 twin, reported in ``precision``."""

    backend = "onnx"
    precision: Precision
    max_seq_length: int
    pad_id: int
    base_model: str
    session: Any
    tokenizer: Any
    has_embedding: bool
    device: str
    provider: str
    fallback: str | None

    def __init__(self, labels: Sequence[str]) -> None:
        raise ClassifierError(
            "an ONNX classifier is made by exporting a fine-tuned transformers classifier "
            "(loopwise.classifiers.onnx.export_onnx), not built empty; train with backend 'transformers'"
        )

    def fit(
        self,
        train: Examples,
        validation: Examples | None = None,
        config: TrainConfig | None = None,
        reporter: Reporter | None = None,
        *,
        progress: bool | None = None,
    ) -> FitResult:
        raise ClassifierError(
            "an ONNX classifier only predicts: fine-tune the transformers checkpoint it was exported from"
        )

    @classmethod
    def load(
        cls,
        directory: Path,
        precision: Precision = "fp32",
        threads: int | None = None,
        device: str = "cpu",
    ) -> Self:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from loopwise.classifiers._providers import check_device, open_session

        directory = Path(directory)
        manifest = read_manifest(directory)
        exported = manifest.get("precisions", ["fp32"])
        if precision not in exported:
            raise CheckpointError(
                f"{directory} holds no {precision} model (it has {', '.join(exported)}); "
                f"export it again with {precision}"
            )
        check_device(device)
        path = directory / FILES[precision]
        for required in (path, directory / TOKENIZER):
            if not required.is_file():
                raise CheckpointError(f"{required} is missing: export the classifier again")
        classifier = cls.__new__(cls)
        TextClassifier.__init__(classifier, manifest["labels"])
        classifier.precision = precision
        classifier.max_seq_length = int(manifest["max_seq_length"])
        classifier.pad_id = int(manifest.get("pad_id", 0))
        classifier.base_model = str(manifest.get("base_model", directory))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        options.inter_op_num_threads = 1
        # spinning between calls is ONNX Runtime's default, kept on purpose: turning it off cost 2-4 ms a
        # request here (benchmarks/serving.py)
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        try:
            twin = directory / FP32 if precision == "fp16" else None
            opened = open_session(path, options, device, cpu_path=twin)
            tokenizer = Tokenizer.from_file(str(directory / TOKENIZER))
        except Exception as exc:
            raise CheckpointError(
                f"cannot load {path} ({type(exc).__name__}: {exc}); export the classifier again"
            ) from exc
        classifier.session, classifier.provider, classifier.fallback = (
            opened.session,
            opened.provider,
            opened.fallback,
        )
        classifier.device = device
        if opened.swapped:
            classifier.precision = "fp32"
        classifier.has_embedding = "sentence_embedding" in {o.name for o in classifier.session.get_outputs()}
        tokenizer.no_padding()
        tokenizer.enable_truncation(classifier.max_seq_length)
        classifier.tokenizer = tokenizer
        return classifier

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._run(texts, batch_size, embed=False)[0]

    def predict_with_embeddings(
        self, texts: Sequence[str], batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.has_embedding:  # exported before embeddings were
            return self.predict_proba(texts, batch_size), None
        return self._run(texts, batch_size, embed=True)

    def _run(
        self, texts: Sequence[str], batch_size: int, embed: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        texts = list(texts)
        result = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        embeddings: np.ndarray | None = None
        if not texts:
            return result, np.empty((0, 0), dtype=np.float32) if embed else None
        outputs = ["logits", "sentence_embedding"] if embed else ["logits"]
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]
        for rows in length_groups([len(x) for x in ids], batch_size):
            input_ids, mask = pad([ids[i] for i in rows], self.pad_id)
            answers = self.session.run(outputs, {"input_ids": input_ids, "attention_mask": mask})
            result[rows] = softmax(answers[0].astype(np.float64))
            if embed:
                if embeddings is None:
                    embeddings = np.empty((len(texts), answers[1].shape[1]), dtype=np.float32)
                embeddings[rows] = answers[1]
        return result, embeddings

    def save(self, directory: Path) -> None:
        raise ClassifierError("an ONNX classifier is saved by export_onnx; copy its directory to move it")


#: a group's padding may add at most this share of its texts' own tokens
MAX_PADDING = 0.15


def length_groups(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped for model calls: by length, at most ``batch_size`` a group, and a new group
    whenever padding to the longest would add more than :data:`MAX_PADDING` of the group's real tokens.
    On CPU a transformer's cost grows with the tokens it is given, pads included, so a batch of mixed
    lengths padded to its longest costs more than its texts alone would."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order:
        width = lengths[index]  # the longest so far: the order is by length
        if current and (
            len(current) >= batch_size or width * (len(current) + 1) > (1 + MAX_PADDING) * (real + width)
        ):
            groups.append(current)
            current, real = [], 0
        current.append(index)
        real += width
    if current:
        groups.append(current)
    return groups


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64) padded to the longest sequence."""
    width = max(len(ids) for ids in sequences)
    input_ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return input_ids, mask


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def _logits_only(model: Any) -> Any:
    """``model`` as a module of (input_ids, attention_mask) -> (logits, sentence embedding): what gets
    exported."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            # the sentence embedding: the last layer's tokens, mean-pooled over the mask, unit length
            mask = attention_mask.unsqueeze(-1).to(out.hidden_states[-1].dtype)
            pooled = (out.hidden_states[-1] * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return out.logits, torch.nn.functional.normalize(pooled, dim=-1)

    return LogitsOnly()


def _inline_external_data(path: Path) -> None:
    """Keep the model in one file: the exporter may write large weights beside it (``model.onnx.data``)."""
    data = path.with_name(path.name + ".data")
    if not data.exists():
        return
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=False)
    data.unlink()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter and the quantizer report progress and known deprecations: keep them out of users'
    output (errors still raise)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "root")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _stdout_muted_in_this_thread():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class _ThreadMutedStdout:
    """``sys.stdout`` while some threads export: their prints are dropped, every other thread's go
    through (``contextlib.redirect_stdout`` is process-wide: an export in a server's thread would silence
    the main thread's output meanwhile)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def write(self, text: str) -> int:
        if threading.get_ident() in _MUTED:
            return len(text)
        return int(self.real.write(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


_MUTED: set[int] = set()
_MUTED_LOCK = threading.Lock()


@contextlib.contextmanager
def _stdout_muted_in_this_thread() -> Iterator[None]:
    me = threading.get_ident()
    with _MUTED_LOCK:
        if not isinstance(sys.stdout, _ThreadMutedStdout):
            sys.stdout = _ThreadMutedStdout(sys.stdout)
        _MUTED.add(me)
    try:
        yield
    finally:
        with _MUTED_LOCK:
            _MUTED.discard(me)
            if not _MUTED and isinstance(sys.stdout, _ThreadMutedStdout):
                sys.stdout = sys.stdout.real
