"""Retraining pipelines on SQLite and PostgreSQL: files refused before they run (by line), a run from new
labels to a promoted model, a failed step resumed without repeating what succeeded, a run abandoned
mid-step taken up again, and one run however many triggers fire at once."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_helpers import admin_token, bearer
from loopwise import registry
from loopwise.app import background_server
from loopwise.errors import PipelineError, PipelineSpecError
from loopwise.labeling import service as labeling
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.pipelines import operations, service, triggers
from loopwise.pipelines.spec import parse_pipeline
from loopwise.review import service as review
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train
from loopwise.workforce import service as workforce

PIPELINE = """\
name: retrain
steps:
  - name: gather
    uses: gather-labels
    with: {{dataset: small-retrain, base: "{base}", review_flows: [reviews], min_new: 3}}
  - name: train
    uses: train
    with: {{dataset: "${{gather.dataset}}", backend: tfidf, model_name: small-tfidf}}
  - name: compare
    uses: compare
    with: {{champion: small-tfidf@champion, candidate: "${{train.model}}", dataset: "{base}"}}
  - name: promote
    uses: promote
    with: {{model: "${{train.model}}", comparison: "${{compare.verdict}}"}}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: p\nsteps:\n  - name: a\n    uses: retrain-everything\n",
            r"line 3: unknown operation 'retrain-everything'",
        ),
        (
            "name: p\nsteps:\n  - name: a\n    uses: train\n    with: {backend: tfidf}\n",
            r"line 3: train needs the input\(s\) dataset",
        ),
        (
            "name: p\nsteps:\n  - name: a\n    uses: set-alias\n    with: {model: m, alias: x, color: red}\n",
            r"line 3: set-alias takes no input\(s\) color",
        ),
        (
            "name: p\nsteps:\n  - name: a\n    uses: train\n    with: {dataset: '${b.dataset}'}\n",
            r"line 3: \$\{b.dataset\} names no step",
        ),
        (
            "name: p\nsteps:\n  - name: a\n    uses: gather-labels\n    with: {dataset: d}\n"
            "  - name: b\n    uses: train\n    with: {dataset: '${a.model}'}\n",
            r"line 6: step a has no output 'model'",
        ),
        (
            "name: p\nsteps:\n  - name: a\n    uses: gather-labels\n    with: {dataset: d}\n    needs: [b]\n"
            "  - name: b\n    uses: train\n    with: {dataset: '${a.dataset}'}\n",
            r"line 3: a cycle: a -> b -> a",
        ),
        (
            "name: p\nsteps:\n  - name: a\n    uses: train\n    with: {dataset: d}\n    needs: [z]\n",
            r"line 3: no step 'z'",
        ),
        ("name: Bad Name\nsteps: []\n", r"steps: a non-empty list"),
        ("steps: [\n", r"not valid YAML"),
    ],
)
def test_a_bad_pipeline_file_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(PipelineSpecError, match=message):
        parse_pipeline(text)


def _setup(store: Store, import_small: Callable[[Store], str], tmp_path: Path, answers: int = 4) -> Path:
    """A champion, a review flow with ``answers`` completed loops, and the pipeline file."""
    base = import_small(store)
    train(store, TrainRequest(dataset=base, backend="tfidf", model_name="small-tfidf"), progress=False)
    with store.uow() as uow:
        registry.set_alias(uow, "small-tfidf:1", "champion")
    workforce.create_team(store, "reviewers")
    worker = workforce.create_worker(store, "r@example.com", teams=("reviewers",))[0]
    flow = review.create_flow(store, "reviews", team="reviewers", categories=list(COURSE_CATEGORIES))
    for i, (text, label) in enumerate(
        [
            ("great lovely item", "1"),
            ("awful broken item", "-1"),
            ("plain okay", "0"),
            ("perfect great", "1"),
        ][:answers]
    ):
        review.start_loop(store, f"loop-{i}", "reviews", {"taskObject": text})
        (task,) = labeling.next_tasks(store, worker, flow.job_id)[:1]
        labeling.submit(store, worker, task.assignment_id, label)
    review.settle(store)
    path = tmp_path / "retrain.yaml"
    path.write_text(PIPELINE.format(base=base), encoding="utf-8")
    return path


