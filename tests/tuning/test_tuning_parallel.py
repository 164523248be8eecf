"""Tuning jobs in parallel: trials at once up to max_parallel_trials, workers sharing a job through
PostgreSQL, a dead worker's trial taken over, retries, kept checkpoints, the test-split evaluation of the
best model, warm start, the maximum runtime, and the Ray executor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from loopwise.config import Settings
from loopwise.errors import NotFoundError, TuningSpecError
from loopwise.evaluation.service import load_model
from loopwise.storage import Store
from loopwise.storage.artifacts.local import local_path
from loopwise.tuning import parse_spec
from loopwise.tuning import worker as tuning_worker
from loopwise.tuning._study import optuna_storage
from loopwise.tuning.outcome import EXAMPLES_SEEN, active_seconds, job_progress, why_done
from loopwise.tuning.records import JobStatus
from loopwise.tuning.service import job_final_fit, job_trials, run_job, start_job


def _tfidf_spec(dataset: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "par",
        "dataset": dataset,
        "backend": "tfidf",
        "parameters": {"learning_rate": {"type": "continuous", "min": 1e-5, "max": 1e-3}},
        "strategy": "random",
        "max_trials": 4,
    }
    spec.update(overrides)
    return spec


def _bert_spec(dataset: str, tiny_bert_dir: Path, static: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The tfidf spec on the tiny random BERT instead, with these static hyperparameters."""
    return {
        **_tfidf_spec(dataset, **overrides),
        "backend": "transformers",
        "base_model": str(tiny_bert_dir),
        "static": {"batch_size": 8, "max_seq_length": 32, **static},
    }


def _most_at_once(trials: list[FrozenTrial]) -> int:
    """The most trials that were running at the same moment."""
    events = []
    for t in trials:
        if t.datetime_start is not None and t.datetime_complete is not None:
            events += [(t.datetime_start, 1), (t.datetime_complete, -1)]
    most = current = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        current += change
        most = max(most, current)
    return most


def test_trials_run_in_parallel_up_to_the_limit_and_the_best_is_evaluated_once_on_test(
    sqlite_store: Store, import_small: Callable[[Store], str]
) -> None:
    dataset = import_small(sqlite_store)
    spec = parse_spec(_tfidf_spec(dataset, max_trials=4, max_parallel_trials=2, keep_checkpoints=1))
    start_job(sqlite_store, spec)
    job = run_job(sqlite_store, "par")

    assert job.status is JobStatus.COMPLETED, job.error
    _, trials = job_trials(sqlite_store, "par")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert _most_at_once(trials) == 2

    # the best model was evaluated once, on the test split
    assert job.test_evaluation_id is not None
    with sqlite_store.uow() as uow:
        versions = uow.models.list("par")
        evaluations = [e for v in versions for e in uow.evaluations.for_model(v.id)]
        best = uow.models.get_by_id(job.best_model_version_id or -1)
    assert [(e.id, e.split, e.model_ref) for e in evaluations] == [(job.test_evaluation_id, "test", best.ref)]
    assert "test_accuracy" in best.metrics and "best" in best.aliases

    # keep_checkpoints: 1 -> only the best trial's files are left (and the final fit's, the job's best);
    # the other trials' are marked removed
    assert best.params["final_fit"] is True
    best_trials_model = next(t for t in trials if t.number == job.best_trial).user_attrs["model_version_id"]
    kept = [v for v in versions if v.checkpoint_removed_at is None]
    assert (
        sorted(v.id for v in kept) == sorted([best_trials_model, best.id]) and local_path(best.uri).is_dir()
    )
    removed = [v for v in versions if v.checkpoint_removed_at is not None]
    assert len(removed) == 3 and not any(local_path(v.uri).exists() for v in removed)
    with pytest.raises(NotFoundError, match="keeps only its best checkpoints"):
        load_model(sqlite_store, removed[0].ref)
    assert load_model(sqlite_store, "par@best").version == best


