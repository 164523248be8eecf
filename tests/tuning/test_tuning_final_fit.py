"""A tuning job's final fit: after the search, the best configuration trains on the whole training split
without the search's caps, in its own process; its model is the job's ``best``, outside the budget."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import run_process as run  # resume starts trial processes: a process, as users run it
from loopwise.config import Settings
from loopwise.data.versions import parse_dataset_ref
from loopwise.errors import NotFoundError, TuningSpecError
from loopwise.storage import Store
from loopwise.tuning import parse_spec
from loopwise.tuning.outcome import examples_spent, own_trials
from loopwise.tuning.records import JobStatus
from loopwise.tuning.service import job_ending, job_final_fit, job_trials, run_job, start_job
from tuning_helpers import bert_spec, start_tuning

pytestmark = pytest.mark.sqlite_only


def _bert_spec(dataset: str, tiny_bert_dir: Path, **overrides: Any) -> dict[str, Any]:
    """Two trials of 24 examples each under a budget of 48; the final fit of 2 whole epochs."""
    return bert_spec(
        dataset,
        tiny_bert_dir,
        **{
            "name": "fit",
            "model_name": "fit-model",
            "static": {"batch_size": 8, "epochs": 2, "max_seq_length": 16},
            "max_trials": 2,
            "max_examples_per_trial": 24,
            "completion": {"max_examples": 48},
            **overrides,
        },
    )


def _tfidf_spec(dataset: str, name: str, **final_fit: Any) -> dict[str, Any]:
    return {
        "name": name,
        "dataset": dataset,
        "backend": "tfidf",
        "parameters": {"C": {"type": "continuous", "min": 0.1, "max": 10}},
        "strategy": "random",
        "max_trials": 2,
        "final_fit": final_fit,
    }


def _rows(store: Store, dataset: str, split: str) -> int:
    with store.uow() as uow:
        return uow.datasets.get(*parse_dataset_ref(dataset)).split(split).rows


def _fit_state(store: Store, job: str) -> str | None:
    """The final fit's state; None before it starts (or before the job is recorded)."""
    try:
        return (job_final_fit(store, job) or {}).get("state")
    except NotFoundError:
        return None


def _models(store: Store, name: str) -> dict[int, Any]:
    with store.uow() as uow:
        return {m.id: m for m in uow.models.list(name)}


