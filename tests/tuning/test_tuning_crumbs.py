"""A tuning job never starts a trial on its compute budget's crumbs: a new trial needs at least a
meaningful run (the least of one epoch, a quarter of the most a trial can process, a quarter of the
smallest complete trial, a quarter of the budget); otherwise the job completes with the reason recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from loopwise.cli import main
from loopwise.storage import Store
from loopwise.training.service import list_runs
from loopwise.tuning import builtin_spec_path, load_spec, parse_spec
from loopwise.tuning.outcome import meaningful_trial, why_done
from loopwise.tuning.records import JobStatus
from loopwise.tuning.service import job_ending, job_trials, run_job, start_job

pytestmark = pytest.mark.sqlite_only


def _trial(examples: int, state: TrialState = TrialState.COMPLETE) -> FrozenTrial:
    trial = optuna.trial.create_trial(
        state=state,
        value=0.6 if state is TrialState.COMPLETE else None,
        params={"x": 1.0},
        distributions={"x": optuna.distributions.FloatDistribution(0.0, 2.0)},
        user_attrs={"examples": examples},
    )
    trial.datetime_start = datetime(2026, 1, 1)
    trial.datetime_complete = trial.datetime_start + timedelta(seconds=10)
    return trial


def _default_spec(**completion: Any) -> Any:
    """The built-in default spec (3 epochs, batch size 16 or 32, median pruning) with a completion."""
    data = load_spec(builtin_spec_path("default_bayesian")).to_dict()
    return parse_spec({**data, "completion": completion})


def test_the_issues_last_trials_on_19_to_38_examples_are_never_started() -> None:
    # 1,500 short texts: a trial of 3 epochs processes 4,500; two ran whole, one was pruned after 2 epochs
    spec = _default_spec(max_examples=12_600)
    trials = [_trial(4500), _trial(4500), _trial(3562, TrialState.PRUNED)]
    floor, rule = meaningful_trial(trials, spec, train_size=1500)
    assert (floor, rule) == (1125, "a quarter of the most one trial can process")

    ending = why_done(trials, spec, train_size=1500)  # 38 examples left
    assert ending is not None
    assert (ending.status, ending.reason) == (JobStatus.COMPLETED, "budget")
    assert ending.detail == (
        "38 of the 12600 training examples of the budget are left, fewer than a meaningful trial "
        "(1125: a quarter of the most one trial can process)"
    )
    # 1,200 left is a trial worth running: it is capped at what is left, and then compared with the others
    assert why_done([*trials[:2], _trial(2400, TrialState.PRUNED)], spec, train_size=1500) is None


def test_the_rule_is_the_least_of_an_epoch_a_quarter_trial_and_a_quarter_budget() -> None:
    spec = _default_spec(max_examples=12_600)
    # trials of 8 epochs: a quarter of one (3,000 examples) is more than an epoch
    long = parse_spec({**spec.to_dict(), "static": {**spec.static, "epochs": 8}})
    assert meaningful_trial([], long, train_size=1500) == (1500, "one epoch of the training split")
    # a complete trial cut short (by the job's runtime) lowers the floor to a quarter of it
    assert meaningful_trial([_trial(1000)], long, train_size=1500) == (
        250,
        "a quarter of the smallest complete trial",
    )
    # a budget smaller than an epoch still runs its first trials, not crumbs of a quarter of it
    small = _default_spec(max_examples=1000)
    assert meaningful_trial([], small, train_size=50_000) == (250, "a quarter of the budget")
    assert why_done([], small, train_size=50_000) is None
    assert why_done([_trial(900)], small, train_size=50_000) is not None  # 100 left, under 900 // 4
    # nothing known: any example left is enough (trials capped by max_examples_per_trial aside)
    assert meaningful_trial([], _default_spec()) == (1, "one example")


def test_a_budget_that_would_leave_crumbs_ends_the_job_with_that_reason(
    store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    dataset = import_small(store)  # 83 training examples: one epoch is one trial
    spec = {
        "name": "crumbs",
        "dataset": dataset,
        "backend": "transformers",
        "base_model": str(tiny_bert_dir),
        "static": {"batch_size": 8, "max_seq_length": 32, "epochs": 1},
        "parameters": {"learning_rate": {"type": "continuous", "min": 1e-5, "max": 1e-3}},
        "strategy": "random",
        "max_trials": 10,
        "completion": {"max_examples": 100},
        "final_fit": {"enabled": False},  # the search's runs alone
    }
    start_job(store, parse_spec(spec))
    job = run_job(store, "crumbs")

    assert job.status is JobStatus.COMPLETED and job.error is None
    _, trials = job_trials(store, "crumbs")
    # one whole trial; the 17 examples it left would have run a second one of 2 steps before
    assert [t.state for t in trials] == [TrialState.COMPLETE]
    spent = trials[0].user_attrs["examples"]
    assert spent == 83
    ending = job_ending(store, "crumbs")
    assert ending == {
        "reason": "budget",
        "detail": f"{100 - spent} of the 100 training examples of the budget are left, fewer than a "
        "meaningful trial (20: a quarter of the most one trial can process)",
    }
    # no crumb trial was started, trained or registered
    assert len(list_runs(store)) == 1
    with store.uow() as uow:
        assert [v.ref for v in uow.models.list("crumbs")] == ["crumbs:1"]
    assert job.best_model_version_id is not None


def test_a_job_ending_for_another_reason_records_it_too(
    sqlite_store: Store,
    import_small: Callable[[Store], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dataset = import_small(sqlite_store)
    spec = {
        "name": "two",
        "dataset": dataset,
        "backend": "tfidf",
        "parameters": {"C": {"type": "continuous", "min": 0.1, "max": 10}},
        "strategy": "random",
        "max_trials": 2,
    }
    start_job(sqlite_store, parse_spec(spec))
    run_job(sqlite_store, "two")
    assert job_ending(sqlite_store, "two") == {"reason": "max_trials", "detail": "2 trials finished"}
    # and `loopwise tune status` says it, in its table and in its JSON
    monkeypatch.setenv("LOOPWISE_HOME", str(sqlite_store.settings.home))
    monkeypatch.setenv("LOOPWISE_DATABASE_URL", sqlite_store.settings.resolved_database_url)
    capsys.readouterr()
    main(["tune", "status", "two"])
    assert "ended: 2 trials finished (max_trials)" in capsys.readouterr().out
    main(["tune", "status", "two", "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert shown["ended_because"] == {"reason": "max_trials", "detail": "2 trials finished"}
