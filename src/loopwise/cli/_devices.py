"""``--device`` and ``--precision``: the options of the commands that run a torch model.

The spelling is checked while the options are parsed; :func:`placement` then resolves them on this
machine. Either failure is a usage error (one line, exit status 2) naming the option and the fix.
"""

from __future__ import annotations

from typing import Annotated

import typer

from loopwise.classifiers.devices import check_device, check_precision
from loopwise.errors import ConfigurationError


def _device(value: str) -> str:
    try:
        return check_device(value)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc)) from None


def _precision(value: str) -> str:
    try:
        return check_precision(value)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc)) from None


DeviceOption = Annotated[
    str,
    typer.Option(
        callback=_device,
        help="auto, cpu, cuda, cuda:N or mps. auto: the CUDA GPU with the most free memory, else MPS, "
        "else the CPU.",
    ),
]
PrecisionOption = Annotated[
    str,
    typer.Option(
        callback=_precision,
        help="auto, fp32, bf16 or fp16 (autocast; fp16 scales the loss). auto: bf16 on GPUs that have it, "
        "fp16 on older GPUs, fp32 on the CPU.",
    ),
]
#: ``loopwise train``'s: a fit's ``auto`` also takes bf16 on a CPU that computes it natively
TrainPrecisionOption = Annotated[
    str,
    typer.Option(
        callback=_precision,
        help="auto, fp32, bf16 or fp16 (autocast; fp16 scales the loss). auto: bf16 on GPUs that have it "
        "and on CPUs with AVX-512 BF16 or AMX, fp16 on older GPUs, fp32 on other CPUs.",
    ),
]


def placement(device: str, precision: str, *, training: bool = False) -> tuple[str, str]:
    """``device`` and ``precision`` resolved on this machine (``auto`` becomes, say, ``cuda:0`` and
    ``bf16``; ``training``: for a fit); a device this machine lacks, or a precision it cannot run, is a
    usage error."""
    from loopwise.classifiers.devices import resolve_device, resolve_precision

    try:
        resolved = resolve_device(device)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--device'") from None
    try:
        return resolved, resolve_precision(precision, resolved, training=training)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--precision'") from None


def onnx_placement(device: str, precision: str) -> tuple[str, str]:
    """``device`` and ``precision`` for a command that runs a model's ONNX export (batch transform,
    monitoring baselines; see :func:`loopwise.classifiers._providers.onnx_placement`); a refusal is a
    usage error naming the option at fault."""
    from loopwise.classifiers._providers import onnx_placement as resolve

    try:
        resolve(device, "auto")
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--device'") from None
    try:
        return resolve(device, precision)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--precision'") from None
