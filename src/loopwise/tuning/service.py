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
* the worker that sees the job done with nothing left running finishes it: the best trial's model gets
  the alias ``best`` and is evaluated once on the test split, which tuning never sees.

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

import contextlib
import logging
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING

import optuna
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from loopwise import registry
from loopwise.data.versions import parse_dataset_ref
from loopwise.errors import LoopwiseError, StorageError, TuningSpecError
from loopwise.registry.versions import check_name
from loopwise.storage.artifacts.local import local_path
from loopwise.storage.locks import named_lock
from loopwise.storage.tables import utcnow
from loopwise.tuning._study import create_study, load_study, optuna_storage
from loopwise.tuning.executors import Executor, make_executor
from loopwise.tuning.jobs import JobStatus, TuningJob
from loopwise.tuning.space import distributions, suggest
from loopwise.tuning.strategies import make_sampler

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.tuning.spec import TuningSpec

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: seconds between a worker's heartbeats for its running trials
HEARTBEAT_S = 5
#: a running trial whose worker sent no heartbeat for this long is interrupted
GRACE_S = 30
#: how long a worker with nothing to do waits before it looks again
POLL_S = 0.5
#: user attributes of copied, transferred, retried and re-run trials
WARM_START_OF = "warm_start_of"
TRANSFERRED_FROM = "transferred_from"
RETRY_OF = "retry_of"
RERUN_OF = "rerun_of"
#: user attribute: the compute (training examples) a trial may use of the job's budget
ALLOWANCE = "examples_allowance"

Progress = Callable[[FrozenTrial], None]


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
                _warm_start(store, storage, spec)
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
    executor: str = "process",
    ray_address: str | None = None,
    slots: int | None = None,
) -> TuningJob:
    """Work on the job as one tuning worker until it ends; returns the job as it ended (a job that ended
    already is returned as it is). ``slots``: the most trials this worker runs at once (default: the
    spec's ``max_parallel_trials``, which also caps all workers together)."""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(name)
    if job.status is not JobStatus.RUNNING:
        return job
    return _Worker(store, job, executor, ray_address, slots, progress).run()


def resume_job(
    store: Store,
    name: str,
    *,
    progress: Progress | None = None,
    executor: str = "process",
    ray_address: str | None = None,
) -> TuningJob:
    """Go on with a job whose workers all stopped: trials they left running fail (``error``: interrupted)
    and run again with the same parameters; finished trials are kept. (To join a job that other workers
    are running, use :func:`run_job`, which takes over their trials only once their heartbeats stop.)"""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(name)
        if job.status is JobStatus.COMPLETED:
            return job
        uow.tuning_jobs.update(name, status=JobStatus.RUNNING, error=None, finished_at=None)
    spec = job.tuning_spec()
    with _storage(store) as storage:
        study = load_study(storage, job, spec)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage.set_trial_user_attr(trial._trial_id, "error", "interrupted: the tuning process stopped")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            _rerun(study, trial)
    return run_job(store, name, progress=progress, executor=executor, ray_address=ray_address)


def job_trials(store: Store, name: str) -> tuple[TuningJob, list[FrozenTrial]]:
    """The job and its study's trials, in number order (copied warm-start trials included)."""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(name)
    with _storage(store) as storage:
        study = optuna.load_study(study_name=job.study_name, storage=storage)
        return job, study.get_trials(deepcopy=False)


@contextlib.contextmanager
def _storage(store: Store, *, heartbeat: bool = False) -> Iterator[optuna.storages.RDBStorage]:
    storage = optuna_storage(
        store, heartbeat_s=HEARTBEAT_S if heartbeat else None, grace_s=GRACE_S, on_stale=_rerun
    )
    try:
        yield storage
    finally:
        storage.engine.dispose()


class _Step(Enum):
    ASK = "ask"
    WAIT = "wait"
    FINISH = "finish"


