"""A tuning job's final fit: once the search ends, the best trial's configuration trained again on the
whole training split (or training and validation together) for the configured epochs, with none of the
search's per-trial caps. That model, not the trial's, becomes the job's ``best``.

The search compares trials at a small, equal compute (``max_examples_per_trial``, ``max_steps_per_trial``,
the budget's allowance): the best trial's model saw a fraction of the data. The final fit spends what the
configuration deserves once, outside the search's budget (``completion.max_examples`` does not count it;
its examples are recorded apart).

It runs like a trial, in a process of its own started by the job's executor (task id :data:`FINAL_FIT`),
so a crash fails it cleanly and Ray and devices work the same way. Its state is the study's user
attribute :data:`STATE` (``{"state": running | interrupted | complete | failed, "attempt", "trial",
"data", "epochs", "model_version_id", "model_ref", "run_id", "examples", "wall_s", "validation",
"held_out", "test_accuracy", "error"}``); the worker that runs it beats :data:`BEAT` (``time.time()``).
A fit whose worker went silent, or that a resume finds running, is ``interrupted`` and started again by
the next worker: never twice at once, never again once complete or failed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial

from loopwise.classifiers import TrainConfig
from loopwise.errors import LoopwiseError
from loopwise.tuning._study import load_study, optuna_storage
from loopwise.tuning.outcome import Ending, best_trial
from loopwise.tuning.records import JobStatus
from loopwise.tuning.space import backend_options, build_config, decode_params
from loopwise.tuning.spec import job_spec

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.tuning.spec import TuningSpec

#: the executor's task id for a job's final fit (trials have ids >= 0)
FINAL_FIT = -1
#: the study's user attribute that holds the final fit's state
STATE = "final_fit"
#: the study's user attribute: when the worker running the final fit last beat (``time.time()``)
BEAT = "final_fit_beat"
#: the validation metrics a final fit records
VALIDATION_METRICS = ("val_acc", "val_macro_f1", "val_loss")


class FitStep(Enum):
    START = "start"
    WAIT = "wait"
    DONE = "done"


def fit_state(study: optuna.Study) -> dict[str, Any] | None:
    """The final fit's state, as recorded in the study (None: never started)."""
    state = study.user_attrs.get(STATE)
    return dict(state) if state else None


def next_step(
    study: optuna.Study, spec: TuningSpec, ending: Ending, *, here: bool, grace_s: float
) -> FitStep:
    """What a worker whose search ended does about the final fit: START it (never started, or
    interrupted, or its worker silent for ``grace_s`` seconds), WAIT for it (running here, ``here``, or
    beating elsewhere), or go on to finish the job (DONE: disabled, nothing to fit, complete or failed)."""
    if not spec.final_fit.enabled or ending.status is JobStatus.FAILED:
        return FitStep.DONE
    best = best_trial(study.get_trials(deepcopy=False), spec)
    if best is None or "model_version_id" not in best.user_attrs:
        return FitStep.DONE
    state = (fit_state(study) or {}).get("state")
    if state in (None, "interrupted"):
        return FitStep.START
    if state != "running":
        return FitStep.DONE
    if here:
        return FitStep.WAIT
    if time.time() - float(study.user_attrs.get(BEAT, 0.0)) > grace_s:
        interrupt(study, "interrupted: its worker stopped sending heartbeats")
        return FitStep.START
    return FitStep.WAIT


def claim(study: optuna.Study, spec: TuningSpec) -> None:
    """Record the final fit as started (one more attempt) by this worker; call under the job's lock."""
    best = best_trial(study.get_trials(deepcopy=False), spec)
    assert best is not None
    previous = fit_state(study) or {}
    study.set_user_attr(BEAT, time.time())
    study.set_user_attr(
        STATE,
        {
            "state": "running",
            "attempt": int(previous.get("attempt", 0)) + 1,
            "trial": best.number,
            "data": spec.final_fit.data,
            "held_out": spec.final_fit.held_out,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "interrupted": previous.get("error"),
        },
    )


def beat(study: optuna.Study) -> None:
    study.set_user_attr(BEAT, time.time())


def interrupt(study: optuna.Study, why: str) -> None:
    """Mark a running final fit interrupted (its worker stopped): the next worker starts it again."""
    state = fit_state(study)
    if state is not None and state.get("state") == "running":
        study.set_user_attr(STATE, {**state, "state": "interrupted", "error": why})


