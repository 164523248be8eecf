"""What a tuning job's trials add up to: which are its own, how long they ran, the compute they spent,
whether the job is done, and its best trial. Pure functions of the study's trials, shared by the worker,
the report and the benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from optuna.trial import FrozenTrial, TrialState

from loopwise.tuning.records import JobStatus
from loopwise.tuning.space import max_trial_examples

if TYPE_CHECKING:
    from loopwise.tuning.spec import TuningSpec

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: user attributes of copied, transferred, retried and re-run trials
WARM_START_OF = "warm_start_of"
TRANSFERRED_FROM = "transferred_from"
RETRY_OF = "retry_of"
RERUN_OF = "rerun_of"
#: user attribute: the compute (training examples) a trial may use of the job's budget
ALLOWANCE = "examples_allowance"
#: user attribute: the training examples a running trial has seen so far (recorded every few seconds)
EXAMPLES_SEEN = "examples_seen"
#: the study's user attribute that records why the job ended: ``{"reason": ..., "detail": ...}``
ENDED_BECAUSE = "ended_because"
#: why a job ends, by reason code
ENDINGS = {
    "max_trials": "max_trials trials finished",
    "failures": "too many trials failed",
    "target_objective": "a trial reached completion.target_objective",
    "no_improvement": "completion.no_improvement_trials trials brought no improvement",
    "max_runtime": "completion.max_runtime_s is up",
    "budget": "what is left of completion.max_examples is too little for a meaningful trial",
}


class Ending(NamedTuple):
    """Why a job ends now: its final status, the reason code (a key of :data:`ENDINGS`) and the reason
    in words with its figures (a failed job's error)."""

    status: JobStatus
    reason: str
    detail: str


def own_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
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


def failed_for_good(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Failed trials that were neither retried nor re-run."""
    again = {t.user_attrs.get(RETRY_OF) for t in trials} | {t.user_attrs.get(RERUN_OF) for t in trials}
    return [t for t in trials if t.state is TrialState.FAIL and t.number not in again]


def meaningful_trial(
    trials: list[FrozenTrial], spec: TuningSpec, train_size: int | None = None
) -> tuple[int, str]:
    """The fewest training examples a new trial must be allowed for it to start under a compute budget,
    and which rule set it: the least of one epoch of the training split (``train_size`` rows), a quarter
    of the most one trial can process (:func:`~loopwise.tuning.space.max_trial_examples`), a quarter of
    the smallest complete trial so far, and a quarter of the whole budget (so that a budget smaller than
    an epoch still runs its first trials); at least 1. Below it a trial would run on the budget's crumbs:
    a few dozen examples reach chance accuracy, cannot be compared with the others, and would register a
    model and mislead the sampler."""
    rules: list[tuple[int, str]] = []
    if train_size:
        rules.append((train_size, "one epoch of the training split"))
    most = max_trial_examples(spec, train_size)
    if most:
        rules.append((most // 4, "a quarter of the most one trial can process"))
    complete = [
        int(t.user_attrs["examples"])
        for t in own_trials(trials)
        if t.state is TrialState.COMPLETE and int(t.user_attrs.get("examples", 0)) > 0
    ]
    if complete:
        rules.append((min(complete) // 4, "a quarter of the smallest complete trial"))
    if spec.completion.max_examples is not None:
        rules.append((spec.completion.max_examples // 4, "a quarter of the budget"))
    least, rule = min(rules, default=(1, "one example"), key=lambda r: r[0])
    return max(1, least), rule


def why_done(trials: list[FrozenTrial], spec: TuningSpec, train_size: int | None = None) -> Ending | None:
    """Why the job with these trials ends now, or None to run another trial. ``train_size``: the training
    split's rows (one epoch), when known."""
    own = own_trials(trials)
    finished = [t for t in own if t.state in FINISHED]
    failed = failed_for_good(own)
    if len(finished) >= spec.max_trials:
        return Ending(JobStatus.COMPLETED, "max_trials", f"{len(finished)} trials finished")
    if len(failed) >= max(3, spec.max_trials):
        last = failed[-1].user_attrs.get("error", "no error recorded")
        return Ending(JobStatus.FAILED, "failures", f"{len(failed)} trials failed, the last with: {last}")
    completion = spec.completion
    values = [float(t.value) for t in own if t.state is TrialState.COMPLETE and t.value is not None]
    pick = max if spec.objective.direction == "maximize" else min
    target = completion.target_objective
    if values and target is not None and pick(pick(values), target) == pick(values):
        detail = f"{spec.objective.metric} {pick(values):g} reached the target {target:g}"
        return Ending(JobStatus.COMPLETED, "target_objective", detail)
    n = completion.no_improvement_trials
    if n is not None and len(values) > n and pick(values[:-n]) == pick(values):
        detail = f"the last {n} complete trials did not improve on {pick(values):g}"
        return Ending(JobStatus.COMPLETED, "no_improvement", detail)
    if completion.max_runtime_s is not None and active_seconds(own) >= completion.max_runtime_s:
        detail = f"trials ran {active_seconds(own):.0f} s of the {completion.max_runtime_s:g} s allowed"
        return Ending(JobStatus.COMPLETED, "max_runtime", detail)
    budget = completion.max_examples
    if budget is not None:
        left = budget - examples_spent(own)
        floor, rule = meaningful_trial(trials, spec, train_size)
        if left < floor:
            detail = (
                f"{max(0, left)} of the {budget} training examples of the budget are left, fewer than a "
                f"meaningful trial ({floor}: {rule})"
            )
            return Ending(JobStatus.COMPLETED, "budget", detail)
    return None


def ranked_trials(trials: list[FrozenTrial], spec: TuningSpec) -> list[FrozenTrial]:
    """The job's own complete trials, best first (ties: the earliest first)."""
    complete = [t for t in own_trials(trials) if t.state is TrialState.COMPLETE and t.value is not None]
    sign = -1.0 if spec.objective.direction == "maximize" else 1.0
    return sorted(complete, key=lambda t: (sign * float(t.value or 0.0), t.number))


def best_trial(trials: list[FrozenTrial], spec: TuningSpec) -> FrozenTrial | None:
    """The job's own best complete trial (ties: the earliest)."""
    ranked = ranked_trials(trials, spec)
    return ranked[0] if ranked else None


def job_progress(trials: list[FrozenTrial], spec: TuningSpec) -> tuple[int, int, str]:
    """How far the job is: ``(done, total, unit)``, in training examples when it has a compute budget (a
    running trial counts the examples it reported so far), else in finished trials."""
    own = own_trials(trials)
    budget = spec.completion.max_examples
    if budget is not None:
        # a trial counts what it reported while running or what its profile counted, whichever is more,
        # before and after it ends alike: the figure never goes back when a trial finishes
        counted = [t for t in own if t.state in (*FINISHED, TrialState.FAIL, TrialState.RUNNING)]
        seen = sum(
            max(
                int(max(t.intermediate_values, default=0)),
                int(t.user_attrs.get(EXAMPLES_SEEN, 0)),
                int(t.user_attrs.get("examples", 0)),
            )
            for t in counted
        )
        return min(budget, seen), budget, "training examples"
    finished = sum(t.state in FINISHED for t in own)
    return min(finished, spec.max_trials), spec.max_trials, "trials"
