"""``loopwise batch-transform``: offline inference over a JSON lines file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopwise.cli._devices import DeviceOption, PrecisionOption, onnx_placement


def batch_transform(
    model: Annotated[str, typer.Argument(help="A model reference: name:version or name@alias.")],
    source: Annotated[Path, typer.Argument(help='Input JSON lines: {"features": [text]} or {"text": ...}.')],
    target: Annotated[
        Path, typer.Argument(help="Output JSON lines: probability, predicted_label, probabilities.")
    ],
    batch_size: Annotated[int, typer.Option(min=1, max=4096, help="Texts per model call.")] = 64,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Run a model over a file offline (transformers models through their ONNX export, on ONNX Runtime's
    CUDA provider for --device cuda, fp16 there unless --precision says otherwise), in input order, with a
    progress bar; the output appears whole or not at all."""
    from loopwise.cli._common import console, open_store, progress_bar
    from loopwise.errors import DataFormatError
    from loopwise.serving.batch import batch_transform as transform
    from loopwise.serving.batch import count_lines

    if (device, precision) != ("auto", "auto"):  # auto resolves without torch: ONNX Runtime decides
        device, precision = onnx_placement(device, precision)
    if not source.is_file():
        raise DataFormatError(f"no input file at {source}")
    total = count_lines(source)
    with open_store() as store, progress_bar(f"batch transform {source.name}", total=total) as update:
        done = transform(
            store,
            model,
            source,
            target,
            batch_size=batch_size,
            progress=update,
            device=device,
            precision=precision,
        )
    placed = done.placed
    on = f"{placed.provider or 'cpu'}, {placed.precision}"
    console.print(f"{done.lines} lines answered by {model} ({on}): {target}", highlight=False)
