"""Tuning jobs: trials run one process each, a failing trial fails alone, and a job killed with SIGKILL in
the middle of a trial resumes without losing a completed trial."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cli_helpers import run_process as run  # resume starts trial processes: a process, as users run it
from loopwise.config import Settings
from loopwise.errors import NotFoundError, StorageError, TuningSpecError
from loopwise.storage import Store
from loopwise.tuning import parse_spec
from loopwise.tuning._study import optuna_storage
from loopwise.tuning.records import JobStatus
from loopwise.tuning.service import job_trials, run_job, start_job
from tuning_helpers import bert_spec, start_tuning

pytestmark = pytest.mark.sqlite_only


def test_a_job_runs_its_trials_registers_each_and_marks_the_best(
    store: Store, tmp_path: Path, import_small: Callable[[Store], str]
) -> None:
    dataset = import_small(store)
    spec = parse_spec(
        {
            "name": "reviews-tfidf",
            "dataset": dataset,
            "backend": "tfidf",
            "parameters": {"learning_rate": {"type": "continuous", "min": 1e-5, "max": 1e-3}},
            "strategy": "random",
            "max_trials": 3,
        }
    )
    seen: list[int] = []
    start_job(store, spec)
    job = run_job(store, "reviews-tfidf", progress=lambda trial: seen.append(trial.number))

    assert job.status is JobStatus.COMPLETED and job.finished_at is not None and job.error is None
    _, trials = job_trials(store, "reviews-tfidf")
    assert seen == [0, 1, 2] and [t.state for t in trials] == [TrialState.COMPLETE] * 3
    best = max(trials, key=lambda t: (t.value, -t.number))
    assert job.best_trial == best.number
    with store.uow() as uow:
        models = uow.models.list("reviews-tfidf")
        by_id = {m.id: m for m in models}
    assert len(models) == 4  # a model per trial, and the final fit's
    for trial in trials:
        model = by_id[trial.user_attrs["model_version_id"]]
        assert model.params["tuning_job"] == "reviews-tfidf" and model.params["trial"] == trial.number
        assert model.metrics["val_acc"] == trial.value and "final_fit" not in model.params
    assert [m.id for m in models if "best" in m.aliases] == [job.best_model_version_id]
    final = by_id[job.best_model_version_id]
    assert final.params["trial"] == best.number and final.params["final_fit"] is True


def test_a_trial_whose_training_raises_fails_alone_and_the_job_goes_on(
    sqlite_store: Store, tmp_path: Path, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    dataset = import_small(sqlite_store)
    # max_seq_length 1 is a valid spec value the transformers backend refuses (it needs at least 2)
    spec = bert_spec(
        dataset,
        tiny_bert_dir,
        strategy="grid",
        max_trials=2,
        parameters={"max_seq_length": {"type": "categorical", "values": [1, 32]}},
        static={"batch_size": 8, "epochs": 1, "steps_per_epoch": 2},
    )
    start_job(sqlite_store, parse_spec(spec))
    job = run_job(sqlite_store, "tiny")

    _, trials = job_trials(sqlite_store, "tiny")
    failed = [t for t in trials if t.state is TrialState.FAIL]
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert failed and all(t.params["max_seq_length"] == 1 for t in failed)
    assert "max_seq_length must be at least 2" in failed[0].user_attrs["error"]
    assert len(complete) == 2 and all(t.params["max_seq_length"] == 32 for t in complete)
    assert job.status is JobStatus.COMPLETED and job.best_trial in {t.number for t in complete}


def test_a_bad_spec_or_unknown_data_set_is_refused_before_anything_is_recorded(
    sqlite_store: Store, tmp_path: Path, import_small: Callable[[Store], str]
) -> None:
    with pytest.raises(TuningSpecError) as bad:
        parse_spec({"name": "j", "strategy": "annealing", "parameters": {}})
    assert any(field == "strategy" for field, _ in bad.value.problems)

    parameters = {"epochs": {"type": "integer", "min": 1, "max": 2}}
    spec = parse_spec({"name": "j", "dataset": "missing", "backend": "tfidf", "parameters": parameters})
    with pytest.raises(NotFoundError):
        start_job(sqlite_store, spec)
    with sqlite_store.uow() as uow:
        assert uow.tuning_jobs.list() == []
    storage = optuna_storage(sqlite_store)
    assert optuna.get_all_study_names(storage) == []
    storage.engine.dispose()

    dataset = import_small(sqlite_store)
    ok = parse_spec({**spec.to_dict(), "dataset": dataset})
    start_job(sqlite_store, ok)
    with pytest.raises(StorageError, match="exists"):
        start_job(sqlite_store, ok)
    with sqlite_store.uow() as uow:
        assert [job.name for job in uow.tuning_jobs.list()] == ["j"]


def _trials(storage: optuna.storages.RDBStorage, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return []


def test_sigkill_in_the_middle_of_a_trial_loses_nothing_on_resume(
    tmp_path: Path, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    home = tmp_path / "home"
    store = Store.open(Settings(home=home))
    dataset = import_small(store)
    static = {"batch_size": 8, "epochs": 3, "max_seq_length": 32, "eval_every_steps": 4}
    spec = bert_spec(dataset, tiny_bert_dir, static=static)
    process = start_tuning(home, spec, tmp_path / "tiny.yaml")
    storage = optuna_storage(store)
    try:
        deadline = time.monotonic() + 300
        while True:
            trials = _trials(storage, "tiny")
            states = [t.state for t in trials]
            if TrialState.COMPLETE in states and TrialState.RUNNING in states:
                break
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, f"no trial running after a completed one: {states}"
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        time.sleep(1.0)  # the trial process dies with its parent
        before = {t.number: t for t in _trials(storage, "tiny")}
        interrupted = [t for t in before.values() if t.state is TrialState.RUNNING]
        completed = [t for t in before.values() if t.state is TrialState.COMPLETE]
        assert len(interrupted) == 1 and completed

        resumed = run(home, "tune", "resume", "tiny", check=False)
        assert resumed.returncode == 0, resumed.stderr

        after = {t.number: t for t in _trials(storage, "tiny")}
    finally:
        storage.engine.dispose()
        if process.poll() is None:
            process.kill()
    for trial in completed:
        kept = after[trial.number]
        assert (kept.state, kept.value, kept.params) == (TrialState.COMPLETE, trial.value, trial.params)
        assert kept.user_attrs["model_version_id"] == trial.user_attrs["model_version_id"]
    lost = after[interrupted[0].number]
    assert lost.state is TrialState.FAIL and "interrupted" in lost.user_attrs["error"]
    reruns = [t for t in after.values() if t.user_attrs.get("rerun_of") == lost.number]
    assert len(reruns) == 1 and reruns[0].params == lost.params and reruns[0].state is TrialState.COMPLETE
    finished = [t for t in after.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3
    sampled = [t.params["learning_rate"] for t in after.values() if "rerun_of" not in t.user_attrs]
    assert len(set(sampled)) == len(sampled)  # the resumed process does not replay the first one's samples
    with store.uow() as uow:
        job = uow.tuning_jobs.get("tiny")
        best = uow.models.get_by_id(job.best_model_version_id) if job.best_model_version_id else None
    store.close()
    assert job.status is JobStatus.COMPLETED and best is not None and "best" in best.aliases

    shown = run(home, "tune", "status", "tiny", check=False)
    assert shown.returncode == 0, shown.stderr
    assert "best trial" in shown.stdout and "interrupted" in shown.stdout


def test_a_trial_records_the_examples_it_has_seen_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopwise.tuning import trial as trial_module
    from loopwise.tuning.outcome import EXAMPLES_SEEN

    study = optuna.create_study()
    trial = study.ask()
    reporter = trial_module.TrialReporter(trial, "val_acc", batch_size=8)
    monkeypatch.setattr(trial_module, "PROGRESS_S", 0.0)
    reporter.on_train_step(5, 0.1, {"loss": 1.0})
    assert study.trials[0].user_attrs[EXAMPLES_SEEN] == 40  # steps x batch size
    monkeypatch.setattr(trial_module, "PROGRESS_S", 3600.0)
    reporter.on_train_step(6, 0.1, {"loss": 1.0})  # within the interval: not recorded
    assert study.trials[0].user_attrs[EXAMPLES_SEEN] == 40
