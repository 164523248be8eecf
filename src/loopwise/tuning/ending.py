"""How a tuning job ends: why the search ended, recorded in the study; the best model (the final fit's,
else the best trial's) aliased ``best`` and evaluated once on the test split; and the checkpoints of all but
the ``keep_checkpoints`` best complete trials removed as trials end."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import optuna

from loopwise import registry
from loopwise.data.versions import parse_dataset_ref
from loopwise.errors import LoopwiseError
from loopwise.storage.tables import utcnow
from loopwise.tuning import final_fit
from loopwise.tuning.outcome import ENDED_BECAUSE, Ending, best_trial, ranked_trials
from loopwise.tuning.records import JobStatus, TuningJob
from loopwise.tuning.spec import job_spec

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.tuning.spec import TuningSpec

log = logging.getLogger(__name__)


def keep_best_checkpoints(store: Store, study: optuna.Study, spec: TuningSpec) -> None:
    """Remove the checkpoint files of complete trials outside the ``keep_checkpoints`` best."""
    ranked = ranked_trials(study.get_trials(deepcopy=False), spec)
    for trial in ranked[spec.keep_checkpoints :]:
        model_id = trial.user_attrs.get("model_version_id")
        if model_id is None:
            continue
        with store.uow() as uow:
            version = uow.models.get_by_id(int(model_id))
            if version.checkpoint_removed_at is not None or version.aliases:
                continue  # removed already, or somebody points at it
            uow.models.mark_checkpoint_removed(version.id)
            # only a checkpoint inside the artifact store is removed (one a user named stays); one
            # committed before commit markers existed is a folder under the store's root all the same
            key = store.artifacts.relative(version.uri)
            if key is not None:
                store.artifacts.remove(key)


def record_ending(study: optuna.Study, ending: Ending) -> None:
    """Record why the search ended in the study (:data:`~loopwise.tuning.outcome.ENDED_BECAUSE`), once:
    a worker waiting for the final fit calls this on every pass."""
    recorded = {"reason": ending.reason, "detail": ending.detail}
    if ending.reason and study.user_attrs.get(ENDED_BECAUSE) != recorded:
        study.set_user_attr(ENDED_BECAUSE, recorded)


def finish(store: Store, study: optuna.Study, job: TuningJob, ending: Ending) -> TuningJob:
    """End the job: record why, alias the best model ``best`` (the final fit's when it completed, else
    the best trial's, with a failed final fit's error recorded) and evaluate it once on the test split."""
    spec = job_spec(job)
    status = ending.status
    error = ending.detail if status is JobStatus.FAILED else None
    record_ending(study, ending)
    best = best_trial(study.get_trials(deepcopy=False), spec)
    model_id = None if best is None else best.user_attrs.get("model_version_id")
    if best is None and status is JobStatus.COMPLETED:
        status, error = JobStatus.FAILED, error or "no trial completed"
    fit = final_fit.fit_state(study) or {}
    if fit.get("state") == "complete" and fit.get("model_version_id") is not None:
        model_id = fit["model_version_id"]
    elif fit.get("state") == "failed" and best is not None:
        error = error or f"the final fit failed ({fit.get('error')}); best is trial {best.number}'s model"
    test_evaluation_id = job.test_evaluation_id
    if model_id is not None:
        with store.uow() as uow:
            version = uow.models.get_by_id(int(model_id))
            registry.set_alias(uow, version.ref, "best")
        if test_evaluation_id is None:
            test_evaluation_id, note = evaluate_on_test(store, version.ref, spec.dataset)
            error = error or note
        if fit.get("model_version_id") == model_id:
            with store.uow() as uow:
                tested = uow.models.get_by_id(int(model_id)).metrics.get("test_accuracy")
            study.set_user_attr(final_fit.STATE, {**fit, "test_accuracy": tested})
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


def evaluate_on_test(store: Store, model_ref: str, dataset_ref: str) -> tuple[int | None, str | None]:
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
