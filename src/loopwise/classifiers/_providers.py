"""Which ONNX Runtime execution providers a serving device asks for, and the fallback to the CPU.

A serving device is ``cpu`` (the default), ``cuda`` (the first GPU), ``cuda:N`` (GPU number N) or ``auto``
(a GPU when ONNX Runtime offers its CUDA provider, else the CPU). A GPU device asks ONNX Runtime for
``CUDAExecutionProvider`` first, then ``CPUExecutionProvider`` for the operators CUDA lacks. When the CUDA
provider is not in :func:`onnxruntime.get_available_providers` (the CPU-only ``onnxruntime`` wheel is
installed, not ``onnxruntime-gpu``), or the session does not open on it (no driver, no cuDNN, a bad GPU
number), the model is opened on the CPU provider alone and :func:`open_session` logs ONE warning saying
why and what to install; the caller reports the provider actually used, so a fallback is never silent.
``auto`` on a machine without the CUDA provider is the CPU by design, not a fallback: no warning.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopwise.errors import ClassifierError

log = logging.getLogger("loopwise.serving")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
#: a serving device: cpu, cuda, cuda:N or auto
DEVICE = re.compile(r"^(cpu|auto|cuda(:(0|[1-9][0-9]{0,2}))?)$")
DEVICE_HELP = "use cpu, cuda, cuda:N (the GPU's number, such as cuda:1) or auto"
#: what a user whose GPU device fell back to the CPU can do
INSTALL_HINT = (
    "install the gpu extra (pip install 'loopwise[gpu]', which brings onnxruntime-gpu in place of "
    "onnxruntime) on a machine with an NVIDIA driver, CUDA and cuDNN"
)


def check_device(device: str) -> str:
    """``device`` when it is a serving device, else :class:`ClassifierError` naming the choices."""
    if not isinstance(device, str) or not DEVICE.match(device):
        raise ClassifierError(f"device {device!r}: {DEVICE_HELP}")
    return device


def wants_gpu(device: str) -> bool:
    """Whether ``device`` names a GPU outright (``auto`` does not: it takes one only when there is one)."""
    return device.startswith("cuda")


@dataclass(frozen=True)
class ProviderPlan:
    """What to ask ONNX Runtime for: ``providers`` in order (names, or (name, options) pairs), and
    ``fallback``, why a GPU device gets the CPU alone (None when it is not a fallback)."""

    providers: list[Any]
    fallback: str | None = None

    @property
    def gpu(self) -> bool:
        return self.providers[0] != CPU


def plan_providers(device: str, available: list[str]) -> ProviderPlan:
    """The providers for ``device`` given ONNX Runtime's ``available`` providers
    (:func:`onnxruntime.get_available_providers`)."""
    check_device(device)
    if device == "cpu":
        return ProviderPlan([CPU])
    if CUDA not in available:
        if device == "auto":
            return ProviderPlan([CPU])
        return ProviderPlan(
            [CPU],
            f"ONNX Runtime has no {CUDA} here (available: {', '.join(available) or 'none'})",
        )
    index = int(device.partition(":")[2] or 0)
    return ProviderPlan([(CUDA, {"device_id": index}), CPU])


@dataclass(frozen=True)
class OpenedSession:
    """An ONNX Runtime session, the provider it runs on first, the fallback warning (None: none), and
    whether the CPU twin (``cpu_path``) was opened instead of the model asked for."""

    session: Any
    provider: str
    fallback: str | None = None
    swapped: bool = False


def open_session(
    path: Path, options: Any, device: str = "cpu", *, cpu_path: Path | None = None
) -> OpenedSession:
    """Open ``path`` for ``device``. When a ``cuda`` or ``auto`` device ends on the CPU, ``cpu_path`` is
    opened instead if given (an fp16 model's fp32 twin: the CPU provider runs fp32 faster and exactly);
    a GPU device that falls back logs one warning. Exceptions from opening on the CPU pass through."""
    import onnxruntime as ort

    plan = plan_providers(device, list(ort.get_available_providers()))
    reason = plan.fallback
    if plan.gpu:
        try:
            with warnings.catch_warnings():  # ONNX Runtime warns of providers it drops; we say it below
                warnings.simplefilter("ignore")
                session = ort.InferenceSession(str(path), sess_options=options, providers=plan.providers)
        except Exception as exc:  # any failure to open on the GPU falls back, said below
            reason = f"the {CUDA} failed to open ({type(exc).__name__}: {str(exc)[:300]})"
        else:
            used = session.get_providers()
            if used and used[0] == CUDA:
                return OpenedSession(session, CUDA)
            reason = f"ONNX Runtime opened the model on {', '.join(used)} only, not the {CUDA}"
    swapped = cpu_path is not None and device != "cpu"
    target = cpu_path if swapped and cpu_path is not None else path
    session = ort.InferenceSession(str(target), sess_options=options, providers=[CPU])
    if reason is None:  # cpu, or auto without a GPU: the CPU by design
        return OpenedSession(session, CPU, None, swapped)
    model = f", with the fp32 model {target.name}" if swapped else ""
    message = (
        f"device {device}: {reason}; serving on the CPU ({CPU}{model}). To serve on the GPU, {INSTALL_HINT}"
    )
    log.warning(message)
    return OpenedSession(session, CPU, message, swapped)


def describe_device(device: str) -> str:
    """``device`` with the provider a worker on this machine would get, for people: ``cpu``,
    ``cuda:1 (CUDAExecutionProvider)``, ``cuda (CPU fallback: ONNX Runtime has no ...)``."""
    if device == "cpu":
        return device
    import onnxruntime as ort

    plan = plan_providers(device, list(ort.get_available_providers()))
    if plan.fallback is not None:
        return f"{device} (CPU fallback: {plan.fallback})"
    return f"{device} ({CUDA if plan.gpu else CPU})"


def onnx_placement(device: str = "auto", precision: str = "auto") -> tuple[str, str]:
    """The serving device and export precision that ``--device`` and ``--precision`` ask of a command that
    runs a model's ONNX export as endpoints do (batch transform, monitoring baselines), so that its answers
    and embeddings are the ones endpoints give.

    ``auto`` stays ``auto`` (the CUDA provider when ONNX Runtime has one, else the CPU; fp32); ``cuda`` and
    ``cuda:N`` must exist on this machine (as for training) and default to the fp16 export; ``cpu``
    defaults to fp32. Refused with :class:`~loopwise.errors.ConfigurationError`: ``mps`` and ``bf16``
    (ONNX Runtime runs these exports on neither), fp16 on the CPU, a GPU this machine lacks.
    """
    from loopwise.classifiers.devices import check_device, check_precision, resolve_device, resolve_precision
    from loopwise.errors import ConfigurationError

    device, precision = check_device(device), check_precision(precision)
    if device == "mps":
        raise ConfigurationError(
            "device mps: ONNX Runtime runs the model's export on the CPU or a CUDA GPU only: "
            "use --device cpu, cuda or auto"
        )
    if precision == "bf16":
        raise ConfigurationError(
            "precision bf16: the model's ONNX export runs in fp32 or fp16 only: use --precision fp16 "
            "(on a GPU), fp32 or auto"
        )
    if device == "auto":
        return device, "fp32" if precision == "auto" else precision  # fp16 ends on its fp32 twin on a CPU
    resolved = resolve_device(device)
    if precision == "auto":
        return resolved, "fp16" if wants_gpu(resolved) else "fp32"
    return resolved, resolve_precision(precision, resolved)
