"""The tuning report: trials ranked by the job's direction, the running best, figures that are real PNGs,
importances or the reason there are none, and ``loopwise tune results`` over a recorded job."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial
from typer.testing import CliRunner

from cli_helpers import run
from loopwise.cli import app
from loopwise.config import Settings
from loopwise.storage import Store
from loopwise.tuning import distributions, parse_spec
from loopwise.tuning._study import optuna_storage
from loopwise.tuning.records import JobStatus, TuningJob
from loopwise.tuning.report import (
    parameter_importances,
    running_best,
    trial_rows,
    write_tuning_report,
)
from loopwise.tuning.service import start_job
from loopwise.tuning.spec import job_spec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PARAMETERS = {
    "learning_rate": {"type": "continuous", "min": 1e-5, "max": 1e-3, "scaling": "log"},
    "batch_size": {"type": "categorical", "values": [8, 16]},
}


def make_job(direction: str = "maximize", *, best_trial: int | None = None, **spec: Any) -> TuningJob:
    metric = "val_acc" if direction == "maximize" else "val_loss"
    checked = parse_spec(
        {
            "name": "lr-search",
            "backend": "tfidf",
            "parameters": PARAMETERS,
            "objective": {"metric": metric, "direction": direction},
            **spec,
        }
    )
    return TuningJob(
        id=1,
        name=checked.name,
        spec=checked.to_dict(),
        status=JobStatus.COMPLETED,
        study_name=checked.name,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        best_trial=best_trial,
    )


def trial(
    number: int,
    job: TuningJob,
    *,
    state: TrialState = TrialState.COMPLETE,
    value: float | None = None,
    lr: float = 1e-4,
    batch_size: int = 8,
    curve: dict[int, float] | None = None,
    seconds: float = 10.0,
    **attrs: Any,
) -> FrozenTrial:
    """A finished trial as the tuning service leaves it (model attributes on complete ones)."""
    dists: dict[str, BaseDistribution] = distributions(job_spec(job))
    frozen = create_trial(
        state=state,
        value=value,
        params={"learning_rate": lr, "batch_size": batch_size},
        distributions=dists,
        intermediate_values=curve,
        user_attrs=attrs,
    )
    frozen.number = number
    start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=number)
    frozen.datetime_start = start
    frozen.datetime_complete = None if state is TrialState.RUNNING else start + timedelta(seconds=seconds)
    return frozen


def search(job: TuningJob) -> list[FrozenTrial]:
    """Six trials: four complete (one the best), one pruned early, one failed."""
    return [
        trial(0, job, value=0.61, lr=1e-5, curve={10: 0.50, 20: 0.58, 30: 0.61}, model_ref="lr-search:1"),
        trial(1, job, value=0.72, lr=3e-4, batch_size=16, curve={10: 0.60, 20: 0.70, 30: 0.72}),
        trial(2, job, state=TrialState.PRUNED, value=0.40, lr=8e-4, curve={10: 0.40}),
        trial(3, job, state=TrialState.FAIL, lr=5e-5, error="CUDA out of memory\ntraceback..."),
        trial(4, job, value=0.69, lr=2e-4, curve={10: 0.55, 20: 0.66, 30: 0.69}),
        trial(5, job, value=0.80, lr=1e-4, batch_size=16, curve={10: 0.70, 20: 0.78, 30: 0.80}),
    ]


def test_rows_rank_by_objective_for_maximize_with_valueless_trials_last() -> None:
    job = make_job("maximize", best_trial=5)
    rows = trial_rows(job, search(job))

    assert [row["number"] for row in rows] == [5, 1, 4, 0, 2, 3]
    assert [row["best"] for row in rows] == [True] + [False] * 5
    best = rows[0]
    assert best["state"] == "complete" and best["objective"] == 0.80
    assert best["params"] == {"learning_rate": 1e-4, "batch_size": 16}
    assert best["duration_s"] == 10.0 and best["reports"] == 3 and best["last_step"] == 30
    failed = rows[-1]
    assert failed["state"] == "fail" and failed["objective"] is None
    assert failed["error"].startswith("CUDA out of memory") and failed["reports"] == 0
    assert rows[3]["model_ref"] == "lr-search:1"
    assert set(best) >= {"model_ref", "model_version_id", "run_id", "error", "rerun_of", "started_at"}


def test_rows_rank_lowest_first_for_minimize_and_unnumbered_ties_by_number() -> None:
    job = make_job("minimize")
    trials = [
        trial(0, job, value=0.9),
        trial(1, job, value=0.3),
        trial(2, job, state=TrialState.FAIL),
        trial(3, job, value=0.3),
        trial(4, job, state=TrialState.RUNNING),
        trial(5, job, value=1.2),
    ]
    rows = trial_rows(job, trials)

    assert [row["number"] for row in rows] == [1, 3, 0, 5, 2, 4]
    # no best recorded yet (the job runs): the best complete trial so far, the earlier of a tie
    assert [row["number"] for row in rows if row["best"]] == [1]
    assert rows[-1]["state"] == "running" and rows[-1]["duration_s"] is None


def test_the_running_best_follows_the_direction_over_complete_trials_only() -> None:
    job = make_job("maximize")
    trials = search(job)
    assert running_best(trials, "maximize") == [(0, 0.61), (1, 0.72), (4, 0.72), (5, 0.80)]
    assert running_best(trials, "minimize") == [(0, 0.61), (1, 0.61), (4, 0.61), (5, 0.61)]
    assert running_best([], "maximize") == []


def test_importances_cover_the_varied_parameters_and_sum_to_one() -> None:
    job = make_job()
    importances = parameter_importances(job, search(job))

    assert importances.values is not None
    assert set(importances.values) == {"learning_rate", "batch_size"}
    assert sum(importances.values.values()) == pytest.approx(1.0)
    assert "4 complete trials" in (importances.note or "")  # few trials: read as a rough guide
    assert parameter_importances(job, search(job)) == importances  # fixed seed


def test_importances_leave_out_a_parameter_no_trial_changed() -> None:
    job = make_job()
    trials = [trial(n, job, value=0.5 + n / 10, lr=10 ** -(5 - n / 2)) for n in range(4)]
    importances = parameter_importances(job, trials)
    assert importances.values == {"learning_rate": 1.0}
    assert "batch_size" in (importances.note or "")


@pytest.mark.parametrize(
    ("trials", "reason"),
    [
        (lambda job: [trial(0, job, value=0.7), trial(1, job, state=TrialState.FAIL)], "at least 2 complete"),
        (lambda job: [trial(0, job, value=0.7), trial(1, job, value=0.8)], "same values"),
        (lambda job: [trial(0, job, value=0.7), trial(1, job, value=0.7, lr=1e-3)], "objective to differ"),
    ],
    ids=["one complete trial", "no parameter varied", "constant objective"],
)
def test_importances_are_absent_with_the_reason_when_they_cannot_be_computed(
    trials: Callable[[TuningJob], list[FrozenTrial]], reason: str
) -> None:
    job = make_job()
    importances = parameter_importances(job, trials(job))
    assert importances.values is None and reason in (importances.note or "")


def test_the_report_writes_json_figures_and_a_page_naming_every_trial(tmp_path: Path) -> None:
    job = make_job("maximize", best_trial=5)
    trials = search(job)
    report = write_tuning_report(job, trials, tmp_path / "report")

    figures = [report.objective_png, report.curves_png, report.importances_png]
    for png in figures:
        assert png is not None and png.parent == tmp_path / "report"
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    document = json.loads(report.json.read_text())
    assert set(document) == {
        "job",
        "objective",
        "counts",
        "best",
        "running_best",
        "trials",
        "importances",
        "generated_at",
        "final_fit",
        "ended_because",
    }
    assert document["final_fit"] is None and document["ended_because"] is None  # no attributes given
    assert document["job"]["name"] == "lr-search" and document["job"]["status"] == "completed"
    assert document["objective"] == {"metric": "val_acc", "direction": "maximize"}
    assert document["counts"]["total"] == 6 and document["counts"]["pruned"] == 1
    assert document["best"]["number"] == 5 and document["best"]["params"]["batch_size"] == 16
    assert [p["objective"] for p in document["running_best"]] == [0.61, 0.72, 0.72, 0.80]
    assert [row["number"] for row in document["trials"]] == [5, 1, 4, 0, 2, 3]
    assert set(document["importances"]["values"]) == {"learning_rate", "batch_size"}

    html = report.html.read_text()
    for t in trials:
        assert f'id="trial-{t.number}"' in html
    assert html.count("data:image/png;base64,") == 3
    assert "CUDA out of memory" in html and "traceback" not in html  # the error's first line only
    assert "lr-search:1" in html and "Tuning job lr-search" in html


def test_the_report_shows_the_final_model_beside_the_best_trial_and_why_the_search_ended(
    tmp_path: Path,
) -> None:
    job = make_job("maximize", best_trial=5)
    ended = {"reason": "budget", "detail": "12 of the 12000 training examples of the budget are left"}
    fit = {
        "state": "complete", "attempt": 1, "trial": 5, "data": "train", "held_out": True, "epochs": 3,
        "model_ref": "lr-search:7", "examples": 16611, "wall_s": 912.5,
        "validation": {"val_acc": 0.7321, "val_loss": 0.61}, "test_accuracy": 0.7012,
    }  # fmt: skip
    report = write_tuning_report(job, search(job), tmp_path, attrs={"final_fit": fit, "ended_because": ended})

    document = json.loads(report.json.read_text())
    assert document["final_fit"] == fit and document["ended_because"] == ended
    html = report.html.read_text()
    final = html[html.index("<h2>Final model</h2>") : html.index("Objective per trial")]
    for shown in (
        "lr-search:7",
        "trial 5",
        "16611",
        "912.5s",
        "0.7321",
        "0.7012",
        "the whole training split",
    ):
        assert shown in final, shown
    assert "The search ended: 12 of the 12000 training examples of the budget are left (budget)" in html

    everything = {**fit, "data": "train+validation", "held_out": False, "validation": None}
    html = write_tuning_report(job, search(job), tmp_path, attrs={"final_fit": everything}).html.read_text()
    assert "nothing was held out for validation" in html and "nothing held out" in html

    failed = {"state": "failed", "attempt": 1, "trial": 5, "error": "CUDA out of memory"}
    html = write_tuning_report(job, search(job), tmp_path, attrs={"final_fit": failed}).html.read_text()
    assert (
        "Final fit failed (attempt 1): CUDA out of memory; the best trial's model is the job's best" in html
    )


def test_a_report_with_one_complete_trial_explains_the_missing_figures(tmp_path: Path) -> None:
    job = make_job()
    out = tmp_path / "report"
    write_tuning_report(job, search(job), out)  # a full report first: its figures must not linger
    trials = [trial(0, job, value=0.7), trial(1, job, state=TrialState.FAIL, error="boom")]
    report = write_tuning_report(job, trials, out)

    assert report.curves_png is None and report.importances_png is None
    assert sorted(p.name for p in out.glob("*.png")) == ["objective.png"]
    document = json.loads(report.json.read_text())
    assert document["importances"]["values"] is None
    assert "at least 2 complete trials" in document["importances"]["note"]
    html = report.html.read_text()
    assert html.count("data:image/png;base64,") == 1
    assert "at least 2 complete trials" in html and "no learning curves" in html


# --- the command ----------------------------------------------------------------------------------------


@pytest.fixture
def recorded_job(
    settings: Settings,
    sqlite_store: Store,
    import_small: Callable[[Store], str],
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """A tuning job in the store whose study holds three finished trials; LOOPWISE_HOME points at it."""
    monkeypatch.setenv("LOOPWISE_HOME", str(settings.home))
    monkeypatch.delenv("LOOPWISE_DATABASE_URL", raising=False)
    spec = parse_spec(
        {
            "name": "cli-job",
            "dataset": import_small(sqlite_store),
            "backend": "tfidf",
            "parameters": PARAMETERS,
        }
    )
    job = start_job(sqlite_store, spec)
    storage = optuna_storage(sqlite_store)
    try:
        study = optuna.load_study(study_name=job.study_name, storage=storage)
        dists = distributions(spec)
        for value, lr, attrs in [
            (0.71, 1e-4, {"model_ref": "cli-job:1"}),
            (0.83, 3e-4, {"model_ref": "cli-job:2"}),
            (None, 9e-4, {"error": "training diverged"}),
        ]:
            study.add_trial(
                create_trial(
                    state=TrialState.COMPLETE if value is not None else TrialState.FAIL,
                    value=value,
                    params={"learning_rate": lr, "batch_size": 8},
                    distributions=dists,
                    intermediate_values={5: (value or 0.3) - 0.1, 10: value or 0.3},
                    user_attrs=attrs,
                )
            )
    finally:
        storage.engine.dispose()
    return job.name


def test_tune_results_prints_the_ranking_and_writes_the_report(
    recorded_job: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopwise.cli import _common

    # the console measured the terminal when it was made (whichever test imported the CLI first)
    monkeypatch.setattr(_common.console, "width", 200)
    runner = CliRunner()
    result = runner.invoke(app, ["tune", "results", recorded_job], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    ranked = [line for line in lines if line.startswith("│") and ("cli-job:" in line or "diverged" in line)]
    assert len(ranked) == 3 and "training diverged" in ranked[2], result.output
    assert [("cli-job:2" in line, "cli-job:1" in line) for line in ranked[:2]] == [
        (True, False),
        (False, True),
    ]
    assert "best trial: 1 (val_acc 0.8300), model cli-job:2" in result.output
    report = settings.resolved_artifact_root / "tuning" / recorded_job / "report" / "report.html"
    assert report.is_file() and f"report: {report}" in result.output

    as_json = runner.invoke(app, ["tune", "results", recorded_job, "--json"])
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    assert [row["number"] for row in document["trials"]] == [1, 0, 2]
    assert document["best"]["model_ref"] == "cli-job:2"


def test_tune_results_writes_where_out_says(recorded_job: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tune", "results", recorded_job, "--out", str(tmp_path / "here")])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "here").iterdir()} >= {"results.json", "report.html", "objective.png"}


def test_tune_results_for_an_unknown_job_is_one_clear_error(tmp_path: Path) -> None:
    result = run(tmp_path / "home", "tune", "results", "nope", check=False)
    assert result.returncode == 1
    assert "tuning job 'nope' not found" in result.stderr and "Traceback" not in result.stderr


def test_trials_copied_from_a_parent_job_are_shown_but_never_the_best(tmp_path: Path) -> None:
    job = make_job("maximize")
    trials = [
        trial(0, job, value=0.95, warm_start_of="parent#4"),
        trial(1, job, value=0.70),
        trial(2, job, state=TrialState.FAIL, error="killed"),
        trial(3, job, value=0.75, retry_of=2),
    ]
    rows = trial_rows(job, trials)

    assert [row["number"] for row in rows] == [0, 3, 1, 2]  # ranked by objective, copies included
    assert [row["number"] for row in rows if row["best"]] == [3]
    assert rows[0]["warm_start_of"] == "parent#4" and rows[1]["retry_of"] == 2
    assert running_best(trials, "maximize") == [(1, 0.70), (3, 0.75)]
    html = write_tuning_report(job, trials, tmp_path).html.read_text()
    assert "copied from parent#4" in html and "retry of trial 2" in html
