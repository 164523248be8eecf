"""Tuning jobs end to end: start one, run its trials one process each, resume it after a crash.

The job is a row in ``tuning_jobs`` and an Optuna study of the same name in the same database. The tuning
process asks each trial and samples its parameters; the trial trains in its own process
(:mod:`loopwise.tuning.trial`), so a crash, an exception or running out of memory fails that trial alone.
Trials run one after another (parallel trials and workers come later).

A job stops when ``max_trials`` trials finished (complete or pruned), when a completion criterion holds
(target objective, no improvement in N complete trials, maximum runtime of this process), or fails when as
many trials failed as ``max(3, max_trials)``. At the end the best trial's model version gets the alias
``best`` (the model is named after the job).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.trial import FrozenTrial, TrialState

from loopwise import registry
from loopwise.data.versions import parse_dataset_ref
from loopwise.errors import StorageError
from loopwise.registry.versions import check_name
from loopwise.storage.tables import utcnow
from loopwise.tuning._study import create_study, load_study, optuna_storage
from loopwise.tuning.jobs import JobStatus, TuningJob
from loopwise.tuning.space import suggest

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.tuning.spec import TuningSpec

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_ERROR_TAIL = 2000

Progress = Callable[[FrozenTrial], None]


def start_job(store: Store, spec: TuningSpec, *, name: str | None = None) -> TuningJob:
    """Record a new job and create its study; nothing is recorded when the data set is unknown or the name
    is taken. ``name`` overrides the spec's."""
    if name is not None:
        spec = replace(spec, name=check_name(name, "tuning job name"))
    with store.uow() as uow:
        uow.datasets.get(*parse_dataset_ref(spec.dataset))  # fail before recording anything
        if any(job.name == spec.name for job in uow.tuning_jobs.list()):
            raise StorageError(
                f"a tuning job named {spec.name!r} exists: resume it with `loopwise tune resume {spec.name}` "
                "or give the new job another name (--name)"
            )
    storage = optuna_storage(store)
    try:
        try:
            create_study(storage, spec)
        except DuplicatedStudyError:
            raise StorageError(
                f"an Optuna study named {spec.name!r} exists in this database: give the job another "
                "name (--name)"
            ) from None
        try:
            with store.uow() as uow:
                job = uow.tuning_jobs.add(spec.name, spec.to_dict(), study_name=spec.name)
        except BaseException:
            optuna.delete_study(study_name=spec.name, storage=storage)
            raise
    finally:
        storage.engine.dispose()
    return job


def run_job(store: Store, name: str, *, progress: Progress | None = None) -> TuningJob:
    """Run the job's trials until it is done; returns the finished job. A job that already ended is
    returned as it is."""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(name)
    if job.status is not JobStatus.RUNNING:
        return job
    spec = job.tuning_spec()
    storage = optuna_storage(store)
    try:
        study = load_study(storage, job, spec)
        started = time.monotonic()
        while True:
            outcome = _done(study, spec, started)
            if outcome is not None:
                break
            trial = study.ask()
            suggest(trial, spec)
            _run_trial_process(store, storage, job, trial._trial_id)
            if progress is not None:
                progress(storage.get_trial(trial._trial_id))
        return _finish(store, study, job, *outcome)
    finally:
        storage.engine.dispose()


def resume_job(store: Store, name: str, *, progress: Progress | None = None) -> TuningJob:
    """Go on with a job whose tuning process stopped: trials it left running fail (``error``:
    interrupted) and run again with the same parameters; finished trials are kept."""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(name)
        if job.status is JobStatus.COMPLETED:
            return job
        uow.tuning_jobs.update(name, status=JobStatus.RUNNING, error=None, finished_at=None)
    spec = job.tuning_spec()
    storage = optuna_storage(store)
    try:
        study = load_study(storage, job, spec)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage.set_trial_user_attr(trial._trial_id, "error", "interrupted: the tuning process stopped")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            study.enqueue_trial(dict(trial.params), user_attrs={"rerun_of": trial.number})
    finally:
        storage.engine.dispose()
    return run_job(store, name, progress=progress)


def job_trials(store: Store, name: str) -> tuple[TuningJob, list[FrozenTrial]]:
    """The job and its study's trials, in number order."""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(name)
    storage = optuna_storage(store)
    try:
        study = optuna.load_study(study_name=job.study_name, storage=storage)
        return job, study.get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()


def _run_trial_process(
    store: Store, storage: optuna.storages.RDBStorage, job: TuningJob, trial_id: int
) -> None:
    """Run the trial in its own process; fail it with the process's error output if it left it running."""
    command = [
        sys.executable,
        "-m",
        "loopwise.tuning.trial",
        job.name,
        str(trial_id),
        "--parent-pid",
        str(os.getpid()),
    ]
    # The settings travel in the environment, not the command line, where `ps` would show a database
    # password to every user of the machine.
    settings = store.settings.model_dump(mode="json", exclude_none=True)
    env = {**os.environ, **{f"LOOPWISE_{key.upper()}": str(value) for key, value in settings.items()}}
    with tempfile.TemporaryFile() as errors:
        code = subprocess.call(command, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        if storage.get_trial(trial_id).state is not TrialState.RUNNING:
            return
        errors.seek(0)
        tail = errors.read().decode("utf-8", "replace")[-_ERROR_TAIL:].strip()
    storage.set_trial_user_attr(trial_id, "error", f"the trial process exited with code {code}: {tail}")
    storage.set_trial_state_values(trial_id, TrialState.FAIL)


def _done(study: optuna.Study, spec: TuningSpec, started: float) -> tuple[JobStatus, str | None] | None:
    """Why the job ends now (status, error), or None to run another trial."""
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in FINISHED]
    failed = [t for t in trials if t.state is TrialState.FAIL]
    if len(finished) >= spec.max_trials:
        return JobStatus.COMPLETED, None
    if len(failed) >= max(3, spec.max_trials):
        last = failed[-1].user_attrs.get("error", "no error recorded")
        return JobStatus.FAILED, f"{len(failed)} trials failed, the last with: {last}"
    completion = spec.completion
    values = [float(t.value) for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    pick = max if spec.objective.direction == "maximize" else min
    target = completion.target_objective
    if values and target is not None and pick(pick(values), target) == pick(values):
        return JobStatus.COMPLETED, None
    n = completion.no_improvement_trials
    if n is not None and len(values) > n and pick(values[:-n]) == pick(values):
        return JobStatus.COMPLETED, None
    if completion.max_runtime_s is not None and time.monotonic() - started >= completion.max_runtime_s:
        return JobStatus.COMPLETED, None
    return None


def _finish(
    store: Store, study: optuna.Study, job: TuningJob, status: JobStatus, error: str | None
) -> TuningJob:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    model_id = None if best is None else best.user_attrs.get("model_version_id")
    with store.uow() as uow:
        if model_id is not None:
            version = uow.models.get_by_id(int(model_id))
            registry.set_alias(uow, version.ref, "best")
        if best is None and status is JobStatus.COMPLETED:
            status, error = JobStatus.FAILED, error or "no trial completed"
        return uow.tuning_jobs.update(
            job.name,
            status=status,
            best_trial=None if best is None else best.number,
            best_model_version_id=None if model_id is None else int(model_id),
            error=error,
            finished_at=utcnow(),
        )


__all__ = ["job_trials", "resume_job", "run_job", "start_job"]
