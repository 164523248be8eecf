"""Pipelines that start by themselves, on SQLite and PostgreSQL: a schedule, new labels in the sources the
pipeline reads, a monitoring alert that names its action; each counts from the last run's start."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loopwise.errors import PipelineSpecError
from loopwise.labeling import service as labeling
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.pipelines import service
from loopwise.pipelines.spec import parse_pipeline
from loopwise.pipelines.triggers import due, new_labels, run_due
from loopwise.review import service as review
from loopwise.storage import Store
from loopwise.workforce import service as workforce

PIPELINE = """\
name: retrain
triggers:
  - {trigger}
steps:
  - name: gather
    uses: gather-labels
    with: {{dataset: gathered, base: "{base}", review_flows: [reviews]}}
"""


@pytest.fixture
def base(store: Store, import_small: Callable[[Store], str]) -> str:
    """The small data set, the pipelines' base."""
    return import_small(store)


def _flow(store: Store) -> tuple[object, object]:
    workforce.create_team(store, "reviewers")
    worker = workforce.create_worker(store, "r@example.com", teams=("reviewers",))[0]
    return worker, review.create_flow(store, "reviews", team="reviewers", categories=list(COURSE_CATEGORIES))


def _answered(store: Store, worker: object, flow: object, names: list[str]) -> None:
    for name in names:
        review.start_loop(store, name, "reviews", {"taskObject": f"text of {name}"})
        (task,) = labeling.next_tasks(store, worker, flow.job_id)[:1]  # type: ignore[arg-type, attr-defined]
        labeling.submit(store, worker, task.assignment_id, ["1", "-1"][ord(name[0]) % 2])  # type: ignore[arg-type]
    review.settle(store)


def _create(store: Store, tmp_path: Path, trigger: str, base: str) -> object:
    path = tmp_path / "retrain.yaml"
    path.write_text(PIPELINE.format(trigger=trigger, base=base), encoding="utf-8")
    spec, _ = service.create_pipeline(store, path)
    return spec


def test_bad_triggers_are_refused_by_line() -> None:
    for trigger, message in {
        "{every: 30s}": "line 3: every 30s: at least 1m",
        "{every: soon}": "line 3: .*every",
        "{new_labels: 0}": "line 3: new_labels is a count of at least 1",
        "{alert: ''}": "line 3: alert names an alert action",
        "{webhook: x}": "line 3: unknown trigger 'webhook'",
    }.items():
        with pytest.raises(PipelineSpecError, match=message):
            parse_pipeline(PIPELINE.format(trigger=trigger, base="small:1"))


def test_new_labels_in_the_pipelines_sources_start_a_run_once_enough_arrived(
    store: Store, tmp_path: Path, base: str
) -> None:
    worker, flow = _flow(store)
    spec = _create(store, tmp_path, "{new_labels: 2}", base)
    _answered(store, worker, flow, ["a"])
    assert new_labels(store, spec, None) == 1 and due(store, spec) is None  # type: ignore[arg-type]
    assert run_due(store) == []
    _answered(store, worker, flow, ["b"])
    assert due(store, spec) == "2 new labels (trigger: 2)"  # type: ignore[arg-type]
    (started,) = run_due(store)
    run = service.get_run(store, started)
    assert run.status == "Succeeded" and run.trigger == "2 new labels (trigger: 2)"
    assert run.outputs()["gather"]["new_labels"] == 2
    # counted again from this run's start: one more label is not enough
    _answered(store, worker, flow, ["c"])
    assert due(store, spec) is None and run_due(store) == []  # type: ignore[arg-type]


def test_a_schedule_counts_from_the_pipelines_creation_then_from_its_last_run(
    store: Store, tmp_path: Path, base: str
) -> None:
    worker, flow = _flow(store)
    _answered(store, worker, flow, ["a", "b"])
    spec = _create(store, tmp_path, "{every: 1h}", base)
    now = datetime.now(UTC)
    assert due(store, spec, now) is None  # type: ignore[arg-type]
    assert due(store, spec, now + timedelta(hours=1, seconds=1)) == "schedule: every 3600 s"  # type: ignore[arg-type]
    (started,) = run_due(store, now=now + timedelta(hours=1, seconds=1))
    assert service.get_run(store, started).status == "Succeeded"
    assert due(store, spec, now + timedelta(minutes=30)) is None  # type: ignore[arg-type]


def test_an_alert_that_names_the_action_starts_a_run(store: Store, tmp_path: Path, base: str) -> None:
    worker, flow = _flow(store)
    _answered(store, worker, flow, ["a", "b"])
    spec = _create(store, tmp_path, "{alert: retrain}", base)
    alert = {
        "endpoint": "reviews", "variant": "VariantA", "check": "embedding_drift", "constraint": "p >= 0.01",
        "observed": 0.001, "threshold": 0.01, "message": "drift", "p_value": 0.001, "schedule_id": None,
        "report": None,
    }  # fmt: skip
    with store.uow() as uow:
        uow.monitoring.add_alerts([{**alert, "action": "page-someone"}])
    assert due(store, spec) is None  # type: ignore[arg-type]
    with store.uow() as uow:
        (recorded,) = uow.monitoring.add_alerts([{**alert, "action": "retrain"}])
    assert due(store, spec) == f"alert {recorded.id} (embedding_drift) asks for action retrain"  # type: ignore[arg-type]
    (started,) = run_due(store)
    assert service.get_run(store, started).status == "Succeeded"
    assert due(store, spec) is None  # type: ignore[arg-type]  # that alert started its run already


def test_in_the_server_a_long_run_does_not_hold_another_pipelines_trigger(
    store: Store, base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_due(background=True)``: each run in its own thread, so a run waiting on a step (an A/B test
    can wait hours) leaves the other pipelines to start and finish."""
    import threading
    import time
    from dataclasses import replace

    from loopwise.pipelines import operations

    release = threading.Event()
    real = operations.OPERATIONS["gather-labels"]

    def gather(store: Store, inputs: dict[str, object], log: Callable[[str], None]) -> dict[str, object]:
        if inputs["dataset"] == "slow":
            assert release.wait(60)
        return real.run(store, inputs, log)

    monkeypatch.setitem(operations.OPERATIONS, "gather-labels", replace(real, run=gather))
    for name in ("slow", "quick"):
        path = tmp_path / f"{name}.yaml"
        text = PIPELINE.format(trigger="every: 1h", base=base).replace("retrain", name)
        text = text.replace("dataset: gathered", f"dataset: {name}").replace(", review_flows: [reviews]", "")
        path.write_text(text, encoding="utf-8")
        service.create_pipeline(store, path)
    later = datetime.now(UTC) + timedelta(hours=2)
    started = run_due(store, now=later, background=True)
    assert len(started) == 2

    def status(name: str) -> str:
        return service.list_runs(store, name)[0].status

    deadline = time.monotonic() + 60
    while status("quick") == "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status("quick") == "Succeeded", service.list_runs(store, "quick")[0].error
    assert status("slow") == "Running"
    # due again, the quick one starts again; the slow one is still in progress and does not
    (again,) = run_due(store, now=later, background=True)
    assert service.get_run(store, again).pipeline == "quick"
    release.set()
    while status("slow") == "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status("slow") == "Succeeded"
    while status("quick") == "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