class _Worker:
    """One tuning worker's loop: reap ended trials, beat, then under the job's lock fail stale trials
    and ask one more trial, or finish the job."""

    def __init__(
        self,
        store: Store,
        job: TuningJob,
        executor: str,
        ray_address: str | None,
        slots: int | None,
        progress: Progress | None,
    ) -> None:
        self.store = store
        self.job = job
        self.spec = job.tuning_spec()
        self.slots = max(1, slots or self.spec.max_parallel_trials)
        self.progress = progress
        self.executor_kind = executor
        self.ray_address = ray_address
        self.lock_name = f"tuning-job-{job.id}"
        self.local: set[int] = set()

    def run(self) -> TuningJob:
        with _storage(self.store, heartbeat=True) as storage:
            executor = make_executor(
                self.executor_kind, self.store, self.job.name, ray_address=self.ray_address, slots=self.slots
            )
            try:
                return self._loop(storage, executor)
            finally:
                executor.close()

    def _loop(self, storage: optuna.storages.RDBStorage, executor: Executor) -> TuningJob:
        study = load_study(storage, self.job, self.spec)
        last_beat = 0.0
        while True:
            for ended in executor.wait(0.0):
                self._reap(storage, study, ended.trial_id, ended.error)
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                for trial_id in self.local:
                    storage.record_heartbeat(trial_id)
                last_beat = time.monotonic()
            with named_lock(self.store.engine, self.lock_name):
                with self.store.uow() as uow:
                    job = uow.tuning_jobs.get(self.job.name)
                if job.status is not JobStatus.RUNNING:
                    break  # another worker finished it
                _fail_stale(study)
                step, deadline, allowance = self._plan(study)
                if step is _Step.FINISH:
                    outcome = _done(study, self.spec) or (JobStatus.COMPLETED, None)
                    return _finish(self.store, study, job, *outcome)
                if step is _Step.ASK:
                    trial = _ask(study, self.spec)
                    suggest(trial, self.spec)
                    storage.record_heartbeat(trial._trial_id)
                    if allowance is not None:
                        trial.set_user_attr(ALLOWANCE, allowance)
                    self.local.add(trial._trial_id)
                    executor.submit(trial._trial_id, deadline, allowance)
                    continue
            for ended in executor.wait(POLL_S):
                self._reap(storage, study, ended.trial_id, ended.error)
        # Trials of this worker that told their outcome may still be exiting: report them too.
        drain_until = time.monotonic() + 30
        while self.local and time.monotonic() < drain_until:
            for ended in executor.wait(POLL_S):
                self._reap(storage, study, ended.trial_id, ended.error)
        return job

    def _plan(self, study: optuna.Study) -> tuple[_Step, float | None, int | None]:
        """What to do now; for ASK, the new trial's deadline and compute allowance."""
        trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state is TrialState.RUNNING]
        if _done(study, self.spec, trials) is not None:
            return (_Step.WAIT if running or self.local else _Step.FINISH), None, None
        own = _own(trials)
        finished = [t for t in own if t.state in FINISHED]
        if len(finished) + len(running) >= self.spec.max_trials:
            return _Step.WAIT, None, None
        if len(running) >= self.spec.max_parallel_trials or len(self.local) >= self.slots:
            return _Step.WAIT, None, None
        limit = self.spec.completion.max_runtime_s
        deadline = None if limit is None else time.time() + limit - active_seconds(own)
        budget = self.spec.completion.max_examples
        allowance = None
        if budget is not None:
            held = sum(int(t.user_attrs.get(ALLOWANCE, 0)) for t in running)
            allowance = budget - examples_spent(own) - held
            if allowance <= 0:  # the running trials hold the rest of the budget
                return _Step.WAIT, None, None
        return _Step.ASK, deadline, allowance

    def _reap(
        self, storage: optuna.storages.RDBStorage, study: optuna.Study, trial_id: int, error: str | None
    ) -> None:
        self.local.discard(trial_id)
        trial = storage.get_trial(trial_id)
        if trial.state is TrialState.RUNNING:  # the process died without telling
            storage.set_trial_user_attr(
                trial_id, "error", error or "the trial process ended without an outcome"
            )
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            trial = storage.get_trial(trial_id)
        if trial.state is TrialState.FAIL and int(trial.user_attrs.get("attempt", 0)) < self.spec.retries:
            study.enqueue_trial(
                dict(trial.params),
                user_attrs={RETRY_OF: trial.number, "attempt": int(trial.user_attrs.get("attempt", 0)) + 1},
            )
        if trial.state is TrialState.COMPLETE:
            with named_lock(self.store.engine, self.lock_name):
                _keep_best_checkpoints(self.store, study, self.spec)
        if self.progress is not None:
            self.progress(trial)


def _ask(study: optuna.Study, spec: TuningSpec) -> optuna.trial.Trial:
    """Ask the next trial with a sampler seeded by the spec's seed and the trials so far: one worker's run
    is reproducible, and a resumed job or a second worker does not replay the first one's samples (a
    sampler seeded once per process would)."""
    if spec.strategy != "grid":  # the grid sampler picks unvisited points from the storage anyway
        study.sampler = make_sampler(replace(spec, seed=spec.seed + len(study.get_trials(deepcopy=False))))
    with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for Study.optimize
        warnings.simplefilter("ignore", UserWarning)
        return study.ask()


