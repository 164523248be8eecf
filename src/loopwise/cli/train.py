"""``loopwise train``: fine-tune a classifier on a data set version and register it."""

from __future__ import annotations

from typing import Annotated

import typer

from loopwise.cli._common import console, err_console, open_store
from loopwise.cli._devices import DeviceOption, TrainPrecisionOption, placement


def train(
    dataset: Annotated[str, typer.Option(help="Data set reference: NAME or NAME:VERSION.")] = "reviews",
    backend: Annotated[
        str, typer.Option(help="transformers (BERT family) or tfidf (baseline).")
    ] = "transformers",
    base_model: Annotated[
        str | None,
        typer.Option(
            "--base-model",
            "--model",
            help="Model to fine-tune: a local Hugging Face model directory, or a hub id such as roberta-base "
            "(downloaded when online; offline it must be in the local cache). Default: the bundled "
            "all-MiniLM-L6-v2. BERT, RoBERTa, DistilBERT and DeBERTa-v2 families are tested.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Registered model name (default: DATASET-BACKEND).")
    ] = None,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 5e-5,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    epochs: Annotated[int, typer.Option(min=1)] = 1,
    max_seq_length: Annotated[
        int, typer.Option(min=8, max=512, help="Longest input in tokens; longer texts are cut.")
    ] = 128,
    freeze_layers: Annotated[
        int,
        typer.Option(help="Freeze the embeddings and the N lowest encoder layers; -1 freezes the encoder."),
    ] = 0,
    seed: int = 42,
    steps_per_epoch: Annotated[int | None, typer.Option(min=1, help="Cap optimizer steps per epoch.")] = None,
    warmup_ratio: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.1,
    weight_decay: Annotated[float, typer.Option(min=0.0)] = 0.01,
    validation_batch_size: Annotated[int, typer.Option(min=1)] = 64,
    eval_every: Annotated[int | None, typer.Option(min=1, help="Also validate every N steps.")] = None,
    stream: Annotated[bool, typer.Option(help="Stream the training split from disk in pools.")] = False,
    pool_size: Annotated[int, typer.Option(min=1, help="Examples per pool when streaming.")] = 4096,
    parent: Annotated[str | None, typer.Option(help="Model version this one derives from (lineage).")] = None,
    description: str = "",
    device: DeviceOption = "auto",
    precision: TrainPrecisionOption = "auto",
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Train data-parallel over N local processes (PyTorch DDP: gloo on CPU, nccl on GPUs); "
            "--batch-size is the global batch and must be a multiple of N.",
        ),
    ] = 1,
    executor: Annotated[
        str,
        typer.Option(
            help="Where the --processes run: 'process' (this host, torch's elastic agent) or 'ray' (Ray "
            "Train's TorchTrainer: a worker each on the Ray cluster, a GPU each when --device asks for CUDA "
            "or auto finds a GPU per worker; pip install 'loopwise[ray]').",
        ),
    ] = "process",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="The Ray cluster for --executor ray, as in auto or ray://host:10001 (default: start a "
            "local one). Its nodes must see the artifact root at the same path.",
        ),
    ] = None,
) -> None:
    """Fine-tune on the train split, validate every epoch, keep the best checkpoint, register the model."""
    from loopwise.classifiers import TrainConfig
    from loopwise.training.service import TrainRequest
    from loopwise.training.service import train as run_training

    if batch_size % processes:
        raise typer.BadParameter(
            f"--batch-size {batch_size} cannot be split over {processes} processes: "
            f"use a multiple of {processes}",
            param_hint="--processes",
        )
    _check_executor(executor, ray_address, backend)
    # TF-IDF runs on the CPU whatever is asked (don't load torch for it); Ray's workers resolve their own
    if backend == "transformers" and executor == "process":
        device, precision = placement(device, precision, training=True)
    config = TrainConfig(
        learning_rate=learning_rate,
        batch_size=batch_size,
        epochs=epochs,
        max_seq_length=max_seq_length,
        freeze_layers=freeze_layers,
        seed=seed,
        steps_per_epoch=steps_per_epoch,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        validation_batch_size=validation_batch_size,
        eval_every_steps=eval_every,
        stream_pool_size=pool_size if stream else None,
        device=device,
        precision=precision,
    )
    request = TrainRequest(
        dataset=dataset,
        backend=backend,
        base_model=base_model,
        model_name=name,
        config=config,
        stream=stream,
        parent=parent,
        description=description,
        processes=processes,
        executor=executor,
        ray_address=ray_address,
    )
    with open_store() as store:
        outcome = run_training(store, request, progress=err_console.is_terminal)
    assert outcome.model is not None  # nothing stops a plain run early
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in outcome.run.metrics.items())
    console.print(f"run {outcome.run.id[:12]} completed: {metrics}")
    console.print(f"registered model [bold]{outcome.model.ref}[/bold] ({outcome.model.uri})")


def _check_executor(executor: str, ray_address: str | None, backend: str) -> None:
    """``--executor`` and ``--ray-address``: a usage error for a value or combination that cannot run."""
    from loopwise.training.service import EXECUTORS

    if executor not in EXECUTORS:
        raise typer.BadParameter(f"{executor!r}: use one of {', '.join(EXECUTORS)}", param_hint="--executor")
    if ray_address is not None and executor != "ray":
        raise typer.BadParameter(
            "is for --executor ray: add --executor ray or remove it", param_hint="--ray-address"
        )
    if executor == "ray" and backend != "transformers":
        raise typer.BadParameter(
            f"ray trains the transformers backend over several workers; {backend} trains in one process: "
            "use --executor process",
            param_hint="--executor",
        )
