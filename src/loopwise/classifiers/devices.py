"""Where a fit or a prediction runs, and in what precision: ``--device`` and ``--precision``.

Two steps, so that the cheap one can run anywhere:

- :func:`check_device` and :func:`check_precision` check the spelling only and import nothing heavy (the
  CLI's option parsing and the tuning spec checker call them).
- :func:`resolve_device` and :func:`resolve_precision` look at the machine and turn ``auto`` into what
  runs: ``auto`` is the CUDA device with the most free memory (``torch.cuda.mem_get_info``), else MPS,
  else the CPU; precision ``auto`` is bf16 on a CUDA device with native bf16
  (``torch.cuda.is_bf16_supported(including_emulation=False)``), fp16 with loss scaling on an older
  CUDA device, and on the CPU bf16 for *training* where the CPU computes bf16 natively
  (:func:`cpu_native_bf16`: AVX-512 BF16 or AMX), fp32 elsewhere. bf16 on the CPU is allowed anywhere
  (CPU autocast runs it); fp16 on the CPU is refused.

Why bf16 trains on such a CPU: its matrix products run about 1.8x faster than fp32's, and a MiniLM
fine-tuning step about 1.5x (``docs/benchmarks.md``, train_throughput), while the loss curve and the
validation accuracy stay those of fp32 (the weights and the optimizer stay fp32; autocast only runs the
products in bf16). Evaluation, batch transforms and serving on the CPU stay fp32 unless asked (``auto``
without ``training``): they compare against fp32 ONNX exports, and bf16 was not measured to pay there; so
a classifier fitted with ``auto`` predicts in fp32 on such a CPU too.

A resolved :class:`Placement` says how to run: move the model to :attr:`Placement.torch_device`, move
batches with :meth:`Placement.to_device` (pinned memory and non-blocking copies on CUDA), run forward
passes inside :meth:`Placement.autocast` and, for fp16, scale the loss with :meth:`Placement.grad_scaler`.
Every refusal is a :class:`~loopwise.errors.ConfigurationError` naming the valid values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from loopwise.errors import ConfigurationError

if TYPE_CHECKING:
    import torch

    from loopwise.classifiers._base import TrainConfig

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
_CUDA_INDEX = re.compile(r"cuda:(\d+)")


def check_device(value: str) -> str:
    """``value`` as written in lower case (``cuda:01`` becomes ``cuda:1``); raise
    :class:`ConfigurationError` for anything that is not one of :data:`DEVICES`."""
    text = str(value).strip().lower()
    if text in ("auto", "cpu", "cuda", "mps"):
        return text
    match = _CUDA_INDEX.fullmatch(text)
    if match:
        return f"cuda:{int(match.group(1))}"
    raise ConfigurationError(
        f"unknown device {value!r}: use one of auto, cpu, cuda, cuda:N (N a GPU index, as in cuda:0) or mps"
    )


def check_precision(value: str) -> str:
    """``value`` in lower case; raise :class:`ConfigurationError` unless it is one of :data:`PRECISIONS`."""
    text = str(value).strip().lower()
    if text in PRECISIONS:
        return text
    raise ConfigurationError(f"unknown precision {value!r}: use one of {', '.join(PRECISIONS)}")


def resolve_device(value: str = "auto") -> str:
    """The device ``value`` names on this machine: ``cpu``, ``cuda:N`` or ``mps``.

    ``auto``: the CUDA device with the most free memory, else MPS, else the CPU. ``cuda``: the CUDA
    device with the most free memory. Raises :class:`ConfigurationError` when the device is not there.
    """
    import torch

    device = check_device(value)
    if device == "cpu":
        return device
    cuda = torch.cuda.is_available()
    if device == "auto":
        if cuda:
            return _freest_cuda_device()
        return "mps" if _mps_available() else "cpu"
    if device == "mps":
        if not _mps_available():
            raise ConfigurationError(
                "device mps was asked for but this machine has no usable MPS (Apple GPU) device: "
                "use --device cpu or auto"
            )
        return device
    if not cuda:
        raise ConfigurationError(
            f"device {device} was asked for but this machine has no CUDA device (or this torch is built "
            "without CUDA): use --device cpu or auto"
        )
    if device == "cuda":
        return _freest_cuda_device()
    index, count = int(device.split(":")[1]), torch.cuda.device_count()
    if index >= count:
        raise ConfigurationError(
            f"device {device} was asked for but this machine has {count} CUDA device(s): "
            f"use cuda:0 to cuda:{count - 1}, or cuda to take the one with the most free memory"
        )
    return device


def resolve_precision(value: str, device: str, *, training: bool = False) -> str:
    """The precision ``value`` means on the resolved ``device``: ``fp32``, ``bf16`` or ``fp16``.
    ``training``: ``auto`` is for a fit, which on a CPU with native bf16 (:func:`cpu_native_bf16`) runs in
    bf16; otherwise ``auto`` on the CPU is fp32.

    Raises :class:`ConfigurationError` for fp16 on the CPU and bf16 on a CUDA device without native bf16.
    """
    precision = check_precision(value)
    kind = device.split(":")[0]
    if kind == "cuda":
        native_bf16 = _native_bf16(device)
        if precision == "auto":
            return "bf16" if native_bf16 else "fp16"
        if precision == "bf16" and not native_bf16:
            raise ConfigurationError(
                f"precision bf16 was asked for but {device} has no native bf16 (it needs compute capability "
                "8.0 or later): use --precision fp16 (with loss scaling) or fp32"
            )
        return precision
    if precision == "auto":
        return "bf16" if training and kind == "cpu" and cpu_native_bf16() else "fp32"
    if kind == "cpu" and precision == "fp16":
        raise ConfigurationError(
            "precision fp16 is not supported on the CPU (it would need loss scaling and runs slower than "
            "fp32 there): use --precision bf16 or fp32, or a CUDA device"
        )
    return precision


def resolve_placement(device: str = "auto", precision: str = "auto", *, training: bool = False) -> Placement:
    """:func:`resolve_device` then :func:`resolve_precision` (for a fit when ``training``), as one
    :class:`Placement`."""
    resolved = resolve_device(device)
    return Placement(resolved, resolve_precision(precision, resolved, training=training))


def resolve_config(config: TrainConfig) -> TrainConfig:
    """A copy of a fit's ``config`` whose ``device`` and ``precision`` are resolved on this machine
    (``auto`` becomes, say, ``cuda:0`` and ``bf16``), so that a run records what it ran on."""
    placement = resolve_placement(config.device, config.precision, training=True)
    return replace(config, device=placement.device, precision=placement.precision)


@dataclass(frozen=True)
class Placement:
    """A resolved device (``cpu``, ``cuda:N``, ``mps``) and precision (``fp32``, ``bf16``, ``fp16``).

    Build it with :func:`resolve_placement`; constructing one directly skips the machine's checks (tests
    use that to run the fp16 path on the CPU).
    """

    device: str = "cpu"
    precision: str = "fp32"

    @property
    def kind(self) -> str:
        """The device type without its index: ``cpu``, ``cuda`` or ``mps`` (autocast's ``device_type``)."""
        return self.device.split(":")[0]

    @property
    def torch_device(self) -> torch.device:
        import torch

        return torch.device(self.device)

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for fp32 (no autocast)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def pin_memory(self) -> bool:
        """Whether host batches are pinned (page-locked) so that copies to the device can be asynchronous."""
        return self.kind == "cuda"

    @property
    def uses_loss_scaling(self) -> bool:
        return self.precision == "fp16"

    def autocast(self) -> Any:
        """A context manager running its block under ``torch.autocast`` in this precision (fp32: none)."""
        import torch

        dtype = self.dtype
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.kind, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A fresh ``torch.amp.GradScaler`` for fp16 (gradients would underflow without one), else None."""
        import torch

        return torch.amp.GradScaler(self.kind) if self.uses_loss_scaling else None

    def to_device(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``batch`` on the device: non-blocking copies (from pinned memory when the device is CUDA)."""
        device = self.torch_device
        return {key: value.to(device, non_blocking=True) for key, value in batch.items()}

    def synchronize(self) -> None:
        """Wait for the device's queued work (CUDA), so that host clocks time what ran."""
        if self.kind == "cuda":
            import torch

            torch.cuda.synchronize(self.torch_device)

    def as_params(self) -> dict[str, str]:
        return {"device": self.device, "precision": self.precision}


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX tiles), where bf16 autocast trains
    faster than fp32. Elsewhere (older x86, Arm here) torch emulates bf16 and gains nothing."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's, since torch 2.3
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _freest_cuda_device() -> str:
    """``cuda:N`` for the CUDA device with the most free memory (the first on a tie); a device that
    cannot report its memory (busy in exclusive mode) is skipped."""
    import torch

    best, best_free = None, -1
    for index in range(torch.cuda.device_count()):
        try:
            free, _total = torch.cuda.mem_get_info(index)
        except RuntimeError:
            continue
        if free > best_free:
            best, best_free = index, free
    if best is None:
        raise ConfigurationError(
            "every CUDA device is busy or unusable (none reports its free memory): use --device cpu, "
            "or free a GPU"
        )
    return f"cuda:{best}"


def _native_bf16(device: str) -> bool:
    import torch

    with torch.cuda.device(torch.device(device)):
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
