"""One trial of a tuning job, run in its own process: ``python -m loopwise.tuning.trial JOB TRIAL_ID``
(TRIAL_ID -1: the job's final fit, :mod:`loopwise.tuning.final_fit`).

The tuning process has asked the trial and sampled its parameters; this process rebuilds it from the
study (``optuna.trial.Trial(study, trial_id)``), trains through :func:`loopwise.training.service.train`
(the trainer's values in the TrainConfig, the backend's own options to its constructor) with a reporter
that hands each validation's objective to Optuna and stops when the pruner says so, and
tells the study the outcome:

The trial records the devices it was given (its ``CUDA_VISIBLE_DEVICES``, set by the executor's device
pool or by Ray) as the user attribute ``devices``.

* COMPLETE with the kept checkpoint's objective; user attributes ``model_version_id``, ``model_ref`` and
  ``run_id`` name the registered model version (named after the job, lineage in its params). A trial
  stopped at the job's deadline (its maximum runtime) completes with what it reached, marked
  ``stopped_by: max_runtime``;
* PRUNED when the pruner stopped it: its run ends ``stopped`` and no model is registered;
* FAIL with the user attribute ``error`` when training raised or never reported the objective.

A crash that leaves the trial RUNNING (killed, out of memory) is failed by the tuning process. The process
dies with its parent (Linux), so a killed tuning process leaves no trial running.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import optuna
from optuna.trial import TrialState

from loopwise._process import die_with_parent
from loopwise.classifiers import Reporter
from loopwise.config import Settings
from loopwise.data.versions import parse_dataset_ref
from loopwise.errors import LoopwiseError
from loopwise.storage import Store
from loopwise.tuning._study import load_study, optuna_storage
from loopwise.tuning.devices import DEVICES_ATTR
from loopwise.tuning.outcome import EXAMPLES_SEEN
from loopwise.tuning.space import backend_options, build_config, decode_params
from loopwise.tuning.spec import job_spec

log = logging.getLogger(__name__)

#: seconds between two records of a running trial's progress
PROGRESS_S = 10.0


class TrialReporter(Reporter):
    """Reports the objective metric of each validation to the Optuna trial at the training examples seen
    so far (``step x batch_size``); asks it whether to prune."""

    def __init__(
        self, trial: optuna.trial.Trial, metric: str, batch_size: int, deadline: float | None = None
    ) -> None:
        self.trial = trial
        self.metric = metric
        self.batch_size = batch_size
        #: wall-clock time (``time.time()``) when the job's maximum runtime ends
        self.deadline = deadline
        self.reported = False
        self.pruned = False
        self.out_of_time = False
        self._last_step = -1
        self._last_progress = time.monotonic()

    def on_train_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        """Every :data:`PROGRESS_S` seconds, record the examples seen so far (live progress between
        validations)."""
        if time.monotonic() - self._last_progress < PROGRESS_S:
            return
        self._last_progress = time.monotonic()
        try:
            self.trial.set_user_attr(EXAMPLES_SEEN, step * self.batch_size)
        except Exception:
            log.warning("could not record the progress of trial %d", self.trial.number, exc_info=True)

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        if self.metric not in metrics or step <= self._last_step:
            return
        self._last_step = step
        try:
            self.trial.report(float(metrics[self.metric]), step * self.batch_size)
            self.reported = True
            self.pruned = self.trial.should_prune()
        except Exception:  # a reporter must not raise; the trial then runs to its end
            log.warning("could not report step %d of trial %d", step, self.trial.number, exc_info=True)

    def should_stop(self) -> bool:
        if self.deadline is not None and not self.out_of_time and time.time() >= self.deadline:
            self.out_of_time = True
        return self.pruned or self.out_of_time

    def discard_model(self) -> bool:
        return self.pruned


def run_trial(
    store: Store,
    job_name: str,
    trial_id: int,
    *,
    deadline: float | None = None,
    max_examples: int | None = None,
    progress: bool | None = False,
) -> TrialState:
    """Train one asked trial and tell the study its outcome; returns the state told. ``deadline``: the
    wall-clock time (``time.time()``) at which the trial stops where it is, the job's runtime being up;
    ``max_examples``: what is left of the job's compute budget, which caps the trial's steps."""
    from loopwise.training.service import TrainRequest, train

    with store.uow() as uow:
        job = uow.tuning_jobs.get(job_name)
        train_split = uow.datasets.get(*parse_dataset_ref(job.spec["dataset"])).splits.get("train")
    spec = job_spec(job)
    storage = optuna_storage(store)
    try:
        study = load_study(
            storage, job, spec, sampler=False, train_size=None if train_split is None else train_split.rows
        )
        trial = optuna.trial.Trial(study, trial_id)
        devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        if devices:  # what its executor's pool (or Ray) gave this trial
            trial.set_user_attr(DEVICES_ATTR, devices)
        try:
            params = decode_params(spec, storage.get_trial(trial_id).params)
            config = build_config(spec, params, max_examples=max_examples)
            reporter = TrialReporter(trial, spec.objective.metric, config.batch_size, deadline)
            request = TrainRequest(
                dataset=spec.dataset,
                backend=spec.backend,
                base_model=spec.base_model,
                model_name=spec.model_name or job.name,
                config=config,
                options=backend_options(spec, params),
                description=f"tuning job {job.name}, trial {trial.number}",
                lineage={"tuning_job": job.name, "trial": trial.number},
            )
            outcome = train(store, request, progress=progress, reporter=reporter)
        except Exception as exc:
            message = str(exc) if isinstance(exc, LoopwiseError) else f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", message)
            study.tell(trial, state=TrialState.FAIL)
            return TrialState.FAIL
        trial.set_user_attr("run_id", outcome.run.id)
        trial.set_user_attr("examples", int(outcome.run.profile.get("examples", 0)))
        model = outcome.model
        if reporter.pruned or model is None:
            study.tell(trial, state=TrialState.PRUNED)
            return TrialState.PRUNED
        trial.set_user_attr("model_version_id", model.id)
        trial.set_user_attr("model_ref", model.ref)
        if reporter.out_of_time:
            trial.set_user_attr("stopped_by", "max_runtime")
        value = model.metrics.get(spec.objective.metric)
        if not reporter.reported or value is None:
            trial.set_user_attr(
                "error",
                f"the trial never reported the objective {spec.objective.metric}: training gave "
                f"{sorted(model.metrics)}; give the data set a validation split",
            )
            study.tell(trial, state=TrialState.FAIL)
            return TrialState.FAIL
        study.tell(trial, float(value))
        return TrialState.COMPLETE
    finally:
        storage.engine.dispose()


def run_task(
    store: Store, job_name: str, trial_id: int, *, deadline: float | None, max_examples: int | None
) -> bool:
    """Run what the executor started: a trial, or the job's final fit (``trial_id`` is
    :data:`~loopwise.tuning.final_fit.FINAL_FIT`); False when it failed."""
    from loopwise.tuning.final_fit import FINAL_FIT, run_final_fit

    if trial_id == FINAL_FIT:
        return run_final_fit(store, job_name)
    return run_trial(store, job_name, trial_id, deadline=deadline, max_examples=max_examples) is not (
        TrialState.FAIL
    )


def forked_main(
    job_name: str,
    trial_id: int,
    deadline: float | None,
    max_examples: int | None,
    env: dict[str, str],
    stderr_path: str,
    watch_pid: int,
) -> None:
    """The entry point of a trial forked from the tuning worker's fork server (which imported the heavy
    modules once): take the worker's settings from ``env``, send errors to ``stderr_path``, die when the
    worker ``watch_pid`` dies, run the trial, exit 0 (told), 1 (failed) or 3 (the worker is gone)."""
    import threading

    with open(stderr_path, "ab", buffering=0) as errors, open(os.devnull, "wb") as null:
        os.dup2(errors.fileno(), 2)
        os.dup2(null.fileno(), 1)
    for key in [k for k in os.environ if k.startswith("LOOPWISE_") and k not in env]:
        del os.environ[key]  # the fork server's environment is as old as the server: the worker's wins
    os.environ.update(env)
    die_with_parent()  # the fork server, which exits when the worker dies
    if "OMP_NUM_THREADS" in env:
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    threading.Thread(target=_watch, args=(watch_pid,), daemon=True).start()
    store = Store.open(Settings(), migrate=False)
    try:
        told = run_task(store, job_name, trial_id, deadline=deadline, max_examples=max_examples)
    finally:
        store.close()
    sys.stderr.flush()
    os._exit(0 if told else 1)


def _watch(pid: int) -> None:
    """Exit this process (3) as soon as process ``pid`` is gone (or dead and not yet reaped)."""

    while True:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat", "rb") as stat:
                if stat.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    os._exit(3)
        except ProcessLookupError:
            os._exit(3)
        except OSError:
            pass
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loopwise.tuning.trial", description=__doc__)
    parser.add_argument("job")
    parser.add_argument("trial_id", type=int, help="the trial's id; -1: the job's final fit")
    parser.add_argument("--parent-pid", type=int, help="exit at once if this process is gone")
    parser.add_argument("--deadline", type=float, help="stop training at this time (seconds since the epoch)")
    parser.add_argument("--max-examples", type=int, help="train on at most this many examples")
    args = parser.parse_args(argv)
    die_with_parent()
    if args.parent_pid is not None and _gone(args.parent_pid):
        return 3
    store = Store.open(Settings())  # LOOPWISE_* variables, set by the tuning process
    try:
        told = run_task(
            store, args.job, args.trial_id, deadline=args.deadline, max_examples=args.max_examples
        )
    finally:
        store.close()
    return 0 if told else 1


def _gone(pid: int) -> bool:

    return os.getppid() != pid


if __name__ == "__main__":
    sys.exit(main())
