"""Tuning jobs end to end: start one, run its trials in parallel processes, share it between workers,
resume it after a crash.

The job is a row in ``tuning_jobs`` and an Optuna study of the same name in the same database. A tuning
worker (:func:`run_job`; ``loopwise tune start``, ``tune worker`` and ``tune resume`` each run one) asks
trials, samples their parameters and starts each in a process of its own through an executor
(:mod:`loopwise.tuning.executors`: local processes or Ray tasks); the trial trains and tells the study its
outcome (:mod:`loopwise.tuning.trial`), so a crash, an exception or running out of memory fails that trial
alone. Any number of workers on any number of machines can share a job through its database:

* asking is serialised by the job's lock (:func:`loopwise.storage.locks.named_lock`), so no two workers
  ask at once and ``max_parallel_trials`` counts every worker's running trials;
* each worker sends a heartbeat for its running trials; a trial whose worker went silent for
  :data:`GRACE_S` seconds is failed as interrupted by another worker and re-run with the same parameters;
* a failed trial is retried with the same parameters ``retries`` times;
* the worker that sees the search done with nothing left running starts the final fit
  (:mod:`loopwise.tuning.final_fit`: the best configuration on the whole training split, in a process
  of its own through the executor), then finishes the job: the final fit's model (the best trial's
  when the fit is disabled or failed) gets the alias ``best`` and is evaluated once on the test split,
  which tuning never sees.

A job is done when ``max_trials`` of its own trials finished (complete or pruned), when a completion
criterion holds (target objective, no improvement in N complete trials, maximum runtime: the time its
trials were running, summed over resumes), or fails when ``max(3, max_trials)`` trials failed for good.
Only the ``keep_checkpoints`` best completed trials keep their checkpoints; the others' files are removed
(their model versions stay, marked). Pruned trials register no model.

Warm start: ``identical_data_and_algorithm`` copies the parents' finished trials into the new study (the
sampler learns from them, they do not count towards ``max_trials``); ``transfer_learning`` re-runs the
parents' best configurations first, on this job's data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.trial import FrozenTrial, TrialState

from loopwise.data.versions import parse_dataset_ref
from loopwise.errors import StorageError
from loopwise.registry.versions import check_name
from loopwise.tuning import final_fit
from loopwise.tuning._study import create_study, load_study, optuna_storage
from loopwise.tuning.outcome import ENDED_BECAUSE
from loopwise.tuning.records import JobStatus, TuningJob
from loopwise.tuning.spec import job_spec
from loopwise.tuning.warm_start import warm_start
from loopwise.tuning.worker import Progress, Watch, Worker, job_storage, rerun

if TYPE_CHECKING:
    from loopwise.evaluation.records import EvaluationRecord
    from loopwise.registry.records import ModelVersion
    from loopwise.storage import Store
    from loopwise.tuning.spec import TuningSpec


def start_job(store: Store, spec: TuningSpec, *, name: str | None = None) -> TuningJob:
    """Record a new job and create its study; nothing is recorded when the data set or a warm-start parent
    is unknown, a parent does not fit, or the name is taken. ``name`` overrides the spec's."""
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
            if spec.warm_start is not None:
                warm_start(store, storage, spec)
            with store.uow() as uow:
                job = uow.tuning_jobs.add(spec.name, spec.to_dict(), study_name=spec.name)
        except BaseException:
            optuna.delete_study(study_name=spec.name, storage=storage)
            raise
    finally:
        storage.engine.dispose()
    return job


def run_job(
    store: Store,
    name: str,
    *,
    progress: Progress | None = None,
    watch: Watch | None = None,
    executor: str = "process",
    ray_address: str | None = None,
    slots: int | None = None,
    devices: tuple[str, ...] | None = None,
) -> TuningJob:
    """Work on the job as one tuning worker until it ends; returns the job as it ended (a job that ended
    already is returned as it is). ``slots``: the most trials this worker runs at once (default: the
    spec's ``max_parallel_trials``, which also caps all workers together). ``progress`` is called with each
    of this worker's trials that ended, ``watch`` about once a second with all the job's trials (for live
    progress: :func:`loopwise.tuning.outcome.job_progress`). ``devices``: the GPUs this worker's trials
    share, each its own (default: the visible CUDA devices; see :mod:`loopwise.tuning.devices`); a spec
    without ``max_parallel_trials`` runs one trial per share of them."""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(name)
    if job.status is not JobStatus.RUNNING:
        return job
    return Worker(store, job, executor, ray_address, slots, progress, watch, devices).run()


