"""``loopwise tune``: automatic model tuning: check a spec, start a job, resume it, see its trials."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from loopwise.cli._common import console, open_store, print_json, progress_bar
from loopwise.cli._tune_tables import duration, print_trial, results_table, trials_table
from loopwise.tuning.spec import job_spec

if TYPE_CHECKING:
    from loopwise.tuning.spec import TuningSpec

app = typer.Typer(help="Automatic model tuning: tuning specs (random, grid, bayesian, hyperband) and jobs.")

SpecArgument = Annotated[
    str,
    typer.Argument(help="A tuning spec YAML file, or a built-in spec: course_lab1, default_bayesian."),
]


def _spec_path(spec: str) -> Path:
    from loopwise.tuning import BUILTIN_SPECS, builtin_spec_path

    return builtin_spec_path(spec) if spec in BUILTIN_SPECS and not Path(spec).exists() else Path(spec)


@contextmanager
def live_progress(spec: TuningSpec) -> Iterator[Callable[[list[Any]], None]]:
    """A progress bar for a tuning worker; yields its ``watch``: the job's training examples against its
    compute budget (else its finished trials against max_trials), the trials running and the best so far."""
    from loopwise.tuning.outcome import best_trial, job_progress

    _, total, unit = job_progress([], spec)
    with progress_bar(f"tuning ({unit})", total=total) as update:

        def watch(trials: list[Any]) -> None:
            done, total, unit = job_progress(trials, spec)
            best = best_trial(trials, spec)
            running = sum(t.state.name == "RUNNING" for t in trials)
            text = f"tuning ({unit}), {running} running"
            if best is not None:
                text += f", best {spec.objective.metric} {best.value:.4f} (trial {best.number})"
            update(done, total, text)

        yield watch


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


ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Where trials run: 'process' (a local process each) or 'ray' (Ray tasks; pip install "
        "'loopwise[ray]').",
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address", help="A running Ray cluster for --executor ray (default: start a local one)."
    ),
]


def _devices(value: str | None) -> tuple[str, ...] | None:
    from loopwise.errors import ConfigurationError
    from loopwise.tuning.devices import parse_devices

    if value is None:
        return None
    try:
        return parse_devices(value)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc)) from None


DevicesOption = Annotated[
    str | None,
    typer.Option(
        "--devices",
        callback=_devices,
        help="The GPUs the trials share, each trial its own devices_per_trial of them as its "
        "CUDA_VISIBLE_DEVICES, as in 0,1,2 (default: every visible CUDA device; none on a CPU-only "
        "machine). A spec without max_parallel_trials runs one trial per share. Process executor only: "
        "on Ray, trials ask the cluster for GPUs.",
    ),
]


@app.command()
def start(
    spec: SpecArgument,
    name: Annotated[str | None, typer.Option("--name", help="The job's name (default: the spec's).")] = None,
    executor: ExecutorOption = "process",
    ray_address: RayAddressOption = None,
    devices: DevicesOption = None,
    create_only: Annotated[
        bool,
        typer.Option("--create-only", help="Record the job and return; run it with `loopwise tune worker`."),
    ] = False,
) -> None:
    """Check the spec, record the job and run its trials (up to max_parallel_trials at once, a process
    each) until it is done."""
    from loopwise.tuning import load_spec
    from loopwise.tuning.service import run_job, start_job

    checked = load_spec(_spec_path(spec))
    where = _where(executor, ray_address, devices)
    with open_store() as store:
        job = start_job(store, checked, name=name)
        at_once = checked.max_parallel_trials or "one per device"
        console.print(
            f"tuning job [bold]{job.name}[/bold] started ({checked.max_trials} trials, {at_once} at a time)"
        )
        if create_only:
            console.print(f"run it with: loopwise tune worker {job.name}")
            return
        with live_progress(checked) as watch:
            job = run_job(store, job.name, progress=print_trial, watch=watch, **where)
    _print_outcome(job)


@app.command()
def worker(
    job: Annotated[str, typer.Argument(help="The tuning job's name.")],
    executor: ExecutorOption = "process",
    ray_address: RayAddressOption = None,
    slots: Annotated[
        int | None,
        typer.Option(
            "--slots",
            min=1,
            help="The most trials this worker runs at once (default: max_parallel_trials, else one per "
            "device share).",
        ),
    ] = None,
    devices: DevicesOption = None,
) -> None:
    """Join a running job as one more worker: start it on any machine that reaches the job's database
    (PostgreSQL) and artifacts. Workers share the job's trials (no trial runs twice, max_parallel_trials
    holds across all of them) and take over the trials of a worker that died."""
    from loopwise.tuning.service import run_job

    where = _where(executor, ray_address, devices)
    with open_store() as store, live_progress(_job_spec(store, job)) as watch:
        finished = run_job(store, job, progress=print_trial, watch=watch, slots=slots, **where)
    _print_outcome(finished)


@app.command()
def resume(
    job: Annotated[str, typer.Argument(help="The tuning job's name.")],
    executor: ExecutorOption = "process",
    ray_address: RayAddressOption = None,
    devices: DevicesOption = None,
) -> None:
    """Go on with a job whose tuning processes all stopped: completed trials are kept, interrupted ones
    run again with the same parameters, and the job stops at max_trials."""
    from loopwise.tuning.service import resume_job

    where = _where(executor, ray_address, devices)
    with open_store() as store, live_progress(_job_spec(store, job)) as watch:
        finished = resume_job(store, job, progress=print_trial, watch=watch, **where)
    _print_outcome(finished)


def _job_spec(store: Any, name: str) -> TuningSpec:
    from loopwise.tuning.service import get_job

    return job_spec(get_job(store, name))


def _where(executor: str, ray_address: str | None, devices: Any) -> dict[str, Any]:
    """Where a worker runs its trials, checked: the keyword arguments of ``run_job`` and ``resume_job``.
    ``devices`` is ``--devices`` as its callback parsed it (a tuple; typer types it as the text)."""
    from loopwise.tuning.executors import EXECUTORS

    if executor not in EXECUTORS:
        raise typer.BadParameter(f"{executor!r}: use one of {', '.join(EXECUTORS)}", param_hint="--executor")
    if devices and executor != "process":
        raise typer.BadParameter(
            "hands GPUs to local trial processes: on Ray, trials ask the cluster for devices_per_trial "
            "GPUs each; remove --devices",
            param_hint="--devices",
        )
    return {
        "executor": executor,
        "ray_address": ray_address,
        "devices": None if devices is None else tuple(devices),
    }


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON.")] = False,
) -> None:
    """Every tuning job: status, objective, best trial, created and finished."""
    from rich.table import Table

    from loopwise.tuning.service import list_jobs

    with open_store() as store:
        jobs = list_jobs(store)
    if as_json:
        print_json(jobs)
        return
    table = Table(title="tuning jobs")
    for column in ("name", "status", "objective", "best trial", "created", "finished"):
        table.add_column(column)
    for job in jobs:
        objective = job.spec.get("objective", {})
        table.add_row(
            job.name,
            job.status.value,
            f"{objective.get('metric', '?')} ({objective.get('direction', '?')})",
            "" if job.best_trial is None else str(job.best_trial),
            f"{job.created_at:%Y-%m-%d %H:%M}",
            "" if job.finished_at is None else f"{job.finished_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@app.command()
def status(
    job: Annotated[str, typer.Argument(help="The tuning job's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job and its trials as JSON.")] = False,
) -> None:
    """The job's trials sorted by objective (best first): state, objective, parameters, duration."""
    from loopwise.tuning.final_fit import describe
    from loopwise.tuning.service import job_ending, job_final_fit, job_trials

    with open_store() as store:
        found, trials = job_trials(store, job)
        ending = job_ending(store, job)
        fit = job_final_fit(store, job)
    spec = job_spec(found)
    maximize = spec.objective.direction == "maximize"
    ranked = sorted(
        trials,
        key=lambda t: (t.value is None, -(t.value or 0.0) if maximize else (t.value or 0.0), t.number),
    )
    if as_json:
        print_json(
            {
                "job": found,
                "ended_because": ending,
                "final_fit": fit,
                "trials": [
                    {
                        "number": t.number,
                        "state": t.state.name.lower(),
                        "objective": t.value,
                        "params": t.params,
                        "duration_s": duration(t),
                        "user_attrs": t.user_attrs,
                    }
                    for t in ranked
                ],
            }
        )
        return
    console.print(trials_table(found, spec, ranked))
    if found.best_trial is not None:
        best = next(t for t in trials if t.number == found.best_trial)
        console.print(
            f"best trial: {best.number} ({spec.objective.metric} {best.value:.4f}, "
            f"model {best.user_attrs.get('model_ref', '-')})",
            highlight=False,
        )
    if fit:
        console.print(describe(fit), highlight=False, soft_wrap=True)
    if ending:
        console.print(f"ended: {ending['detail']} ({ending['reason']})", highlight=False)
    if found.error:
        console.print(f"error: {found.error}", highlight=False)


def _print_outcome(job: Any) -> None:
    console.print(f"tuning job [bold]{job.name}[/bold]: {job.status.value}")
    if job.best_trial is not None:
        model = job.spec.get("model_name") or job.name
        console.print(f"best trial: {job.best_trial}; best model: {model}@best (see `loopwise tune status`)")
    if job.error:
        console.print(f"error: {job.error}", highlight=False)
        raise typer.Exit(1)


@app.command()
def results(
    job: Annotated[str, typer.Argument(help="The tuning job's name.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the report (default: tuning/<job>/report in the artifacts)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json instead of the table.")] = False,
) -> None:
    """The job's trials ranked by objective and its best model; writes results.json, figures and an HTML
    report."""
    import json

    from loopwise.tuning.final_fit import describe
    from loopwise.tuning.report import write_tuning_report
    from loopwise.tuning.service import job_attrs, job_trials

    with open_store() as store:
        found, trials = job_trials(store, job)
        attrs = job_attrs(store, job)
        if out is None:
            report = store.artifacts.write_with(
                f"tuning/{found.name}/report",
                lambda folder: write_tuning_report(found, trials, folder, attrs=attrs),
            )
    if out is not None:
        report = write_tuning_report(found, trials, out, attrs=attrs)
    document = json.loads(report.json.read_text(encoding="utf-8"))
    if as_json:
        print_json(document)
        return
    console.print(results_table(document))
    best = document["best"]
    if best is not None:
        console.print(
            f"best trial: {best['number']} ({document['objective']['metric']} {best['objective']:.4f}), "
            f"model {best['model_ref'] or '-'}",
            highlight=False,
        )
    else:
        console.print("best trial: none complete yet")
    if document["final_fit"]:
        console.print(describe(document["final_fit"]), highlight=False, soft_wrap=True)
    if found.error:
        console.print(f"error: {found.error}", highlight=False)
    console.print(f"report: {report.html}", highlight=False, soft_wrap=True)
