"""A tuning worker: the loop that asks a job's trials, starts them through an executor, watches them end,
and finishes the job (:mod:`loopwise.tuning.ending`; see :mod:`loopwise.tuning.service` for how workers
share a job).

Each pass of the loop reaps the trials that ended (a process that died without telling fails its trial,
with the reason; a failed trial is retried while it has retries), sends the heartbeat for the trials this
worker runs, and then, under the job's lock, fails other workers' silent trials, and asks one more trial,
waits, or finishes the job.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from loopwise.data.versions import parse_dataset_ref
from loopwise.errors import ConfigurationError
from loopwise.storage.locks import named_lock
from loopwise.tuning import final_fit
from loopwise.tuning._study import load_study, optuna_storage
from loopwise.tuning.devices import trial_pool, uses_accelerators
from loopwise.tuning.ending import finish, keep_best_checkpoints, record_ending
from loopwise.tuning.executors import Ended, Executor, make_executor
from loopwise.tuning.outcome import (
    ALLOWANCE,
    FINISHED,
    RERUN_OF,
    RETRY_OF,
    Ending,
    active_seconds,
    examples_spent,
    meaningful_trial,
    own_trials,
    why_done,
)
from loopwise.tuning.records import JobStatus, TuningJob
from loopwise.tuning.space import suggest
from loopwise.tuning.spec import job_spec
from loopwise.tuning.strategies import make_sampler

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.tuning.spec import TuningSpec

log = logging.getLogger(__name__)

#: seconds between a worker's heartbeats for its running trials
HEARTBEAT_S = 5
#: a running trial whose worker sent no heartbeat for this long is interrupted
GRACE_S = 30
#: how long a worker with nothing to do waits before it looks again
POLL_S = 0.5

#: the error of a trial failed because its worker went silent
STALE_ERROR = "interrupted: its worker stopped sending heartbeats"

#: seconds between two calls of a worker's ``watch``
WATCH_S = 1.0

#: called with each trial of this worker that ended
Progress = Callable[[FrozenTrial], None]
#: called about once a second with all the job's trials, for live progress
Watch = Callable[[list[FrozenTrial]], None]


@contextlib.contextmanager
def job_storage(store: Store, *, heartbeat: bool = False) -> Iterator[RDBStorage]:
    """Optuna's storage for the duration of the block; ``heartbeat``: with the heartbeat settings a
    worker needs to beat for its trials and to find other workers' silent ones."""
    storage = optuna_storage(store, heartbeat_s=HEARTBEAT_S if heartbeat else None, grace_s=GRACE_S)
    try:
        yield storage
    finally:
        storage.engine.dispose()


class Step(Enum):
    ASK = "ask"
    WAIT = "wait"
    FINISH = "finish"


