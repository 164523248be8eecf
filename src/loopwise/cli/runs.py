"""``loopwise runs``: training runs, their metrics and profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loopwise.cli._common import console, err_console, open_store, print_json, short_time

app = typer.Typer(help="Training runs: list them, show one with its metrics and profiler summary.")


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the newest training runs."""
    from loopwise.training.service import list_runs

    with open_store() as store:
        runs = list_runs(store, limit)
    if as_json:
        print_json(runs)
        return
    table = Table("run", "status", "backend", "started", "finished", "best metrics")
    for run in runs:
        metrics = " ".join(f"{k}={v:.3f}" for k, v in run.metrics.items() if k.startswith("val_"))
        table.add_row(
            run.id[:12],
            run.status.value,
            run.backend,
            short_time(run.started_at),
            short_time(run.finished_at),
            metrics,
        )
    console.print(table)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw the loss and validation curves to this PNG file.")
    ] = None,
) -> None:
    """Show a run: parameters, final metrics, the profiler summary and the validation history."""
    from loopwise.training.service import run_history

    with open_store() as store:
        run, history = run_history(store, run_id)
    if plot is not None:
        from loopwise.evaluation.plots import training_curves_png

        series: dict[str, list[tuple[int, float]]] = {}
        for metric in history:
            series.setdefault(metric.name, []).append((metric.step, metric.value))
        training_curves_png(series, plot, title=f"run {run.id[:12]} ({run.backend}, {run.base_model})")
        err_console.print(f"curves: {plot}")
    if as_json:
        print_json({"run": run, "history": history})
        return
    console.print(
        f"[bold]run {run.id}[/bold]  {run.status.value}  backend {run.backend}  model {run.base_model}"
    )
    console.print(f"started {short_time(run.started_at)}  finished {short_time(run.finished_at)}")
    if run.error:
        console.print(f"[red]error:[/red] {run.error}")
    console.print("params: " + ", ".join(f"{k}={v}" for k, v in run.params.items()))
    if run.metrics:
        console.print("metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in run.metrics.items()))
    if run.profile:
        table = Table("profile", "value", title="profiler summary")
        for key, value in _flatten(run.profile):
            table.add_row(key, f"{value:,.3f}" if isinstance(value, float) else str(value))
        console.print(table)
    validations = [m for m in history if m.name.startswith("val_")]
    if validations:
        table = Table("step", "epoch", "metric", "value", title="validation history")
        for m in validations:
            table.add_row(str(m.step), f"{m.epoch:.2f}", m.name, f"{m.value:.4f}")
        console.print(table)


def _flatten(values: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows
