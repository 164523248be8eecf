"""The tables and lines ``loopwise tune`` prints for a job's trials (``tune status``, ``tune results``,
and each trial as it ends)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopwise.cli._common import console

if TYPE_CHECKING:
    from loopwise.tuning.spec import TuningSpec


def print_trial(trial: Any) -> None:
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    error = error_of(trial)
    console.print(
        f"trial {trial.number}: {trial.state.name.lower()} objective {value}"
        + (f" ({error.splitlines()[0][:200]})" if error else ""),
        highlight=False,
    )


def error_of(trial: Any) -> str:
    """Why a trial failed; a trial failed for its silent worker carries no error of its own."""
    error = str(trial.user_attrs.get("error") or "")
    if not error and trial.state.name == "FAIL":
        return "interrupted: its worker stopped sending heartbeats (re-run with the same parameters)"
    return error


def duration(trial: Any) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return float((trial.datetime_complete - trial.datetime_start).total_seconds())


def short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def results_table(document: dict[str, Any]) -> Any:
    from rich.table import Table

    job, objective = document["job"], document["objective"]
    table = Table(title=f"{job['name']}: {job['status']} ({objective['metric']}, {objective['direction']})")
    for column in ("trial", "state", objective["metric"], "params", "duration", "model / error"):
        table.add_column(column)
    for row in document["trials"]:
        note = row["model_ref"] or (row["error"] or "")[:120]
        table.add_row(
            f"{row['number']}{' *' if row['best'] else ''}",
            row["state"],
            "-" if row["objective"] is None else f"{row['objective']:.4f}",
            ", ".join(f"{k}={short(v)}" for k, v in row["params"].items()),
            "-" if row["duration_s"] is None else f"{row['duration_s']:.1f}s",
            str(note),
        )
    return table


def trials_table(job: Any, spec: TuningSpec, ranked: list[Any]) -> Any:
    """``tune status``'s table: a row per trial (with a devices column when a trial recorded its devices)."""
    from rich.table import Table

    from loopwise.tuning.devices import DEVICES_ATTR

    table = Table(
        title=f"{job.name}: {job.status.value} ({spec.objective.metric}, {spec.objective.direction})"
    )
    with_devices = any(DEVICES_ATTR in t.user_attrs for t in ranked)
    columns = ("trial", "state", spec.objective.metric, "params", "duration", "model / error")
    for column in columns[:5] + ("devices",) * with_devices + columns[5:]:
        table.add_column(column)
    for t in ranked:
        seconds = duration(t)
        note = t.user_attrs.get("model_ref") or error_of(t)[:120]
        devices = (str(t.user_attrs.get(DEVICES_ATTR, "-")),) * with_devices
        table.add_row(
            str(t.number),
            t.state.name.lower(),
            "-" if t.value is None else f"{t.value:.4f}",
            ", ".join(f"{k}={short(v)}" for k, v in t.params.items()),
            "-" if seconds is None else f"{seconds:.1f}s",
            *devices,
            str(note),
        )
    return table
