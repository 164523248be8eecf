"""``loopwise tune``: automatic model tuning: check a spec, start a job, resume it, see its trials."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from loopwise.cli._common import console, open_store, print_json

app = typer.Typer(help="Automatic model tuning: tuning specs (random, grid, bayesian, hyperband) and jobs.")

SpecArgument = Annotated[
    str,
    typer.Argument(help="A tuning spec YAML file, or a built-in spec: course_lab1, default_bayesian."),
]


def _spec_path(spec: str) -> Path:
    from loopwise.tuning import BUILTIN_SPECS, builtin_spec_path

    return builtin_spec_path(spec) if spec in BUILTIN_SPECS and not Path(spec).exists() else Path(spec)


def _print_trial(trial: Any) -> None:
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    error = trial.user_attrs.get("error")
    console.print(
        f"trial {trial.number}: {trial.state.name.lower()} objective {value}"
        + (f" ({error.splitlines()[0][:200]})" if error else ""),
        highlight=False,
    )


@app.command()
def check(
    spec: SpecArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checked spec as JSON.")] = False,
) -> None:
    """Check a tuning spec and print it with every alias resolved; exit 1 naming each bad field."""
    from loopwise.tuning import load_spec

    path = _spec_path(spec)
    checked = load_spec(path)
    if as_json:
        print_json(checked.to_dict())
        return
    console.print(f"[bold]{checked.name}[/bold]: valid ({path})")
    console.print(yaml.safe_dump(checked.to_dict(), sort_keys=False).rstrip(), highlight=False)


@app.command()
def start(
    spec: SpecArgument,
    name: Annotated[str | None, typer.Option("--name", help="The job's name (default: the spec's).")] = None,
) -> None:
    """Check the spec, record the job and run its trials, one process each, until it is done."""
    from loopwise.tuning import load_spec
    from loopwise.tuning.service import run_job, start_job

    checked = load_spec(_spec_path(spec))
    with open_store() as store:
        job = start_job(store, checked, name=name)
        console.print(f"tuning job [bold]{job.name}[/bold] started ({checked.max_trials} trials)")
        job = run_job(store, job.name, progress=_print_trial)
    _print_outcome(job)


@app.command()
def resume(job: Annotated[str, typer.Argument(help="The tuning job's name.")]) -> None:
    """Go on with a job whose tuning process stopped: completed trials are kept, the interrupted one runs
    again with the same parameters, and the job stops at max_trials."""
    from loopwise.tuning.service import resume_job

    with open_store() as store:
        finished = resume_job(store, job, progress=_print_trial)
    _print_outcome(finished)


@app.command()
def status(
    job: Annotated[str, typer.Argument(help="The tuning job's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job and its trials as JSON.")] = False,
) -> None:
    """The job's trials sorted by objective (best first): state, objective, parameters, duration."""
    from rich.table import Table

    from loopwise.tuning.service import job_trials

    with open_store() as store:
        found, trials = job_trials(store, job)
    spec = found.tuning_spec()
    maximize = spec.objective.direction == "maximize"
    ranked = sorted(
        trials,
        key=lambda t: (t.value is None, -(t.value or 0.0) if maximize else (t.value or 0.0), t.number),
    )
    if as_json:
        print_json(
            {
                "job": found,
                "trials": [
                    {
                        "number": t.number,
                        "state": t.state.name.lower(),
                        "objective": t.value,
                        "params": t.params,
                        "duration_s": _duration(t),
                        "user_attrs": t.user_attrs,
                    }
                    for t in ranked
                ],
            }
        )
        return
    table = Table(
        title=f"{found.name}: {found.status.value} ({spec.objective.metric}, {spec.objective.direction})"
    )
    for column in ("trial", "state", spec.objective.metric, "params", "duration", "model / error"):
        table.add_column(column)
    for t in ranked:
        duration = _duration(t)
        note = t.user_attrs.get("model_ref") or (t.user_attrs.get("error") or "")[:120]
        table.add_row(
            str(t.number),
            t.state.name.lower(),
            "-" if t.value is None else f"{t.value:.4f}",
            ", ".join(f"{k}={_short(v)}" for k, v in t.params.items()),
            "-" if duration is None else f"{duration:.1f}s",
            str(note),
        )
    console.print(table)
    if found.best_trial is not None:
        console.print(f"best trial: {found.best_trial}")
    if found.error:
        console.print(f"error: {found.error}", highlight=False)


def _duration(trial: Any) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return float((trial.datetime_complete - trial.datetime_start).total_seconds())


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_outcome(job: Any) -> None:
    console.print(f"tuning job [bold]{job.name}[/bold]: {job.status.value}")
    if job.best_trial is not None:
        console.print(f"best trial: {job.best_trial} (model alias {job.name}@best)")
    if job.error:
        console.print(f"error: {job.error}", highlight=False)
        raise typer.Exit(1)