def test_a_run_goes_from_new_labels_to_a_promoted_model(
    store: Store, import_small: Callable[[Store], str], tmp_path: Path
) -> None:
    spec, new = service.create_pipeline(store, _setup(store, import_small, tmp_path))
    assert new and [s.name for s in spec.order()] == ["gather", "train", "compare", "promote"]
    said: list[str] = []
    run = service.run_pipeline(store, "retrain", progress=said.append)
    assert run.status == "Succeeded" and run.error is None, run
    outputs = run.outputs()
    assert outputs["gather"]["new_labels"] == 4 and outputs["gather"]["dataset"] == "small-retrain:1"
    assert outputs["train"]["model"] == "small-tfidf:2"
    assert outputs["compare"]["verdict"] in ("better", "tie") and Path(outputs["compare"]["report"]).exists()
    assert outputs["promote"] == {
        "model": "small-tfidf:2",
        "previous": "small-tfidf:1",
        "outcome": "promoted",
    }
    with store.uow() as uow:
        assert registry.resolve(uow, "small-tfidf@champion").ref == "small-tfidf:2"
        version = uow.datasets.get("small-retrain", 1)
    assert version.source["origin"]["review_flows"] == ["reviews"]
    assert any("review flow reviews: 4 completed loops" in line for line in said)
    assert "4 completed loops" in run.step("gather").log and all(s.attempts == 1 for s in run.steps)


