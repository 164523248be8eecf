"""``loopwise demo``'s steps wired together, fast: the data set, the registry, the tuning job's best model
and runner-up are real; the long steps (MiniLM tuning, the labs) are stand-ins that record what they were
given. The end-to-end run on a small budget is ``test_the_main_job_runs_end_to_end_on_a_small_budget``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import typer

from loopwise import registry
from loopwise.cli import _course_lab2, _course_lab3, _course_monitor, _course_retrain, _course_review
from loopwise.cli.demo import demo
from loopwise.data.service import get_dataset
from loopwise.data.versions import parse_dataset_ref
from loopwise.storage import Store
from loopwise.tuning import service as tuning
from loopwise.tuning.records import JobStatus


def _register(store: Store, evaluated: bool, **params: Any) -> tuple[Any, int | None]:
    with store.uow() as uow:
        version = registry.register(
            uow, "reviews-sentiment", backend="tfidf", uri="file:///m", labels=["-1", "0", "1"],
            metrics={"val_acc": 0.8}, params=params,
        )  # fmt: skip
        if not evaluated:
            return version, None
        figures = {"accuracy": {"value": 0.75, "ci95": [0.7, 0.8]}, "macro_f1": {"value": 0.74}}
        with store.artifacts.writing("evaluations/best") as staged:  # a committed report, as evaluate makes
            (staged / "report.html").write_text("<html></html>")
            (staged / "evaluation.json").write_text(json.dumps({"metrics": figures}))
        report_uri = store.artifacts.uri("evaluations/best", "report.html")
        dataset = uow.datasets.list()[0]
        evaluation = uow.evaluations.add(
            model_ref=version.ref, model_version_id=version.id, dataset_version_id=dataset.id,
            split="test", metrics={}, report_uri=report_uri,
        )  # fmt: skip
        return version, evaluation.id


@pytest.fixture
def stand_ins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, import_small: Callable[[Store], str]
) -> dict[str, Any]:
    """The demo's home with a small data set; the slow steps replaced, recording their arguments."""
    monkeypatch.setenv("LOOPWISE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOOPWISE_DATABASE_URL", raising=False)
    calls: dict[str, Any] = {}
    monkeypatch.setattr("loopwise.data.cache.fetch_reviews", lambda settings, source_file: tmp_path / "r.csv")
    monkeypatch.setattr(
        "loopwise.data.service.prepare_reviews",
        lambda store, path: get_dataset(store, *parse_dataset_ref(import_small(store))),
    )

    def run_job(store: Store, name: str, **_: Any) -> None:
        """Two trials, then (unless ``no_final_fit``) the final fit of the first, which is the best."""
        trial_model, trial_evaluation = _register(store, evaluated=calls.get("no_final_fit", False))
        second, _ = _register(store, evaluated=False)
        best, evaluation_id = trial_model, trial_evaluation
        calls["attrs"] = {}
        if not calls.get("no_final_fit"):
            best, evaluation_id = _register(store, evaluated=calls.get("evaluated", True), final_fit=True)
            calls["attrs"] = {"final_fit": {"state": "complete", "trial": 0, "data": "train",
                              "model_ref": best.ref, "epochs": 3, "examples": 16611, "wall_s": 900.0,
                              "validation": {"val_acc": 0.81}, "test_accuracy": 0.75}}  # fmt: skip
        with store.uow() as uow:
            uow.tuning_jobs.update(
                name, status=JobStatus.COMPLETED, best_trial=0, best_model_version_id=best.id,
                test_evaluation_id=evaluation_id,
            )  # fmt: skip
        calls["trials"] = [
            optuna.trial.create_trial(
                value=v,
                params={},
                distributions={},
                user_attrs={"model_version_id": m.id, "model_ref": m.ref, "examples": 4000},
            )
            for v, m in ((0.8, trial_model), (0.7, second))
        ]
        for number, trial in enumerate(calls["trials"]):
            trial.number = number

    monkeypatch.setattr(tuning, "run_job", run_job)
    monkeypatch.setattr(
        tuning, "job_trials", lambda store, name: (tuning.get_job(store, name), calls["trials"])
    )
    monkeypatch.setattr(tuning, "job_attrs", lambda store, name: calls["attrs"])
    monkeypatch.setattr(
        "loopwise.tuning.report.write_tuning_report",
        lambda job, trials, out, attrs: type("Report", (), {"html": Path(out) / "report.html"}),
    )

    def record(step: str, result: Any) -> Callable[..., Any]:
        def stand_in(*args: Any, **kwargs: Any) -> Any:
            calls[step] = (args[1:], kwargs)
            return result

        return stand_in

    run = type("Run", (), {"id": 1, "status": "Succeeded", "error": None, "outputs": lambda self: {}})()
    monkeypatch.setattr(_course_lab2, "course_lab2", record("lab2", [Path("/plots/ab.png")]))
    monkeypatch.setattr(_course_monitor, "course_monitoring", record("monitor", Path("/monitoring.html")))
    labeling = _course_lab3.LabelingOutcome(
        "course-lab3-1", Path("/out.manifest"), "course-lab3-labels:1", 0.9
    )
    monkeypatch.setattr(_course_lab3, "course_labeling", record("labeling", labeling))
    reviewed = _course_review.ReviewOutcome("flow-1", ["loop-1"], Path("/examples.jsonl"))
    monkeypatch.setattr(_course_review, "course_review", record("review", reviewed))
    retrained = _course_retrain.RetrainOutcome(Path("/pipeline.yaml"), run)
    monkeypatch.setattr(_course_retrain, "course_retrain", record("retrain", retrained))
    return calls