def test_the_final_fit_trains_the_best_configuration_uncapped_and_is_the_best_model(
    store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    dataset = import_small(store)  # 2 epochs of the training split are ~170 examples, the trials get 24
    start_job(store, parse_spec(_bert_spec(dataset, tiny_bert_dir)))
    job = run_job(store, "fit")

    assert job.status is JobStatus.COMPLETED and job.error is None
    _, trials = job_trials(store, "fit")
    best = next(t for t in trials if t.number == job.best_trial)
    fit = job_final_fit(store, "fit")
    assert fit is not None and fit["state"] == "complete" and fit["attempt"] == 1
    assert fit["trial"] == best.number and fit["held_out"] is True and fit["epochs"] == 2
    assert fit["examples"] == 2 * _rows(store, dataset, "train") and fit["wall_s"] > 0
    assert set(fit["validation"]) >= {"val_acc", "val_loss"}
    models = _models(store, "fit-model")
    final = models[fit["model_version_id"]]
    assert job.best_model_version_id == final.id and final.aliases == ("best",)
    assert final.params["tuning_job"] == "fit" and final.params["trial"] == best.number
    assert final.params["final_fit"] is True and final.params["learning_rate"] == best.params["learning_rate"]
    assert final.params["steps_per_epoch"] is None  # no cap from the search's per-trial examples
    assert fit["test_accuracy"] == final.metrics["test_accuracy"]
    trial_model = models[best.user_attrs["model_version_id"]]
    assert "best" not in trial_model.aliases and "final_fit" not in trial_model.params
    # the final fit is outside the budget: the trials alone spent it
    assert examples_spent(own_trials(trials)) <= 48 < 48 + fit["examples"]
    assert job_ending(store, "fit") is not None


def test_a_disabled_final_fit_leaves_the_best_trials_model_as_best(
    store: Store, import_small: Callable[[Store], str]
) -> None:
    dataset = import_small(store)
    start_job(store, parse_spec(_tfidf_spec(dataset, "nofit", enabled=False)))
    job = run_job(store, "nofit")

    _, trials = job_trials(store, "nofit")
    best = next(t for t in trials if t.number == job.best_trial)
    assert job.status is JobStatus.COMPLETED and job_final_fit(store, "nofit") is None
    assert job.best_model_version_id == best.user_attrs["model_version_id"]
    assert len(_models(store, "nofit")) == 2


def test_a_final_fit_on_train_and_validation_holds_nothing_out(
    sqlite_store: Store, import_small: Callable[[Store], str]
) -> None:
    dataset = import_small(sqlite_store)
    start_job(sqlite_store, parse_spec(_tfidf_spec(dataset, "all", data="train+validation")))
    job = run_job(sqlite_store, "all")

    fit = job_final_fit(sqlite_store, "all")
    assert fit is not None and fit["state"] == "complete"
    assert fit["held_out"] is False and fit["validation"] is None
    assert fit["examples"] == _rows(sqlite_store, dataset, "train") + _rows(
        sqlite_store, dataset, "validation"
    )
    final = _models(sqlite_store, "all")[fit["model_version_id"]]
    assert final.params["train_split"] == "train+validation" and final.params["validation_split"] is None
    assert job.best_model_version_id == final.id and "test_accuracy" in final.metrics


def test_a_failed_final_fit_leaves_the_best_trials_model_as_best_with_the_error(
    store: Store, import_small: Callable[[Store], str]
) -> None:
    from loopwise.storage.artifacts.local import local_path

    dataset = import_small(store)
    spec = {**_tfidf_spec(dataset, "broken"), "max_trials": 1}
    start_job(store, parse_spec(spec))
    with store.uow() as uow:
        train_file = local_path(uow.datasets.get(*parse_dataset_ref(dataset)).split("train").uri)

    def lose_the_training_split(trial: Any) -> None:  # after the search, before the final fit reads it
        train_file.rename(train_file.with_suffix(".gone"))

    job = run_job(store, "broken", progress=lose_the_training_split)

    fit = job_final_fit(store, "broken")
    assert fit is not None and fit["state"] == "failed" and fit["error"]
    _, trials = job_trials(store, "broken")
    best = next(t for t in trials if t.number == job.best_trial)
    assert job.status is JobStatus.COMPLETED
    assert job.best_model_version_id == best.user_attrs["model_version_id"]
    assert job.error is not None and job.error.startswith(f"the final fit failed ({fit['error']})")
    assert "best" in _models(store, "broken")[job.best_model_version_id].aliases
    assert job.test_evaluation_id is not None  # the trial's model was tested instead


@pytest.mark.parametrize(
    ("final_fit", "field", "message"),
    [
        ({"enabled": "yes"}, "final_fit.enabled", "expected true or false, got 'yes'"),
        ({"data": "everything"}, "final_fit.data", "use one of train, train+validation"),
        ({"epochs": 0}, "final_fit.epochs", "must be at least 1, got 0"),
        ({"epochs": 1.5}, "final_fit.epochs", "expected a whole number, got 1.5"),
        ({"epoch": 2}, "final_fit.epoch", "did you mean 'epochs'?"),
        ("train", "final_fit", "expected a mapping of settings, got str"),
    ],
)
def test_bad_final_fit_settings_are_refused_by_their_dotted_path(
    final_fit: Any, field: str, message: str
) -> None:
    spec = {
        "name": "j",
        "backend": "tfidf",
        "parameters": {"C": {"type": "continuous", "min": 0.1, "max": 1}},
    }
    with pytest.raises(TuningSpecError) as bad:
        parse_spec({**spec, "final_fit": final_fit})
    assert [(f, m) for f, m in bad.value.problems if f == field and message in m], bad.value.problems


def test_final_fit_settings_default_and_round_trip() -> None:
    spec = {
        "name": "j",
        "backend": "tfidf",
        "parameters": {"C": {"type": "continuous", "min": 0.1, "max": 1}},
    }
    default = parse_spec(spec)
    assert (default.final_fit.enabled, default.final_fit.data, default.final_fit.epochs) == (
        True,
        "train",
        None,
    )
    chosen = parse_spec({**spec, "final_fit": {"data": "train+validation", "epochs": 4}})
    assert parse_spec(chosen.to_dict()) == chosen and chosen.final_fit.epochs == 4
    assert parse_spec({**spec, "final_fit": False}).final_fit.enabled is False


def test_a_final_fit_killed_midway_is_redone_once_by_resume(
    tmp_path: Path, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    home = tmp_path / "home"
    store = Store.open(Settings(home=home))
    dataset = import_small(store)
    spec = _bert_spec(dataset, tiny_bert_dir, max_trials=1, final_fit={"epochs": 60})  # a fit of seconds
    process = start_tuning(home, spec, tmp_path / "fit.yaml")
    try:
        deadline = time.monotonic() + 300
        while _fit_state(store, "fit") != "running":
            assert process.poll() is None and time.monotonic() < deadline, "the final fit never started"
            time.sleep(0.1)
        time.sleep(1.0)  # into the fit
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert job_final_fit(store, "fit")["state"] == "running"  # type: ignore[index]
    with store.uow() as uow:
        assert uow.tuning_jobs.get("fit").status is JobStatus.RUNNING
    assert not [m for m in _models(store, "fit-model").values() if m.params.get("final_fit")]

    resumed = run(home, "tune", "resume", "fit", check=False)
    assert resumed.returncode == 0, resumed.stderr
    shown = run(home, "tune", "status", "fit", check=False)

    fit = job_final_fit(store, "fit")
    assert fit is not None and fit["state"] == "complete" and fit["attempt"] == 2
    assert fit["interrupted"] == "interrupted: the tuning process stopped"
    finals = [m for m in _models(store, "fit-model").values() if m.params.get("final_fit")]
    with store.uow() as uow:
        job = uow.tuning_jobs.get("fit")
    store.close()
    assert [m.id for m in finals] == [fit["model_version_id"]] == [job.best_model_version_id]
    assert job.status is JobStatus.COMPLETED and "best" in finals[0].aliases
    assert "final model" in shown.stdout and fit["model_ref"] in shown.stdout