def test_a_failed_step_stops_the_run_and_resuming_repeats_no_succeeded_step(
    store: Store, import_small: Callable[[Store], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.create_pipeline(store, _setup(store, import_small, tmp_path))
    calls = {"gather-labels": 0, "train": 0}
    for name in calls:
        real = operations.OPERATIONS[name]

        def counted(
            store: Store, inputs: dict[str, Any], log: Any, real: Any = real, name: str = name
        ) -> Any:
            calls[name] += 1
            if name == "train" and calls[name] == 1:
                raise PipelineError("the training machine went away")
            return real.run(store, inputs, log)

        monkeypatch.setitem(operations.OPERATIONS, name, replace(real, run=counted))
    failed = service.run_pipeline(store, "retrain")
    assert failed.status == "Failed" and failed.error == "step train failed: the training machine went away"
    assert [s.status for s in failed.steps] == ["Succeeded", "Failed", "Pending", "Pending"]
    with pytest.raises(PipelineError, match="succeeded: nothing to resume"):
        service.resume(store, service.run_pipeline(store, "retrain").id)  # a second run goes through
    resumed = service.resume(store, failed.id)
    assert resumed.status == "Succeeded" and calls == {"gather-labels": 2, "train": 3}
    assert resumed.step("gather").attempts == 1 and resumed.step("train").attempts == 2
    assert resumed.step("gather").outputs == failed.step("gather").outputs


def test_an_interrupted_or_killed_run_is_taken_up_again_from_its_step(
    store: Store, import_small: Callable[[Store], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.create_pipeline(store, _setup(store, import_small, tmp_path))
    real = operations.OPERATIONS["compare"]

    def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt  # Ctrl-C mid-step: not an error of the step, the process stops

    monkeypatch.setitem(operations.OPERATIONS, "compare", replace(real, run=interrupted))
    started = service.start_run(store, "retrain")
    with pytest.raises(KeyboardInterrupt):
        service.execute(store, started.id)
    stopped = service.get_run(store, started.id)
    assert stopped.status == "Failed" and stopped.error == "step compare failed: KeyboardInterrupt: "
    assert [s.status for s in stopped.steps] == ["Succeeded", "Succeeded", "Failed", "Pending"]
    monkeypatch.setitem(operations.OPERATIONS, "compare", real)
    resumed = service.resume(store, started.id)
    assert resumed.status == "Succeeded" and [s.attempts for s in resumed.steps] == [1, 1, 2, 1]

    # a process killed outright (SIGKILL) leaves its run Running: it blocks new runs, and only a forced
    # resume takes it up (without --force it may be running elsewhere right now)
    killed = service.start_run(store, "retrain")
    with pytest.raises(PipelineError, match="has a run in progress"):
        service.start_run(store, "retrain")
    with pytest.raises(PipelineError, match="resume it with --force"):
        service.resume(store, killed.id)
    assert service.resume(store, killed.id, force=True).status == "Succeeded"


def test_triggers_that_fire_at_once_start_one_run(
    store: Store, import_small: Callable[[Store], str], tmp_path: Path
) -> None:
    service.create_pipeline(store, _setup(store, import_small, tmp_path, answers=1))
    started: list[int] = []
    refused: list[str] = []

    def trigger(i: int) -> None:
        try:
            started.append(service.start_run(store, "retrain", trigger=f"alert {i}").id)
        except PipelineError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=trigger, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(started) == 1 and len(refused) == 5 and all("run in progress" in r for r in refused)
    # min_new 3 with one new label: the run fails at gather, saying why, and frees the pipeline
    run = service.execute(store, started[0])
    assert run.status == "Failed" and "1 new labels, fewer than min_new 3" in (run.error or "")
    assert service.start_run(store, "retrain").status == "Running"


def test_gather_labels_takes_feedback_on_captured_requests_once(two_models: Store, tmp_path: Path) -> None:
    """Ground truth posted as feedback becomes training rows (the captured request gives the text); an
    inference a review loop answered (its answer is feedback too) counts once; the trigger counts it."""
    store = two_models
    workforce.create_team(store, "reviewers")
    worker = workforce.create_worker(store, "r@example.com", teams=("reviewers",))[0]
    flow = review.create_flow(
        store, "audit", team="reviewers", categories=list(COURSE_CATEGORIES),
        conditions={"predicted_in": ["-1"]},
    )  # fmt: skip
    config = {
        "variants": [{"name": "Champion", "model": "small-tfidf:2"}],
        "capture": {"share": 1},
        "review": {"flow": "audit"},
    }
    create_endpoint(store, "reviews", parse_endpoint_config(config))
    texts = ["awful broken item", "great lovely item", "perfect great", "plain okay"]
    with (
        background_server(store) as (url, _),
        httpx.Client(base_url=url, headers=bearer(admin_token(store)), timeout=30) as client,
    ):
        answers = [
            client.post("/api/v1/endpoints/reviews/predict", json={"texts": [t]}).json() for t in texts
        ]
        assert "human_loop" in answers[0]["predictions"][0]  # the negative one goes to people
        client.post(
            "/api/v1/endpoints/reviews/feedback",
            json=[{"inference_id": a["inference_id"], "label": "1"} for a in answers[1:3]],
        ).raise_for_status()
        deadline = time.monotonic() + 30
        while not labeling.next_tasks(store, worker, flow.job_id):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    (task,) = labeling.next_tasks(store, worker, flow.job_id)
    labeling.submit(store, worker, task.assignment_id, "-1")
    review.settle(store)  # the loop's answer is recorded as feedback for its inference too
    with store.uow() as uow:
        base = uow.datasets.list()[0]
    spec = tmp_path / "gather.yaml"
    spec.write_text(
        "name: gather\ntriggers:\n  - new_labels: 4\nsteps:\n  - name: gather\n    uses: gather-labels\n"
        f"    with: {{dataset: fed, base: '{base.ref}', review_flows: [audit], feedback: [reviews]}}\n"
    )
    pipeline, _ = service.create_pipeline(store, spec)
    assert triggers.new_labels(store, pipeline, None) == 4  # 1 loop + its feedback + 2 posted
    run = service.run_pipeline(store, "gather")
    assert run.status == "Succeeded", run.error
    gathered = run.outputs()["gather"]
    assert gathered["new_labels"] == 3 and gathered["examples"] == base.split("train").rows + 3
    assert "endpoint reviews: 2 texts with ground truth (2 of 4 captured requests" in run.step("gather").log
    with store.uow() as uow:
        version = uow.datasets.get("fed", 1)
    assert version.source["origin"]["feedback"] == ["reviews"]


@pytest.mark.parametrize(
    ("significant", "difference", "require", "verdict", "error"),
    [
        (False, -0.02, "not-worse", "tie", None),  # lower, but not significantly: a tie, it may go on
        (True, -0.05, "not-worse", "worse", "is worse than"),
        (False, -0.02, "no-loss", "tie", "less accurate (not significantly) than"),
        (False, 0.01, "better", "tie", "not significantly better than"),
        (True, 0.04, "better", "better", None),
        (False, 0.0, "tie", None, "require: one of not-worse, better, no-loss"),
    ],
)
def test_compare_judges_by_the_paired_test_and_what_the_step_requires(
    monkeypatch: pytest.MonkeyPatch,
    significant: bool,
    difference: float,
    require: str,
    verdict: str | None,
    error: str | None,
) -> None:
    from loopwise.evaluation import service as evaluation
    from loopwise.evaluation.service import ComparisonOutcome

    def paired(*args: Any, alpha: float = 0.05, **placement: str) -> ComparisonOutcome:
        assert placement == {"device": "auto", "precision": "auto"}  # resolved where the step runs
        better = ("b" if difference > 0 else "a") if significant else None
        result = {
            "significant": significant, "better": better, "name_a": "a", "name_b": "b",
            "difference": difference, "p_value": 0.01 if significant else 0.4, "accuracy_a": 0.8,
            "accuracy_b": 0.8 + difference, "summary": "paired",
        }  # fmt: skip
        return ComparisonOutcome(result, Path("report.html"))

    monkeypatch.setattr(evaluation, "compare", paired)
    inputs = {"champion": "a", "candidate": "b", "dataset": "d:1", "require": require}
    if error is None:
        assert operations.compare(None, inputs, lambda _: None)["verdict"] == verdict  # type: ignore[arg-type]
    else:
        with pytest.raises(PipelineError, match=re.escape(error)):
            operations.compare(None, inputs, lambda _: None)  # type: ignore[arg-type]