def _demo(**options: Any) -> None:
    defaults = {"file": None, "budget": 96, "per_trial": 48, "max_trials": 3, "max_seq_length": 32}
    demo(**{**defaults, "name": "reviews-sentiment", "serve": False, "port": 8080, **options})


def test_the_demo_runs_its_steps_in_order_and_says_where_everything_is(
    stand_ins: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _demo()
    out = capsys.readouterr().out
    steps = [out.index(f"{n}. ") for n in range(1, 11)]
    assert steps == sorted(steps)
    assert (
        "tuning job reviews-sentiment-tuning-1: up to 3 trials, 96 training examples in all, at most 48"
        in out
    )
    assert "best trial 0 (reviews-sentiment:1): validation accuracy 0.8000 on 4,000 training examples" in out
    assert "final model: reviews-sentiment:3 (final fit of trial 0 on train: 3 epochs, 16,611 examples" in out
    assert "final model reviews-sentiment:3: test accuracy 0.7500 (95% CI 0.700-0.800" in out
    assert "reviews-sentiment:3 is reviews-sentiment@champion" in out
    # VariantA: the final model; VariantB: the best trial's model (the same configuration, less data)
    assert stand_ins["lab2"] == (("reviews-sentiment:3", "reviews-sentiment:1"), {})
    assert stand_ins["monitor"] == (("reviews-endpoint", "small:1", "reviews-sentiment:1"), {})
    assert stand_ins["labeling"] == (("small:1",), {})
    assert stand_ins["review"] == (("reviews-endpoint",), {})
    _, retrain = stand_ins["retrain"]
    assert retrain["tuning_job"] == "reviews-sentiment-tuning-1" and retrain["steps"] == 3
    assert (retrain["labeling_job"], retrain["flow"], retrain["model"]) == (
        "course-lab3-1",
        "flow-1",
        "reviews-sentiment",
    )
    for line in (
        "per-variant metrics: /plots/ab.png",
        "monitoring report: /monitoring.html",
        "labeling output manifest: /out.manifest (data set course-lab3-labels:1)",
        "human loops of flow flow-1: 1 completed; their answers as training data: /examples.jsonl",
        "pipeline run 1 (/pipeline.yaml): Succeeded; None",
    ):
        assert line in out
    assert out.index("evaluation.json: ") > out.index("tuning report: ")

    _demo()  # a second run takes the next job name
    assert "tuning job reviews-sentiment-tuning-2" in capsys.readouterr().out


def test_the_demo_stops_with_status_1_when_the_best_model_was_not_tested(
    stand_ins: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stand_ins["evaluated"] = False
    with pytest.raises(typer.Exit) as stopped:
        _demo()
    assert stopped.value.exit_code == 1
    assert "the best model was not evaluated on the test split" in capsys.readouterr().out
    assert "lab2" not in stand_ins


def test_without_a_final_fit_the_best_trials_model_is_champion_beside_the_runner_up(
    stand_ins: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stand_ins["no_final_fit"] = True
    _demo()
    out = capsys.readouterr().out
    assert "best model reviews-sentiment:1: test accuracy 0.7500" in out and "final model:" not in out
    assert "reviews-sentiment:1 is reviews-sentiment@champion" in out
    assert stand_ins["lab2"] == (("reviews-sentiment:1", "reviews-sentiment:2"), {})