def _worker(home: Path, url: str, job: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LOOPWISE_HOME": str(home), "LOOPWISE_DATABASE_URL": url, "COLUMNS": "200"}
    command = [sys.executable, "-c", "from loopwise.cli import main; main()", "tune", "worker", job, *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.postgres
def test_two_worker_processes_share_one_job_on_postgresql(
    postgres_url: str, tmp_path: Path, import_small: Callable[[Store], str]
) -> None:
    home = tmp_path / "home"
    store = Store.open(Settings(home=home, database_url=postgres_url))
    try:
        dataset = import_small(store)
        start_job(store, parse_spec(_tfidf_spec(dataset, max_trials=6, max_parallel_trials=2)))
        workers = [_worker(home, postgres_url, "par", "--slots", "2") for _ in range(2)]
        outputs = [w.communicate(timeout=600) for w in workers]
        for worker, (_, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, err
        job, trials = job_trials(store, "par")
        with store.uow() as uow:
            versions = uow.models.list("par")
    finally:
        store.close()

    assert job.status is JobStatus.COMPLETED
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6  # exactly max_trials, none twice
    trained = [v for v in versions if not v.params.get("final_fit")]
    assert sorted(v.params["trial"] for v in trained) == list(range(6))  # each trial trained once
    finals = [v for v in versions if v.params.get("final_fit")]
    assert [v.id for v in finals] == [job.best_model_version_id]  # one final fit between two workers
    assert len({t.params["learning_rate"] for t in trials}) == 6  # no worker replays another's samples
    assert _most_at_once(trials) <= 2  # max_parallel_trials across both workers
    ran = [
        {int(line.split()[1].rstrip(":")) for line in out.splitlines() if line.startswith("trial ")}
        for out, _ in outputs
    ]
    assert ran[0] | ran[1] == set(range(6)) and not ran[0] & ran[1], ran


def test_a_worker_takes_over_the_trial_of_a_worker_that_died(
    tmp_path: Path, import_small: Callable[[Store], str], tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    store = Store.open(Settings(home=home))
    dataset = import_small(store)
    spec = _bert_spec(dataset, tiny_bert_dir, {"epochs": 3, "eval_every_steps": 4}, max_trials=2)
    start_job(store, parse_spec(spec))
    first = _worker(home, store.settings.resolved_database_url, "par")
    storage = optuna_storage(store)
    try:
        deadline = time.monotonic() + 300
        while not any(t.state is TrialState.RUNNING for t in _trials(storage, "par")):
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        monkeypatch.setattr(tuning_worker, "HEARTBEAT_S", 1)
        monkeypatch.setattr(tuning_worker, "GRACE_S", 2)
        job = run_job(store, "par")  # a second worker, in this process
        trials = _trials(storage, "par")
    finally:
        storage.engine.dispose()
        if first.poll() is None:
            first.kill()
        store.close()
    assert job.status is JobStatus.COMPLETED
    dead = [t for t in trials if t.state is TrialState.FAIL]
    assert len(dead) == 1 and dead[0].user_attrs["error"] == tuning_worker.STALE_ERROR
    reruns = [t for t in trials if t.user_attrs.get("rerun_of") == dead[0].number]
    assert len(reruns) == 1 and reruns[0].params == dead[0].params and reruns[0].state is TrialState.COMPLETE
    assert sum(t.state is TrialState.COMPLETE for t in trials) == 2


def test_a_worker_fails_other_workers_silent_trials_but_never_its_own(
    sqlite_store: Store, import_small: Callable[[Store], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    start_job(sqlite_store, parse_spec(_tfidf_spec(import_small(sqlite_store))))
    monkeypatch.setattr(tuning_worker, "GRACE_S", 1)
    with tuning_worker.job_storage(sqlite_store, heartbeat=True) as storage:
        study = optuna.load_study(study_name="par", storage=storage)
        mine, theirs = study.ask(), study.ask()
        for trial in (mine, theirs):
            trial.suggest_float("learning_rate", 1e-5, 1e-3)
            storage.record_heartbeat(trial._trial_id)
        time.sleep(2.1)  # both silent for longer than the grace period
        tuning_worker.fail_stale(storage, study, exclude={mine._trial_id})
        trials = _trials(storage, "par")
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING]
    assert trials[1].user_attrs["error"] == tuning_worker.STALE_ERROR
    # queued again, to run with the same parameters
    assert trials[2].user_attrs == {"rerun_of": 1}
    assert (
        trials[2].system_attrs["fixed_params"]
        == trials[1].params
        == {"learning_rate": theirs.params["learning_rate"]}
    )


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_queued_again(
    sqlite_store: Store, import_small: Callable[[Store], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed between asking for a trial and its first heartbeat leaves a running trial with no
    heartbeat at all: Optuna's stale check passes it over, so it must be judged by its start time."""
    start_job(sqlite_store, parse_spec(_tfidf_spec(import_small(sqlite_store))))
    monkeypatch.setattr(tuning_worker, "GRACE_S", 1)
    with tuning_worker.job_storage(sqlite_store, heartbeat=True) as storage:
        study = optuna.load_study(study_name="par", storage=storage)
        orphan = study.ask()  # no heartbeat: its worker died right after asking
        orphan.suggest_float("learning_rate", 1e-5, 1e-3)
        tuning_worker.fail_stale(storage, study, exclude=set())
        young = [t.state for t in _trials(storage, "par")]
        time.sleep(1.2)  # older than the grace period now
        tuning_worker.fail_stale(storage, study, exclude=set())
        trials = _trials(storage, "par")
    assert young == [TrialState.RUNNING]  # within the grace period it may still be starting
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[0].user_attrs["error"] == tuning_worker.STALE_ERROR
    assert trials[1].user_attrs == {"rerun_of": 0}


def _trials(storage: optuna.storages.RDBStorage, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def test_a_failed_trial_is_retried_with_the_same_parameters(
    sqlite_store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    dataset = import_small(sqlite_store)
    # max_seq_length 1 is a valid spec value the transformers backend refuses: every attempt fails
    parameters = {"max_seq_length": {"type": "categorical", "values": [1]}}
    spec = _bert_spec(dataset, tiny_bert_dir, {"epochs": 1, "steps_per_epoch": 2}, parameters=parameters)
    spec.update(max_trials=1, retries=1)
    del spec["static"]["max_seq_length"]
    start_job(sqlite_store, parse_spec(spec))
    job = run_job(sqlite_store, "par")

    _, trials = job_trials(sqlite_store, "par")
    assert job.status is JobStatus.FAILED and "max_seq_length must be at least 2" in (job.error or "")
    assert all(t.state is TrialState.FAIL and t.params == {"max_seq_length": 1} for t in trials)
    # three failures for good end the job; each first attempt was retried once, each retry not again
    retries = [t for t in trials if "retry_of" in t.user_attrs]
    assert len(trials) == 6 and [t.user_attrs["retry_of"] for t in retries] == [0, 2, 4]
    assert {t.user_attrs["attempt"] for t in retries} == {1}


def test_warm_start_copies_identical_parents_and_transfers_the_best_configurations(
    sqlite_store: Store, import_small: Callable[[Store], str]
) -> None:
    dataset = import_small(sqlite_store)
    start_job(sqlite_store, parse_spec(_tfidf_spec(dataset, name="parent", max_trials=3)))
    parent = run_job(sqlite_store, "parent")
    _, parent_trials = job_trials(sqlite_store, "parent")

    warm = {"parents": ["parent"], "type": "identical_data_and_algorithm"}
    start_job(sqlite_store, parse_spec(_tfidf_spec(dataset, name="child", max_trials=2, warm_start=warm)))
    child = run_job(sqlite_store, "child")
    _, trials = job_trials(sqlite_store, "child")
    copied = [t for t in trials if "warm_start_of" in t.user_attrs]
    own = [t for t in trials if "warm_start_of" not in t.user_attrs]
    assert sorted(t.user_attrs["warm_start_of"] for t in copied) == [f"parent#{n}" for n in range(3)]
    assert [(t.params, t.value) for t in copied] == [(t.params, t.value) for t in parent_trials]
    assert len(own) == 2 and child.status is JobStatus.COMPLETED  # copies don't count towards max_trials
    assert child.best_trial in {t.number for t in own}

    transfer = {"parents": ["parent"], "type": "transfer_learning"}
    start_job(sqlite_store, parse_spec(_tfidf_spec(dataset, name="moved", max_trials=2, warm_start=transfer)))
    run_job(sqlite_store, "moved")
    _, moved = job_trials(sqlite_store, "moved")
    best_parent = parent_trials[parent.best_trial or 0]
    assert moved[0].user_attrs["transferred_from"] == f"parent#{best_parent.number}"
    assert moved[0].params == best_parent.params and moved[0].value is not None

    other_space = {"learning_rate": {"type": "continuous", "min": 1e-4, "max": 1e-2}}
    bad = _tfidf_spec(dataset, name="bad", parameters=other_space, warm_start=warm)
    with pytest.raises(TuningSpecError, match="differs in parameters"):
        start_job(sqlite_store, parse_spec(bad))
    with sqlite_store.uow() as uow:
        assert "bad" not in [job.name for job in uow.tuning_jobs.list()]


def _trial_at(start: datetime, seconds: float, state: TrialState = TrialState.COMPLETE) -> FrozenTrial:
    trial = optuna.trial.create_trial(
        state=state,
        value=0.5 if state is TrialState.COMPLETE else None,
        params={"x": 1.0},
        distributions={"x": optuna.distributions.FloatDistribution(0.0, 2.0)},
    )
    trial.datetime_start = start
    trial.datetime_complete = start + timedelta(seconds=seconds) if state is not TrialState.RUNNING else None
    return trial


def test_progress_counts_examples_against_the_budget_or_trials_against_max_trials() -> None:
    t0 = datetime(2026, 1, 1, 12, 0, 0)
    done = _trial_at(t0, 10)
    done.user_attrs = {"examples": 100}
    copied = _trial_at(t0, 10)  # a warm-start parent's trial is not this job's compute
    copied.user_attrs = {"examples": 1000, "warm_start_of": "parent#0"}
    reported = _trial_at(t0, 0, TrialState.RUNNING)  # validated at 40 examples, recorded 56 since
    reported.intermediate_values = {24: 0.5, 40: 0.6}
    reported.user_attrs = {EXAMPLES_SEEN: 56}
    validated = _trial_at(t0, 0, TrialState.RUNNING)
    validated.intermediate_values = {32: 0.5}
    budget = parse_spec(_tfidf_spec("d:1", max_trials=4, completion={"max_examples": 300}))
    assert job_progress([done, copied, reported, validated], budget) == (188, 300, "training examples")
    done.user_attrs = {"examples": 900}
    assert job_progress([done, reported], budget)[0] == 300  # never past the total
    trials_only = parse_spec(_tfidf_spec("d:1", max_trials=4))
    assert job_progress([done, copied, reported], trials_only) == (1, 4, "trials")


def test_a_budget_ends_the_job_when_what_is_left_is_too_little_for_a_trial() -> None:
    def spent(*examples: int) -> list[FrozenTrial]:
        trials = [_trial_at(datetime(2026, 1, 1), 10) for _ in examples]
        for trial, n in zip(trials, examples, strict=True):
            trial.user_attrs = {"examples": n}
        return trials

    capped = parse_spec(
        _tfidf_spec("d:1", max_trials=8, max_examples_per_trial=4000, completion={"max_examples": 12000})
    )
    assert why_done(spent(4000, 3905), capped) is None  # 4,095 left: one more trial
    assert why_done(spent(4000, 3905, 3000), capped) is None  # 1,095 left: at least a quarter of a trial
    ending = why_done(spent(4000, 3905, 4000), capped)  # 95 left: crumbs
    assert ending is not None and ending[:2] == (JobStatus.COMPLETED, "budget")
    uncapped = parse_spec(_tfidf_spec("d:1", max_trials=8, completion={"max_examples": 12000}))
    # without a per-trial cap, a quarter of the smallest complete trial (976) still holds
    assert why_done(spent(4000, 3905, 3000), uncapped) is None  # 1,095 left
    ending = why_done(spent(4000, 3905, 4000), uncapped)
    assert ending is not None and ending.reason == "budget" and "95 of the 12000" in ending.detail


def test_runtime_counts_time_with_a_trial_running_not_the_gaps_between_resumes() -> None:
    t0 = datetime(2026, 1, 1, 12, 0, 0)
    trials = [
        _trial_at(t0, 10),  # 0..10
        _trial_at(t0 + timedelta(seconds=5), 10),  # 5..15 overlaps: 15 s so far
        _trial_at(t0 + timedelta(hours=2), 4),  # after a crash and a resume: +4 s
    ]
    assert active_seconds(trials) == pytest.approx(19.0)
    running = _trial_at(t0 + timedelta(hours=3), 0, TrialState.RUNNING)
    assert active_seconds([running], now=t0 + timedelta(hours=3, seconds=7)) == pytest.approx(7.0)
    assert active_seconds([]) == 0.0


def test_the_maximum_runtime_stops_a_running_trial_where_it_is(
    sqlite_store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    dataset = import_small(sqlite_store)
    static = {"epochs": 500, "eval_every_steps": 2}
    spec = _bert_spec(dataset, tiny_bert_dir, static, max_trials=5, completion={"max_runtime_s": 20})
    spec["final_fit"] = {"enabled": False}  # the runtime bounds the search; a final fit would run 500 epochs
    start_job(sqlite_store, parse_spec(spec))
    started = time.monotonic()
    job = run_job(sqlite_store, "par")
    elapsed = time.monotonic() - started

    _, trials = job_trials(sqlite_store, "par")
    assert job.status is JobStatus.COMPLETED, job.error
    assert len(trials) == 1 and trials[0].state is TrialState.COMPLETE
    assert trials[0].user_attrs["stopped_by"] == "max_runtime"
    assert elapsed < 90  # 500 epochs would take far longer


@pytest.mark.ray
def test_the_ray_executor_runs_the_trials_on_a_local_ray(
    sqlite_store: Store, import_small: Callable[[Store], str]
) -> None:
    pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install 'loopwise[ray]'")
    dataset = import_small(sqlite_store)
    start_job(sqlite_store, parse_spec(_tfidf_spec(dataset, max_trials=3, max_parallel_trials=2)))
    job = run_job(sqlite_store, "par", executor="ray")

    _, trials = job_trials(sqlite_store, "par")
    assert job.status is JobStatus.COMPLETED, job.error
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(t.user_attrs["model_ref"].startswith("par:") for t in trials)
    fit = job_final_fit(sqlite_store, "par")  # the final fit ran as a Ray task too
    assert (
        fit is not None
        and fit["state"] == "complete"
        and fit["model_version_id"] == job.best_model_version_id
    )


def test_a_compute_budget_in_examples_caps_the_last_trial_and_ends_the_job(
    sqlite_store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    dataset = import_small(sqlite_store)  # 83 training examples: a trial of one epoch sees 83
    spec = _bert_spec(dataset, tiny_bert_dir, {"epochs": 1}, max_trials=10, completion={"max_examples": 200})
    start_job(sqlite_store, parse_spec(spec))
    watched: list[tuple[int, int, str]] = []
    job = run_job(sqlite_store, "par", watch=lambda ts: watched.append(job_progress(ts, parse_spec(spec))))

    _, trials = job_trials(sqlite_store, "par")
    assert job.status is JobStatus.COMPLETED
    # live progress: the examples spent against the budget, never going back
    done = [d for d, _, _ in watched]
    assert watched and {(total, unit) for _, total, unit in watched} == {(200, "training examples")}
    assert done == sorted(done) and done[-1] <= 200
    # validations count steps x batch size, so a short last batch counts whole: never below what ran
    examples = [t.user_attrs["examples"] for t in trials]
    assert sum(examples) <= job_progress(trials, parse_spec(spec))[0] <= 200
    allowances = [t.user_attrs["examples_allowance"] for t in trials]
    # each trial may use what the ended ones left; two whole epochs, then one capped at 34 examples
    assert allowances == [200 - sum(examples[:i]) for i in range(len(trials))]
    assert all(0 < used <= allowed for used, allowed in zip(examples, allowances, strict=True))
    assert len(trials) == 3 and allowances[2] < examples[0] and sum(examples) <= 200
    assert all(t.state is TrialState.COMPLETE for t in trials)