class Worker:
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
        watch: Watch | None = None,
        devices: tuple[str, ...] | None = None,
    ) -> None:
        self.store = store
        self.job = job
        self.spec = job_spec(job)
        #: the trials this worker was asked to run at once, if it was: ``--slots``, else the spec's
        self.wanted = slots or self.spec.max_parallel_trials
        #: the trials it runs at once: what was wanted, within what its devices allow (set by :meth:`run`)
        self.slots = max(1, self.wanted or 1)
        #: ``--devices``: the pool its local trials share (default: the visible CUDA devices)
        self.devices = devices
        self.progress = progress
        self.watch = watch
        self.executor_kind = executor
        self.ray_address = ray_address
        self.lock_name = f"tuning-job-{job.id}"
        self.local: set[int] = set()
        #: whether this worker runs the job's final fit
        self.fitting = False
        #: the training split's rows (one epoch), for the smallest trial worth starting
        self.train_size: int | None = None

    def _read_train_size(self) -> int | None:
        with self.store.uow() as uow:
            split = uow.datasets.get(*parse_dataset_ref(self.spec.dataset)).splits.get("train")
        return None if split is None else split.rows

    def run(self) -> TuningJob:
        self.train_size = self._read_train_size()
        with job_storage(self.store, heartbeat=True) as storage:
            executor = self._executor()
            try:
                return self._loop(storage, executor)
            finally:
                executor.close()

    def _executor(self) -> Executor:
        """The executor, with the device pool of local trials (or Ray's GPUs); sets :attr:`slots`."""
        if self.devices and self.executor_kind != "process":
            raise ConfigurationError(
                "--devices is for the process executor: on Ray, trials ask the cluster for "
                "devices_per_trial GPUs each; remove --devices"
            )
        pool = trial_pool(self.spec, self.devices) if self.executor_kind == "process" else None
        gpus = self.spec.devices_per_trial if uses_accelerators(self.spec) else 0
        executor = make_executor(
            self.executor_kind,
            self.store,
            self.job.name,
            ray_address=self.ray_address,
            slots=within(self.wanted, None if pool is None else pool.capacity),
            pool=pool,
            gpus_per_trial=gpus,
        )
        self.slots = within(self.wanted, executor.capacity)
        return executor

    def _loop(self, storage: RDBStorage, executor: Executor) -> TuningJob:
        study = load_study(storage, self.job, self.spec)
        last_beat = last_watch = 0.0
        while True:
            for ended in executor.wait(0.0):
                self._ended(storage, study, ended)
            if self.watch is not None and time.monotonic() - last_watch >= WATCH_S:
                self.watch(study.get_trials(deepcopy=False))
                last_watch = time.monotonic()
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                for trial_id in self.local:
                    storage.record_heartbeat(trial_id)
                if self.fitting:
                    final_fit.beat(study)
                last_beat = time.monotonic()
            with named_lock(self.store.engine, self.lock_name):
                with self.store.uow() as uow:
                    job = uow.tuning_jobs.get(self.job.name)
                if job.status is not JobStatus.RUNNING:
                    break  # another worker finished it
                fail_stale(storage, study, exclude=self.local)
                step, deadline, allowance = self._plan(study)
                if step is Step.FINISH:
                    trials = study.get_trials(deepcopy=False)
                    ending = why_done(trials, self.spec, self.train_size) or Ending(
                        JobStatus.COMPLETED, "", ""
                    )
                    record_ending(study, ending)
                    fit = final_fit.next_step(study, self.spec, ending, here=self.fitting, grace_s=GRACE_S)
                    if fit is final_fit.FitStep.DONE:
                        return finish(self.store, study, job, ending)
                    if fit is final_fit.FitStep.START:
                        final_fit.claim(study, self.spec)
                        self.fitting = True
                        executor.submit(final_fit.FINAL_FIT, None, None)
                        continue
                if step is Step.ASK:
                    # the sampler plans for the trials that may run at once (unset: this worker's slots)
                    parallel = self.spec.max_parallel_trials or self.slots
                    trial = ask(study, replace(self.spec, max_parallel_trials=parallel))
                    storage.record_heartbeat(trial._trial_id)  # at once: a trial is judged by its beats
                    suggest(trial, self.spec)
                    if allowance is not None:
                        trial.set_user_attr(ALLOWANCE, allowance)
                    self.local.add(trial._trial_id)
                    executor.submit(trial._trial_id, deadline, allowance)
                    continue
            for ended in executor.wait(POLL_S):
                self._ended(storage, study, ended)
        # Trials of this worker that told their outcome may still be exiting: report them too.
        drain_until = time.monotonic() + 30
        while self.local and time.monotonic() < drain_until:
            for ended in executor.wait(POLL_S):
                self._ended(storage, study, ended)
        return job

    def _plan(self, study: optuna.Study) -> tuple[Step, float | None, int | None]:
        """What to do now; for ASK, the new trial's deadline and compute allowance."""
        trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state is TrialState.RUNNING]
        if why_done(trials, self.spec, self.train_size) is not None:
            return (Step.WAIT if running or self.local else Step.FINISH), None, None
        own = own_trials(trials)
        finished = [t for t in own if t.state in FINISHED]
        if len(finished) + len(running) >= self.spec.max_trials:
            return Step.WAIT, None, None
        cap = self.spec.max_parallel_trials  # over all workers; unset: each worker's devices decide
        if (cap is not None and len(running) >= cap) or len(self.local) >= self.slots:
            return Step.WAIT, None, None
        limit = self.spec.completion.max_runtime_s
        deadline = None if limit is None else time.time() + limit - active_seconds(own)
        budget = self.spec.completion.max_examples
        allowance = None
        if budget is not None:
            held = sum(int(t.user_attrs.get(ALLOWANCE, 0)) for t in running)
            allowance = budget - examples_spent(own) - held
            if allowance < meaningful_trial(trials, self.spec, self.train_size)[0]:
                return Step.WAIT, None, None  # the running trials hold the rest: see what they leave
        return Step.ASK, deadline, allowance

    def _ended(self, storage: RDBStorage, study: optuna.Study, ended: Ended) -> None:
        if ended.trial_id == final_fit.FINAL_FIT:
            self.fitting = False
            final_fit.ended(study, ended.error)
        else:
            self._reap(storage, study, ended.trial_id, ended.error)

    def _reap(self, storage: RDBStorage, study: optuna.Study, trial_id: int, error: str | None) -> None:
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
                keep_best_checkpoints(self.store, study, self.spec)
        if self.progress is not None:
            self.progress(trial)