def ended(study: optuna.Study, error: str | None) -> None:
    """The final fit's process ended: a fit still marked running died without telling, and fails with
    ``error`` (how the process ended)."""
    state = fit_state(study)
    if state is not None and state.get("state") == "running":
        why = error or "the final fit's process ended without an outcome"
        study.set_user_attr(STATE, {**state, "state": "failed", "error": why})


def final_config(spec: TuningSpec, params: dict[str, Any]) -> TrainConfig:
    """The best trial's configuration (decoded ``params``) without the search's caps
    (:func:`~loopwise.tuning.space.build_config` uncapped: ``steps_per_epoch`` only where the spec set or
    searched it), for ``final_fit.epochs`` epochs, else the trial's."""
    config = build_config(spec, params, capped=False)
    config.epochs = spec.final_fit.epochs or config.epochs
    return config


def run_final_fit(store: Store, job_name: str) -> bool:
    """Train the job's final fit and record its outcome in the study; True when it completed."""
    with store.uow() as uow:
        job = uow.tuning_jobs.get(job_name)
    spec = job_spec(job)
    storage = optuna_storage(store)
    try:
        study = load_study(storage, job, spec, sampler=False)
        state = fit_state(study) or {}
        started = time.monotonic()
        try:
            trial = study.get_trials(deepcopy=False)[int(state["trial"])]
            outcome = _train(store, job.name, spec, trial)
        except Exception as exc:
            message = str(exc) if isinstance(exc, LoopwiseError) else f"{type(exc).__name__}: {exc}"
            study.set_user_attr(STATE, {**state, "state": "failed", "error": message})
            return False
        metrics = outcome.run.metrics or {}
        study.set_user_attr(
            STATE,
            {
                **state,
                "state": "complete",
                "error": None,
                "epochs": outcome.run.params.get("epochs"),
                "model_version_id": outcome.model.id if outcome.model else None,
                "model_ref": outcome.model.ref if outcome.model else None,
                "run_id": outcome.run.id,
                "examples": int(outcome.run.profile.get("examples", 0)),
                "wall_s": round(time.monotonic() - started, 3),
                "validation": {k: metrics[k] for k in VALIDATION_METRICS if k in metrics}
                if spec.final_fit.held_out
                else None,
            },
        )
        return True
    finally:
        storage.engine.dispose()


def _train(store: Store, job_name: str, spec: TuningSpec, trial: FrozenTrial) -> Any:
    from loopwise.training.service import TrainRequest, train

    params = decode_params(spec, trial.params)
    held_out = spec.final_fit.held_out
    request = TrainRequest(
        dataset=spec.dataset,
        backend=spec.backend,
        base_model=spec.base_model,
        model_name=spec.model_name or job_name,
        config=final_config(spec, params),
        options=backend_options(spec, params),
        train_split="train" if held_out else "train+validation",
        validation_split="validation" if held_out else None,
        description=f"tuning job {job_name}, final fit of trial {trial.number} ({spec.final_fit.data})",
        lineage={"tuning_job": job_name, "trial": trial.number, "final_fit": True},
    )
    return train(store, request, progress=False)


def describe(fit: dict[str, Any] | None) -> str | None:
    """The final fit in one line for people (``tune status``, ``tune results``): None when never started."""
    if not fit:
        return None
    state = fit.get("state")
    what = f"final fit of trial {fit.get('trial')} on {fit.get('data')}"
    if state == "complete":
        validation = fit.get("validation")
        held = (
            f"val_acc {validation['val_acc']:.4f}"
            if validation and "val_acc" in validation
            else "nothing held out for validation"
        )
        test = fit.get("test_accuracy")
        return (
            f"final model: {fit.get('model_ref')} ({what}: {fit.get('epochs')} epochs, "
            f"{fit.get('examples', 0):,} examples outside the budget, {float(fit.get('wall_s') or 0):.0f} s; "
            f"{held}; test accuracy {'-' if test is None else f'{test:.4f}'})"
        )
    if state == "failed":
        return (
            f"final fit failed (attempt {fit.get('attempt')}): {fit.get('error')}; "
            f"best is trial {fit.get('trial')}'s model"
        )
    return f"{what}: {state} (attempt {fit.get('attempt')})"
