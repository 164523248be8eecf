"""``loopwise pipeline``: retraining pipelines, their runs and their steps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from loopwise.cli._common import console, open_store, print_json, short_time

app = typer.Typer(help="Retraining pipelines: create from a file, run, resume, watch.")

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
FileArgument = Annotated[Path, typer.Argument(help="The pipeline file (YAML).")]
RunArgument = Annotated[int, typer.Argument(help="The run's number (see `loopwise pipeline runs`).")]


@app.command()
def check(path: FileArgument) -> None:
    """Check a pipeline file without storing it: every problem with its line (the operations a step can
    use: `loopwise pipeline operations`)."""
    from loopwise.pipelines.spec import load_pipeline

    spec = load_pipeline(path)
    order = " -> ".join(f"{s.name} ({s.uses})" for s in spec.order())
    console.print(f"pipeline {spec.name} is valid: {order}", highlight=False)


@app.command()
def operations(as_json: AsJson = False) -> None:
    """The operations a step can use (``uses:``), with their inputs and outputs."""
    from loopwise.pipelines.operations import OPERATIONS

    rows: list[dict[str, Any]] = [
        {
            "operation": op.name,
            "required": list(op.required),
            "optional": list(op.optional),
            "outputs": list(op.outputs),
            "what": " ".join((op.run.__doc__ or "").split("\n\n")[0].replace("``", "").split()),
        }
        for op in OPERATIONS.values()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("operation", "inputs (required; optional)", "outputs", "what it does")
    for row in rows:
        inputs = ", ".join(row["required"]) + ("; " + ", ".join(row["optional"]) if row["optional"] else "")
        table.add_row(row["operation"], inputs, ", ".join(row["outputs"]), row["what"])
    console.print(table)


@app.command()
def create(path: FileArgument) -> None:
    """Check a pipeline file and store it (a new version when the pipeline exists)."""
    from loopwise.pipelines.service import create_pipeline

    with open_store() as store:
        spec, new = create_pipeline(store, path)
    console.print(f"pipeline {spec.name} {'created' if new else 'updated'}: {len(spec.steps)} steps")


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="The pipeline's name.")],
    trigger: Annotated[str, typer.Option(help="What started the run, as it is recorded.")] = "manual",
) -> None:
    """Run the pipeline now; a failing step stops the run, which `loopwise pipeline resume` goes on with."""
    from loopwise.pipelines.service import run_pipeline

    with open_store() as store:
        found = run_pipeline(
            store, name, trigger=trigger, progress=lambda line: console.print(line, highlight=False)
        )
    _summary(found)
    if found.status != "Succeeded":
        raise typer.Exit(1)


@app.command()
def resume(
    run_id: RunArgument,
    force: Annotated[
        bool, typer.Option("--force", help="Take up a run that shows Running because its process was killed.")
    ] = False,
) -> None:
    """Go on with a failed or abandoned run from its unfinished step; steps that succeeded are not
    repeated."""
    from loopwise.pipelines.service import resume as resume_run

    with open_store() as store:
        found = resume_run(
            store, run_id, force=force, progress=lambda line: console.print(line, highlight=False)
        )
    _summary(found)
    if found.status != "Succeeded":
        raise typer.Exit(1)


@app.command()
def status(run_id: RunArgument, as_json: AsJson = False) -> None:
    """A run's steps: state, attempts, outputs, and the error of a failed one."""
    from loopwise.pipelines.service import get_run

    with open_store() as store:
        found = get_run(store, run_id)
    if as_json:
        print_json(found.to_dict())
        return
    _summary(found)
    table = Table("step", "status", "attempts", "ended", "outputs or error")
    for step in found.steps:
        detail = step.error if step.error else ", ".join(f"{k}={v}" for k, v in (step.outputs or {}).items())
        table.add_row(step.name, step.status, str(step.attempts), short_time(step.ended_at), detail or "-")
    console.print(table)


@app.command()
def runs(
    name: Annotated[str | None, typer.Argument(help="Only this pipeline's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 20,
    as_json: AsJson = False,
) -> None:
    """Pipeline runs, newest first."""
    from loopwise.pipelines.service import list_runs

    with open_store() as store:
        found = list_runs(store, name, limit)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    table = Table("run", "pipeline", "status", "trigger", "started", "ended", "error")
    for r in found:
        table.add_row(
            str(r.id),
            r.pipeline,
            r.status,
            r.trigger,
            short_time(r.started_at),
            short_time(r.ended_at),
            r.error or "",
        )
    console.print(table)


def _summary(found: object) -> None:
    from loopwise.pipelines.records import PipelineRun

    assert isinstance(found, PipelineRun)
    done = sum(s.status == "Succeeded" for s in found.steps)
    steps = f"{done}/{len(found.steps)} steps succeeded"
    line = f"run {found.id} of pipeline {found.pipeline}: {found.status} ({steps})"
    console.print(line + (f"; {found.error}" if found.error else ""), highlight=False)