def within(wanted: int | None, capacity: int | None) -> int:
    """The trials a worker runs at once: ``wanted`` (default: ``capacity``, else 1), at most
    ``capacity`` when its devices set one."""
    if capacity is None:
        return max(1, wanted or 1)
    return max(1, min(wanted or capacity, capacity))


def ask(study: optuna.Study, spec: TuningSpec) -> optuna.trial.Trial:
    """Ask the next trial with a sampler seeded by the spec's seed and the trials so far: one worker's run
    is reproducible, and a resumed job or a second worker does not replay the first one's samples (a
    sampler seeded once per process would)."""
    if spec.strategy != "grid":  # the grid sampler picks unvisited points from the storage anyway
        study.sampler = make_sampler(replace(spec, seed=spec.seed + len(study.get_trials(deepcopy=False))))
    with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for Study.optimize
        warnings.simplefilter("ignore", UserWarning)
        return study.ask()


def fail_stale(storage: RDBStorage, study: optuna.Study, *, exclude: set[int]) -> None:
    """Fail the trials whose worker stopped sending heartbeats for :data:`GRACE_S` seconds, and queue
    them again with the same parameters. Never this worker's own trials (``exclude``): a worker that was
    slow to beat (a loaded machine, a long garbage collection) must not fail the trials it is running."""
    silent = storage._get_stale_trial_ids(study._study_id) + never_beat(storage, study, GRACE_S)
    stale = [i for i in silent if i not in exclude]
    for trial_id in stale:
        try:
            storage.set_trial_user_attr(trial_id, "error", STALE_ERROR)
            failed = storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # it told its outcome meanwhile, or another worker failed it first
        if failed:
            rerun(study, storage.get_trial(trial_id))


def never_beat(storage: RDBStorage, study: optuna.Study, grace_s: float) -> list[int]:
    """The running trials that started over ``grace_s`` seconds ago and never recorded a heartbeat: their
    worker died between asking for them and its first beat. Optuna's own stale check passes these over
    (it judges only trials with a heartbeat), so without this they would stay running for ever."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy.orm import selectinload

    started_before = datetime.now() - timedelta(seconds=grace_s)  # Optuna stamps trials in local time
    with _create_scoped_session(storage.scoped_session) as session:
        running = (
            session.query(models.TrialModel)
            .options(selectinload(models.TrialModel.heartbeats))
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .filter(models.TrialModel.study_id == study._study_id)
            .all()
        )
        return [
            trial.trial_id
            for trial in running
            if not trial.heartbeats
            and trial.datetime_start is not None
            and trial.datetime_start < started_before
        ]


def rerun(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue an interrupted trial again with its parameters (its retries are not spent)."""
    attrs = {RERUN_OF: trial.number}
    if "attempt" in trial.user_attrs:
        attrs["attempt"] = trial.user_attrs["attempt"]
    study.enqueue_trial(dict(trial.params), user_attrs=attrs)