def _fail_stale(study: optuna.Study) -> None:
    """Fail the trials whose worker stopped sending heartbeats, and queue them again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _rerun(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue an interrupted trial again with its parameters (its retries are not spent)."""
    attrs = {RERUN_OF: trial.number}
    if "attempt" in trial.user_attrs:
        attrs["attempt"] = trial.user_attrs["attempt"]
    study.enqueue_trial(dict(trial.params), user_attrs=attrs)


def _own(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The job's own trials (not those copied from warm-start parents)."""
    return [t for t in trials if WARM_START_OF not in t.user_attrs]


def active_seconds(trials: list[FrozenTrial], now: datetime | None = None) -> float:
    """How long at least one of the trials was running: the length of the union of their
    [start, end] intervals (a running trial ends now). Time between a crash and a resume does not count."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    spans = sorted(
        (t.datetime_start, t.datetime_complete or now) for t in trials if t.datetime_start is not None
    )
    total, end = 0.0, None
    for start, stop in spans:
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total


def examples_spent(trials: list[FrozenTrial]) -> int:
    """Training examples the ended trials processed (as their runs' profiles counted them)."""
    ended = [t for t in trials if t.state in (*FINISHED, TrialState.FAIL)]
    return sum(int(t.user_attrs.get("examples", 0)) for t in ended)


def _failed_for_good(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Failed trials that were neither retried nor re-run."""
    again = {t.user_attrs.get(RETRY_OF) for t in trials} | {t.user_attrs.get(RERUN_OF) for t in trials}
    return [t for t in trials if t.state is TrialState.FAIL and t.number not in again]


def _done(
    study: optuna.Study, spec: TuningSpec, trials: list[FrozenTrial] | None = None
) -> tuple[JobStatus, str | None] | None:
    """Why the job ends now (status, error), or None to run another trial."""
    own = _own(trials if trials is not None else study.get_trials(deepcopy=False))
    finished = [t for t in own if t.state in FINISHED]
    failed = _failed_for_good(own)
    if len(finished) >= spec.max_trials:
        return JobStatus.COMPLETED, None
    if len(failed) >= max(3, spec.max_trials):
        last = failed[-1].user_attrs.get("error", "no error recorded")
        return JobStatus.FAILED, f"{len(failed)} trials failed, the last with: {last}"
    completion = spec.completion
    values = [float(t.value) for t in own if t.state is TrialState.COMPLETE and t.value is not None]
    pick = max if spec.objective.direction == "maximize" else min
    target = completion.target_objective
    if values and target is not None and pick(pick(values), target) == pick(values):
        return JobStatus.COMPLETED, None
    n = completion.no_improvement_trials
    if n is not None and len(values) > n and pick(values[:-n]) == pick(values):
        return JobStatus.COMPLETED, None
    if completion.max_runtime_s is not None and active_seconds(own) >= completion.max_runtime_s:
        return JobStatus.COMPLETED, None
    if completion.max_examples is not None and examples_spent(own) >= completion.max_examples:
        return JobStatus.COMPLETED, None
    return None


def best_trial(
    study: optuna.Study, spec: TuningSpec, trials: list[FrozenTrial] | None = None
) -> FrozenTrial | None:
    """The job's own best complete trial (ties: the earliest)."""
    own = _own(trials if trials is not None else study.get_trials(deepcopy=False))
    complete = [t for t in own if t.state is TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    sign = -1.0 if spec.objective.direction == "maximize" else 1.0
    return min(complete, key=lambda t: (sign * float(t.value or 0.0), t.number))


def _keep_best_checkpoints(store: Store, study: optuna.Study, spec: TuningSpec) -> None:
    """Remove the checkpoint files of complete trials outside the ``keep_checkpoints`` best."""
    own = _own(study.get_trials(deepcopy=False))
    complete = [t for t in own if t.state is TrialState.COMPLETE and t.value is not None]
    sign = -1.0 if spec.objective.direction == "maximize" else 1.0
    ranked = sorted(complete, key=lambda t: (sign * float(t.value or 0.0), t.number))
    for trial in ranked[spec.keep_checkpoints :]:
        model_id = trial.user_attrs.get("model_version_id")
        if model_id is None:
            continue
        with store.uow() as uow:
            version = uow.models.get_by_id(int(model_id))
            if version.checkpoint_removed_at is not None or version.aliases:
                continue  # removed already, or somebody points at it
            uow.models.mark_checkpoint_removed(version.id)
            path = local_path(version.uri)
            root = store.artifacts.root
            if root in path.parents:
                shutil.rmtree(path, ignore_errors=True)


def _finish(
    store: Store, study: optuna.Study, job: TuningJob, status: JobStatus, error: str | None
) -> TuningJob:
    """End the job: alias the best model ``best`` and evaluate it once on the test split."""
    spec = job.tuning_spec()
    best = best_trial(study, spec)
    model_id = None if best is None else best.user_attrs.get("model_version_id")
    if best is None and status is JobStatus.COMPLETED:
        status, error = JobStatus.FAILED, error or "no trial completed"
    test_evaluation_id = job.test_evaluation_id
    if model_id is not None:
        with store.uow() as uow:
            version = uow.models.get_by_id(int(model_id))
            registry.set_alias(uow, version.ref, "best")
        if test_evaluation_id is None:
            test_evaluation_id, note = _evaluate_on_test(store, version.ref, spec.dataset)
            error = error or note
    with store.uow() as uow:
        return uow.tuning_jobs.update(
            job.name,
            status=status,
            best_trial=None if best is None else best.number,
            best_model_version_id=None if model_id is None else int(model_id),
            error=error,
            finished_at=utcnow(),
            test_evaluation_id=test_evaluation_id,
        )


def _evaluate_on_test(store: Store, model_ref: str, dataset_ref: str) -> tuple[int | None, str | None]:
    """The best model's one evaluation on the test split: (evaluation id, None), or (None, why not)."""
    from loopwise.evaluation.service import evaluate

    with store.uow() as uow:
        dataset = uow.datasets.get(*parse_dataset_ref(dataset_ref))
    if "test" not in dataset.splits:
        return None, None
    try:
        return evaluate(store, model_ref, dataset.ref, "test").record.id, None
    except LoopwiseError as exc:
        log.warning("could not evaluate %s on the test split: %s", model_ref, exc)
        return None, f"the best model could not be evaluated on the test split: {exc}"


def _warm_start(store: Store, storage: optuna.storages.RDBStorage, spec: TuningSpec) -> None:
    """Copy (identical) or queue (transfer) the parents' trials into the new job's study."""
    assert spec.warm_start is not None
    study = optuna.load_study(study_name=spec.name, storage=storage)
    space = distributions(spec)
    with store.uow() as uow:
        parents = [uow.tuning_jobs.get(name) for name in spec.warm_start.parents]
    problems: list[tuple[str, str]] = []
    found: list[tuple[TuningJob, list[FrozenTrial]]] = []
    for parent in parents:
        parent_spec = parent.tuning_spec()
        if spec.warm_start.type == "identical_data_and_algorithm":
            differ = [
                key
                for key in ("dataset", "backend", "base_model", "parameters", "objective")
                if parent.spec.get(key) != spec.to_dict().get(key)
            ]
            if differ:
                problems.append(
                    (
                        "warm_start.parents",
                        f"{parent.name} differs in {', '.join(differ)}: identical_data_and_algorithm needs "
                        "the same data set, model, search space and objective; use type: transfer_learning",
                    )
                )
        elif parent_spec.objective != spec.objective:
            problems.append(("warm_start.parents", f"{parent.name} optimises another objective"))
        parent_study = optuna.load_study(study_name=parent.study_name, storage=storage)
        found.append((parent, parent_study.get_trials(deepcopy=False, states=FINISHED)))
    if problems:
        raise TuningSpecError(
            f"tuning spec {spec.name!r} cannot warm start: " + "; ".join(m for _, m in problems), problems
        )
    if spec.warm_start.type == "identical_data_and_algorithm":
        for parent, trials in found:
            for trial in trials:
                attrs = {k: v for k, v in trial.user_attrs.items() if k not in (RETRY_OF, RERUN_OF)}
                study.add_trial(
                    optuna.trial.create_trial(
                        state=trial.state,
                        value=trial.value,
                        params=dict(trial.params),
                        distributions=dict(trial.distributions),
                        intermediate_values=dict(trial.intermediate_values),
                        user_attrs={**attrs, WARM_START_OF: f"{parent.name}#{trial.number}"},
                    )
                )
        return
    sign = -1.0 if spec.objective.direction == "maximize" else 1.0
    pool = [
        (parent, t)
        for parent, trials in found
        for t in trials
        if t.state is TrialState.COMPLETE and t.value is not None
    ]
    pool.sort(key=lambda pair: sign * float(pair[1].value or 0.0))
    for parent, trial in pool[: max(1, min(3, spec.max_trials // 3))]:
        params = {
            key: value
            for key, value in trial.params.items()
            if key in space and space[key]._contains(space[key].to_internal_repr(value))
        }
        if params:
            study.enqueue_trial(params, user_attrs={TRANSFERRED_FROM: f"{parent.name}#{trial.number}"})


__all__ = ["active_seconds", "best_trial", "job_trials", "resume_job", "run_job", "start_job"]
