"""One trial of a tuning job, run in its own process: ``python -m loopwise.tuning.trial JOB TRIAL_ID``.

The tuning process has asked the trial and sampled its parameters; this process rebuilds it from the
study (``optuna.trial.Trial(study, trial_id)``), trains through :func:`loopwise.training.service.train`
with a reporter that hands each validation's objective to Optuna and stops when the pruner says so, and
tells the study the outcome:

* COMPLETE with the kept checkpoint's objective; user attributes ``model_version_id``, ``model_ref`` and
  ``run_id`` name the registered model version (named after the job, lineage in its params);
* PRUNED when the pruner stopped it;
* FAIL with the user attribute ``error`` when training raised or never reported the objective.

A crash that leaves the trial RUNNING (killed, out of memory) is failed by the tuning process. The process
dies with its parent (Linux), so a killed tuning process leaves no trial running.
"""

from __future__ import annotations

import argparse
import logging
import sys

import optuna
from optuna.trial import TrialState

from loopwise.classifiers import Reporter
from loopwise.config import Settings
from loopwise.errors import LoopwiseError
from loopwise.storage import Store
from loopwise.tuning._study import load_study, optuna_storage
from loopwise.tuning.space import build_config, decode_params

log = logging.getLogger(__name__)


class TrialReporter(Reporter):
    """Reports the objective metric of each validation to the Optuna trial; asks it whether to prune."""

    def __init__(self, trial: optuna.trial.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.reported = False
        self.pruned = False
        self._last_step = -1

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        if self.metric not in metrics or step <= self._last_step:
            return
        self._last_step = step
        try:
            self.trial.report(float(metrics[self.metric]), step)
            self.reported = True
            self.pruned = self.trial.should_prune()
        except Exception:  # a reporter must not raise; the trial then runs to its end
            log.warning("could not report step %d of trial %d", step, self.trial.number, exc_info=True)

    def should_stop(self) -> bool:
        return self.pruned


def run_trial(store: Store, job_name: str, trial_id: int, *, progress: bool | None = False) -> TrialState:
    """Train one asked trial and tell the study its outcome; returns the state told."""
    from loopwise.training.service import TrainRequest, train

    with store.uow() as uow:
        job = uow.tuning_jobs.get(job_name)
    spec = job.tuning_spec()
    storage = optuna_storage(store)
    try:
        study = load_study(storage, job, spec, sampler=False)
        trial = optuna.trial.Trial(study, trial_id)
        reporter = TrialReporter(trial, spec.objective.metric)
        try:
            params = decode_params(spec, storage.get_trial(trial_id).params)
            request = TrainRequest(
                dataset=spec.dataset,
                backend=spec.backend,
                base_model=spec.base_model,
                model_name=job.name,
                config=build_config(spec, params),
                description=f"tuning job {job.name}, trial {trial.number}",
                lineage={"tuning_job": job.name, "trial": trial.number},
            )
            outcome = train(store, request, progress=progress, reporter=reporter)
        except Exception as exc:
            message = str(exc) if isinstance(exc, LoopwiseError) else f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", message)
            study.tell(trial, state=TrialState.FAIL)
            return TrialState.FAIL
        model = outcome.model
        trial.set_user_attr("model_version_id", model.id)
        trial.set_user_attr("model_ref", model.ref)
        trial.set_user_attr("run_id", outcome.run.id)
        if reporter.pruned:
            study.tell(trial, state=TrialState.PRUNED)
            return TrialState.PRUNED
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


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (elsewhere: nothing)."""
    if not sys.platform.startswith("linux"):
        return
    import contextlib
    import ctypes
    import signal

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loopwise.tuning.trial", description=__doc__)
    parser.add_argument("job")
    parser.add_argument("trial_id", type=int)
    parser.add_argument("--parent-pid", type=int, help="exit at once if this process is gone")
    args = parser.parse_args(argv)
    _die_with_parent()
    if args.parent_pid is not None and _gone(args.parent_pid):
        return 3
    store = Store.open(Settings())  # LOOPWISE_* variables, set by the tuning process
    try:
        state = run_trial(store, args.job, args.trial_id)
    finally:
        store.close()
    return 0 if state is not TrialState.FAIL else 1


def _gone(pid: int) -> bool:
    import os

    return os.getppid() != pid


if __name__ == "__main__":
    sys.exit(main())