def resume_job(
    store: Store,
    name: str,
    *,
    progress: Progress | None = None,
    watch: Watch | None = None,
    executor: str = "process",
    ray_address: str | None = None,
    devices: tuple[str, ...] | None = None,
) -> TuningJob:
    """Go on with a job whose workers all stopped: trials they left running fail (``error``: interrupted)
    and run again with the same parameters; finished trials are kept. (To join a job that other workers
    are running, use :func:`run_job`, which takes over their trials only once their heartbeats stop.)"""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(name)
        if job.status is JobStatus.COMPLETED:
            return job
        uow.tuning_jobs.update(name, status=JobStatus.RUNNING, error=None, finished_at=None)
    spec = job_spec(job)
    with job_storage(store) as storage:
        study = load_study(storage, job, spec)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage.set_trial_user_attr(trial._trial_id, "error", "interrupted: the tuning process stopped")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            rerun(study, trial)
        final_fit.interrupt(study, "interrupted: the tuning process stopped")
    return run_job(
        store,
        name,
        progress=progress,
        watch=watch,
        executor=executor,
        ray_address=ray_address,
        devices=devices,
    )


def job_trials(store: Store, name: str) -> tuple[TuningJob, list[FrozenTrial]]:
    """The job and its study's trials, in number order (copied warm-start trials included)."""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(name)
    with job_storage(store) as storage:
        study = optuna.load_study(study_name=job.study_name, storage=storage)
        return job, study.get_trials(deepcopy=False)


def job_ending(store: Store, name: str) -> dict[str, str] | None:
    """Why the job's search ended, as its last worker recorded it (``{"reason": ..., "detail": ...}``, the
    reason a key of :data:`~loopwise.tuning.outcome.ENDINGS`); None while it runs or when it was stopped."""
    return job_attrs(store, name).get(ENDED_BECAUSE)


def job_final_fit(store: Store, name: str) -> dict[str, Any] | None:
    """The job's final fit as recorded (:data:`loopwise.tuning.final_fit.STATE`); None when it never
    started (disabled, no complete trial, or the search still runs)."""
    return job_attrs(store, name).get(final_fit.STATE)


def job_attrs(store: Store, name: str) -> dict[str, Any]:
    """The study's user attributes of job ``name``: ``ended_because``, ``final_fit``."""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(name)
    with job_storage(store) as storage:
        study = optuna.load_study(study_name=job.study_name, storage=storage)
        return dict(study.user_attrs)


def list_jobs(store: Store) -> list[TuningJob]:
    """Every tuning job, as the repository orders them."""
    with store.uow() as uow:
        return uow.tuning_jobs.list()


def get_job(store: Store, name: str) -> TuningJob:
    with store.uow() as uow:
        return uow.tuning_jobs.get(name)


def free_job_name(store: Store, model_name: str) -> str:
    """The first ``MODEL_NAME-tuning-N`` (N = 1, 2, ...) that no tuning job has taken."""
    taken = {job.name for job in list_jobs(store)}
    return next(
        f"{model_name}-tuning-{n}"
        for n in range(1, len(taken) + 2)
        if f"{model_name}-tuning-{n}" not in taken
    )


def best_model(store: Store, job: TuningJob) -> tuple[ModelVersion, EvaluationRecord | None]:
    """A finished job's best model version and its one evaluation on the test split (None when the job
    recorded none). The job must have a best model."""
    if job.best_model_version_id is None:
        raise ValueError(f"tuning job {job.name} has no best model")
    with store.uow() as uow:
        best = uow.models.get_by_id(job.best_model_version_id)
        evaluation = next(
            (e for e in uow.evaluations.for_model(best.id) if e.id == job.test_evaluation_id), None
        )
    return best, evaluation


def runner_up(store: Store, job: TuningJob, trials: list[FrozenTrial]) -> ModelVersion | None:
    """The model of the best completed trial after the best whose checkpoint was kept; None when no
    other trial's was."""
    from loopwise.tuning.outcome import ranked_trials

    for trial in ranked_trials(trials, job_spec(job))[1:]:
        model_id = trial.user_attrs.get("model_version_id")
        if model_id is None:
            continue
        with store.uow() as uow:
            version = uow.models.get_by_id(int(model_id))
        if version.checkpoint_removed_at is None:
            return version
    return None


__all__ = [
    "best_model",
    "free_job_name",
    "get_job",
    "job_attrs",
    "job_ending",
    "job_final_fit",
    "job_trials",
    "list_jobs",
    "resume_job",
    "run_job",
    "runner_up",
    "start_job",
]
