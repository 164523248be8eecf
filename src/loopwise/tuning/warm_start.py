"""Warm start: a new tuning job that begins from the trials of earlier jobs (its parents).

``identical_data_and_algorithm`` copies the parents' finished trials into the new study: the sampler learns
from them, they do not count towards ``max_trials``. ``transfer_learning`` queues the parents' best
configurations to run first, on this job's data (parameters outside this job's space are left to the
sampler).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from loopwise.errors import TuningSpecError
from loopwise.tuning.outcome import FINISHED, RERUN_OF, RETRY_OF, TRANSFERRED_FROM, WARM_START_OF
from loopwise.tuning.space import distributions
from loopwise.tuning.spec import job_spec

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.tuning.records import TuningJob
    from loopwise.tuning.spec import TuningSpec


def warm_start(store: Store, storage: optuna.storages.RDBStorage, spec: TuningSpec) -> None:
    """Copy (identical) or queue (transfer) the parents' trials into the new job's study."""
    assert spec.warm_start is not None
    study = optuna.load_study(study_name=spec.name, storage=storage)
    space = distributions(spec)
    with store.uow() as uow:
        parents = [uow.tuning_jobs.get(name) for name in spec.warm_start.parents]
    problems: list[tuple[str, str]] = []
    found: list[tuple[TuningJob, list[FrozenTrial]]] = []
    for parent in parents:
        parent_spec = job_spec(parent)
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
