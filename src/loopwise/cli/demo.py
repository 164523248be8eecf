"""``loopwise demo``: the course loop on the reviews data, offline, on the embedded default.

For now: fetch and verify the data, prepare the course split, fine-tune MiniLM on a budget, evaluate it
on the test split, register it as the champion, and print where the report is. Later capabilities
(tuning, endpoints, monitoring, labeling, review) join the same command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from loopwise.cli._common import console, err_console, open_store, progress_bar, settings

COURSE_TEST_ACCURACY = 0.767


def demo(
    file: Annotated[
        Path | None, typer.Option(help="A local copy of the reviews CSV (verified, then cached).")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps of the fine-tuning budget.")] = 300,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 5e-5,
    max_seq_length: Annotated[int, typer.Option(min=8, max=512)] = 128,
    name: Annotated[str, typer.Option(help="Registered model name.")] = "reviews-sentiment",
) -> None:
    """Run the course loop: data -> course split -> fine-tune MiniLM -> evaluate -> register as champion."""
    from loopwise import registry
    from loopwise.classifiers import TrainConfig
    from loopwise.data.cache import fetch_reviews
    from loopwise.data.service import prepare_reviews
    from loopwise.evaluation.service import evaluate
    from loopwise.training.service import TrainRequest, train

    started = time.monotonic()
    current = settings()
    console.rule("1. data")
    csv_path = fetch_reviews(current, source_file=file)
    console.print(f"reviews CSV verified: {csv_path}")
    with open_store() as store:
        dataset = prepare_reviews(store, csv_path)
        sizes = " / ".join(f"{s} {info.rows:,}" for s, info in dataset.splits.items())
        console.print(f"course split {dataset.ref}: {sizes}")

        console.rule("2. fine-tune all-MiniLM-L6-v2")
        config = TrainConfig(
            learning_rate=learning_rate,
            batch_size=batch_size,
            epochs=1,
            max_seq_length=max_seq_length,
            steps_per_epoch=steps,
            warmup_ratio=0.1,
        )
        outcome = train(
            store,
            TrainRequest(dataset=dataset.ref, model_name=name, config=config, description="loopwise demo"),
            progress=err_console.is_terminal,
        )
        profile, val_acc = outcome.run.profile, outcome.run.metrics.get("val_acc", float("nan"))
        console.print(
            f"run {outcome.run.id[:12]}: validation accuracy {val_acc:.4f}, "
            f"{profile.get('examples_per_s', 0):.1f} examples/s"
        )

        console.rule("3. evaluate on the test split")
        with progress_bar("predicting") as update:
            result = evaluate(store, outcome.model.ref, dataset.ref, "test", progress=update)
        metrics = result.metrics
        low, high = metrics["intervals"]["accuracy"]
        console.print(
            f"test accuracy {metrics['accuracy']:.4f} (95% CI {low:.3f}-{high:.3f}; the course's model: "
            f"{COURSE_TEST_ACCURACY}), macro F1 {metrics['macro_f1']:.4f}"
        )

        console.rule("4. register")
        with store.uow() as uow:
            champion = registry.set_alias(uow, outcome.model.ref, "champion")
        console.print(f"{champion.ref} is {champion.name}@champion")
    console.rule("done")
    console.print(f"report: {result.report.html}")
    console.print(f"evaluation.json: {result.report.json}")
    console.print(f"took {time.monotonic() - started:.0f} s")
