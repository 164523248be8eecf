"""Pipelines' services: store a checked pipeline file, start a run (one at a time per pipeline), run its
steps in order, resume a failed or abandoned run from its unfinished steps.

Each step is committed as it starts (Running) and as it ends (Succeeded with its outputs, or Failed with
the reason and its log), so a process killed mid-step leaves every earlier step's outputs stored: resuming
runs the interrupted step again and never repeats a step that succeeded.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from loopwise._extras import missing_extra
from loopwise.errors import LoopwiseError, NotFoundError, PipelineError
from loopwise.pipelines.events import record_run_event
from loopwise.pipelines.operations import OPERATIONS
from loopwise.pipelines.records import PipelineRun
from loopwise.pipelines.spec import PipelineSpec, load_pipeline, parse_pipeline, resolve

if TYPE_CHECKING:
    from loopwise.storage import Store

Progress = Callable[[str], None]


def create_pipeline(store: Store, path: Path) -> tuple[PipelineSpec, bool]:
    """Check the pipeline file and store it (a new version of the pipeline when the name exists);
    returns it and whether it is new. Nothing is stored when the file has a problem."""
    spec = load_pipeline(path)
    with store.uow() as uow:
        new = uow.pipelines.put(spec.name, spec.text)
    return spec, new


def find_pipeline(store: Store, name: str) -> PipelineSpec:
    with store.uow() as uow:
        found = uow.pipelines.get(name)
    if found is None:
        raise NotFoundError(f"no pipeline {name!r}; create it with `loopwise pipeline create FILE`")
    return parse_pipeline(found[1], source=f"pipeline {name}")


def start_run(store: Store, name: str, *, trigger: str = "manual") -> PipelineRun:
    """A new run of the pipeline, its steps pending; :class:`PipelineError` when one is in progress
    (however many triggers fire at once, one run starts)."""
    spec = find_pipeline(store, name)
    with store.uow() as uow:
        run_id = uow.pipelines.start(name, spec.text, trigger, [s.name for s in spec.order()])
        active = uow.pipelines.active(name) if run_id is None else None
    if run_id is None:
        raise PipelineError(f"pipeline {name} has a run in progress (run {active}): it runs once at a time")
    return get_run(store, run_id)


def execute(store: Store, run_id: int, *, progress: Progress | None = None) -> PipelineRun:
    """Run the run's pending steps in order; a failing step stops the run (Failed, with the step and the
    reason) and can be resumed."""
    say = progress or (lambda _: None)
    run = get_run(store, run_id)
    spec = parse_pipeline(run.spec, source=f"run {run_id} of pipeline {run.pipeline}")
    outputs = run.outputs()
    for step in spec.order():
        if run.step(step.name).status == "Succeeded":
            say(f"{step.name}: succeeded before, not repeated")
            continue
        lines: list[str] = []

        def log(line: str, name: str = step.name, kept: list[str] = lines) -> None:
            kept.append(line)
            say(f"{name}: {line}")

        now = datetime.now(UTC)
        with store.uow() as uow:
            uow.pipelines.step_started(run_id, step.name, now)
        say(f"{step.name}: {step.uses} started")
        try:
            found = OPERATIONS[step.uses].run(store, resolve(step.inputs, outputs), log)
            missing = [key for key in OPERATIONS[step.uses].outputs if key not in found]
            if missing:  # an operation that breaks its own contract: a defect, reported as one
                raise PipelineError(f"operation {step.uses} returned no {', '.join(missing)}")
        except BaseException as raised:
            # a failing step, and an interrupted one (Ctrl-C, the process told to exit) alike: the run is
            # marked Failed with the reason, so its pipeline is free and the run can be resumed here
            exc = missing_extra(raised, f"step {step.name} ({step.uses})") or raised
            reason = str(exc) if isinstance(exc, LoopwiseError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, LoopwiseError):
                lines.append(traceback.format_exc())
            failure = f"step {step.name} failed: {reason}"
            with store.uow() as uow:
                uow.pipelines.step_ended(
                    run_id, step.name, datetime.now(UTC), outputs=None, log="\n".join(lines), error=reason
                )
                uow.pipelines.ended(run_id, "Failed", datetime.now(UTC), failure)
                record_run_event(
                    uow, run_id, run.pipeline, "Failed", datetime.now(UTC), trigger=run.trigger, error=failure
                )
            say(f"{step.name}: failed: {reason}")
            if not isinstance(exc, Exception):
                raise
            return get_run(store, run_id)
        outputs[step.name] = found
        with store.uow() as uow:
            uow.pipelines.step_ended(
                run_id, step.name, datetime.now(UTC), outputs=found, log="\n".join(lines), error=None
            )
        say(f"{step.name}: succeeded {found}")
    with store.uow() as uow:
        uow.pipelines.ended(run_id, "Succeeded", datetime.now(UTC))
        record_run_event(
            uow, run_id, run.pipeline, "Succeeded", datetime.now(UTC), trigger=run.trigger, error=None
        )
    return get_run(store, run_id)


def run_pipeline(
    store: Store, name: str, *, trigger: str = "manual", progress: Progress | None = None
) -> PipelineRun:
    return execute(store, start_run(store, name, trigger=trigger).id, progress=progress)


def resume(
    store: Store, run_id: int, *, force: bool = False, progress: Progress | None = None
) -> PipelineRun:
    """Run a failed run again from its failed step, or (``force``) one that shows Running because its
    process was killed mid-step, from the step it was in; the steps that succeeded keep their outputs.
    Without ``force`` a Running run is refused: it may be running elsewhere right now."""
    run = get_run(store, run_id)
    if run.status == "Succeeded":
        raise PipelineError(f"run {run_id} succeeded: nothing to resume")
    if run.status == "Running" and not force:
        raise PipelineError(
            f"run {run_id} is in progress; if its process is gone (killed), resume it with --force"
        )
    with store.uow() as uow:
        if run.status == "Running":
            uow.pipelines.ended(
                run_id, "Failed", datetime.now(UTC), "abandoned: its process stopped mid-step"
            )
        if not uow.pipelines.reopen(run_id, run.pipeline):
            raise PipelineError(
                f"pipeline {run.pipeline} has another run in progress: resume this one after it"
            )
    return execute(store, run_id, progress=progress)


def get_run(store: Store, run_id: int) -> PipelineRun:
    with store.uow() as uow:
        run = uow.pipelines.run(run_id)
    if run is None:
        raise NotFoundError(f"no pipeline run {run_id}; see `loopwise pipeline runs`")
    return run


def list_runs(store: Store, name: str | None = None, limit: int = 50) -> list[PipelineRun]:
    with store.uow() as uow:
        return uow.pipelines.runs(name, limit)
