"""``loopwise evaluate``: metrics, plots and an HTML report for a model on a split; paired comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopwise.cli._common import console, open_store, print_json, progress_bar
from loopwise.cli._devices import DeviceOption, PrecisionOption, placement


def evaluate(
    model: Annotated[
        str | None, typer.Argument(help="NAME, NAME:VERSION, NAME@ALIAS or a saved classifier directory.")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Data set reference: NAME or NAME:VERSION (default: the one the model was trained on)."
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="Split to evaluate on.")] = "test",
    output: Annotated[
        Path | None, typer.Option(help="Report directory (default: under the artifacts).")
    ] = None,
    compare: Annotated[
        tuple[str, str] | None, typer.Option(help="Compare two models on the same examples: --compare A B.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Evaluate MODEL on a split (evaluation.json, confusion matrix, reliability diagram, report.html), or
    compare two models with McNemar's test and a paired bootstrap."""
    from loopwise.evaluation.service import compare as run_compare
    from loopwise.evaluation.service import evaluate as run_evaluate

    if (model is None) == (compare is None):
        raise typer.BadParameter("give either MODEL or --compare A B")
    if (device, precision) != ("auto", "auto"):  # auto always resolves: torch loads only when asked for more
        device, precision = placement(device, precision)
    with open_store() as store, progress_bar("predicting") as update:
        if compare is not None:
            outcome = run_compare(
                store,
                compare[0],
                compare[1],
                dataset,
                split,
                out_dir=output,
                batch_size=batch_size,
                progress=update,
                device=device,
                precision=precision,
            )
            if as_json:
                print_json(outcome.comparison)
            else:
                console.print(outcome.comparison["summary"])
                console.print(f"report: {outcome.path}")
            return
        assert model is not None
        result = run_evaluate(
            store,
            model,
            dataset,
            split,
            out_dir=output,
            batch_size=batch_size,
            progress=update,
            device=device,
            precision=precision,
        )
    if as_json:
        print_json({"metrics": result.metrics, "report": result.report})
        return
    m = result.metrics
    low, high = m["intervals"]["accuracy"]
    console.print(
        f"{result.record.model_ref} on {result.dataset} {split} ({m['n']} examples): "
        f"accuracy {m['accuracy']:.4f} (95% CI {low:.3f}-{high:.3f}), macro F1 {m['macro_f1']:.4f}, "
        f"ECE {m['ece']:.4f}"
    )
    console.print(f"report: {result.report.html}")
    console.print(f"evaluation.json: {result.report.json}")
