"""The tuning service's read-side helpers the main job (``loopwise demo``) stands on: a free job name, the
best model with its one test evaluation, and the runner-up whose checkpoint was kept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import optuna

from loopwise import registry
from loopwise.data.versions import parse_dataset_ref
from loopwise.registry.records import ModelVersion
from loopwise.storage import Store
from loopwise.tuning import builtin_spec_path, load_spec
from loopwise.tuning.outcome import WARM_START_OF
from loopwise.tuning.records import JobStatus, TuningJob
from loopwise.tuning.service import best_model, free_job_name, runner_up


def _job(**fields: Any) -> TuningJob:
    spec = {**load_spec(builtin_spec_path("default_bayesian")).to_dict(), "name": "j", "dataset": "small"}
    return TuningJob(
        id=1,
        name="j",
        spec=spec,
        status=JobStatus.COMPLETED,
        study_name="j",
        created_at=datetime.now(UTC),
        **fields,
    )


def _model(store: Store, name: str = "m") -> ModelVersion:
    with store.uow() as uow:
        return registry.register(uow, name, backend="tfidf", uri="file:///tmp/m", labels=["-1", "0", "1"])


def _trial(value: float, **attrs: Any) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(value=value, params={}, distributions={}, user_attrs=attrs)


def test_a_free_job_name_is_the_first_number_not_taken(store: Store) -> None:
    assert free_job_name(store, "m") == "m-tuning-1"
    spec = load_spec(builtin_spec_path("default_bayesian")).to_dict()
    with store.uow() as uow:
        for taken in ("m-tuning-1", "m-tuning-3", "other-tuning-2"):
            uow.tuning_jobs.add(taken, {**spec, "name": taken}, taken)
    assert free_job_name(store, "m") == "m-tuning-2"
    assert free_job_name(store, "other") == "other-tuning-1"
    with store.uow() as uow:
        uow.tuning_jobs.add("m-tuning-2", {**spec, "name": "m-tuning-2"}, "m-tuning-2")
    assert free_job_name(store, "m") == "m-tuning-4"


def test_the_best_model_comes_with_its_test_evaluation_only(
    store: Store, import_small: Callable[[Store], str]
) -> None:
    dataset_ref = import_small(store)
    best = _model(store)
    with store.uow() as uow:
        dataset_id = uow.datasets.get(*parse_dataset_ref(dataset_ref)).id
        evaluations = [
            uow.evaluations.add(
                model_ref=best.ref,
                model_version_id=best.id,
                dataset_version_id=dataset_id,
                split=split,
                metrics={},
                report_uri=f"file:///tmp/{split}",
            )
            for split in ("validation", "test")
        ]
    found, evaluation = best_model(
        store, _job(best_model_version_id=best.id, test_evaluation_id=evaluations[1].id)
    )
    assert found.id == best.id
    assert evaluation is not None and evaluation.id == evaluations[1].id and evaluation.split == "test"
    assert best_model(store, _job(best_model_version_id=best.id))[1] is None


def test_the_runner_up_is_the_next_ranked_trial_whose_checkpoint_was_kept(store: Store) -> None:
    first, removed, kept = _model(store), _model(store), _model(store)
    with store.uow() as uow:
        uow.models.mark_checkpoint_removed(removed.id)
    trials = [
        _trial(0.95, model_version_id=_model(store).id, **{WARM_START_OF: "parent"}),  # a parent's: not ours
        _trial(0.90, model_version_id=first.id),
        _trial(0.85),  # no model (pruned or failed to register)
        _trial(0.80, model_version_id=removed.id),
        _trial(0.70, model_version_id=kept.id),
    ]
    second = runner_up(store, _job(), trials)
    assert second is not None and second.id == kept.id
    with store.uow() as uow:
        uow.models.mark_checkpoint_removed(kept.id)
    assert runner_up(store, _job(), trials) is None
    assert runner_up(store, _job(), trials[1:2]) is None
