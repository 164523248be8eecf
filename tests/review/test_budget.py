"""A flow's budget on SQLite and PostgreSQL: at most N open loops, the most uncertain kept (an unclaimed
open loop replaced by a more uncertain prediction, Stopped with its reason), at most M new loops an
hour, never more than N open under concurrent writers; and at most K loops from one invocation."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from loopwise.errors import HumanLoopConflictError, ReviewError
from loopwise.labeling import service as labeling
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.review import service
from loopwise.review.activation import activate
from loopwise.review.records import Flow
from loopwise.storage import Store
from loopwise.workforce import service as workforce

LABELS = ["1", "0", "-1"]


def _flow(store: Store, **budget: Any) -> Flow:
    workforce.create_team(store, "reviewers")
    return service.create_flow(
        store, "budgeted", team="reviewers", categories=list(COURSE_CATEGORIES),
        conditions={"confidence_below": 0.99}, **budget,
    )  # fmt: skip


def _prediction(flow: Flow, index: int, confidence: float) -> dict[str, Any]:
    """The loop record an endpoint's prediction of top probability ``confidence`` journals."""
    rest = (1.0 - confidence) / 2
    (started,) = activate(
        flow, "reviews", "VariantA", f"inference-{index}", [f"review {index}"], LABELS,
        np.array([[confidence, rest, rest]]), random.Random(0),
    )  # fmt: skip
    return started[1]


def _loops(store: Store, flow: Flow) -> list[Any]:
    return list(service.all_loops(store, flow))


def test_a_full_flow_keeps_the_most_uncertain_predictions_and_says_why_it_stopped_the_others(
    store: Store,
) -> None:
    flow = _flow(store, max_open_loops=5)
    confidences = [round(0.5 + 0.009 * i, 3) for i in range(50)]  # 0.500 .. 0.941, all fire
    order = list(range(50))
    random.Random(7).shuffle(order)
    for start in range(0, 50, 4):  # batches of a few, as the journal writer sends them
        batch = [_prediction(flow, i, confidences[i]) for i in order[start : start + 4]]
        service.start_predicted(store, flow, batch)
    loops = {loop.name: loop for loop in _loops(store, flow)}
    assert len(loops) == 50  # every name that went back with a prediction can be described
    open_ = sorted(loop.confidence for loop in loops.values() if loop.status == "InProgress")
    assert open_ == sorted(confidences)[:5]
    stopped = [loop for loop in loops.values() if loop.status != "InProgress"]
    assert {loop.status for loop in stopped} == {"Stopped"} and len(stopped) == 45
    codes = {loop.to_dict()["FailureCode"] for loop in stopped}
    assert codes == {"Replaced", "BudgetFull"}
    replaced = next(loop for loop in stopped if loop.failure_reason.startswith("Replaced"))  # type: ignore[union-attr]
    described = service.describe_loop(store, replaced.name).to_dict()
    assert "has its 5 open loops" in described["FailureReason"] and described["Confidence"] > 0
    # the reviewers' queue holds exactly the open loops
    with store.uow() as uow:
        assert uow.review.count(flow.id) == {"InProgress": 5, "Stopped": 45}
    workforce.create_worker(store, "r@example.com", teams=("reviewers",))
    with store.uow() as uow:
        reviewer = uow.workforce.find("r@example.com")
    tasks = labeling.next_tasks(store, reviewer, flow.job_id)  # type: ignore[arg-type]
    held = {t.source for t in tasks}
    assert held <= {loop.input["taskObject"] for loop in loops.values() if loop.status == "InProgress"}
    # a loop a reviewer claimed is never replaced, however uncertain the newcomer
    claimed = {loop.input["taskObject"]: loop for loop in loops.values()}[tasks[0].source]
    for task in tasks[1:]:
        labeling.skip(store, reviewer, task.assignment_id)  # type: ignore[arg-type]
    service.start_predicted(store, flow, [_prediction(flow, 100 + i, 0.34 + 0.001 * i) for i in range(5)])
    assert service.describe_loop(store, claimed.name).status == "InProgress"
    with store.uow() as uow:
        assert uow.review.count(flow.id)["InProgress"] == 5
    # a replayed journal doubles nothing, and does not reopen a loop the budget stopped
    service.start_predicted(store, flow, [_prediction(flow, i, confidences[i]) for i in range(50)])
    with store.uow() as uow:
        assert uow.review.count(flow.id) == {"InProgress": 5, "Stopped": 50}


def test_the_hourly_cap_refuses_new_loops_and_replacements_beyond_it(store: Store) -> None:
    flow = _flow(store, max_open_loops=2, max_loops_per_hour=3)
    service.start_predicted(store, flow, [_prediction(flow, i, 0.9) for i in range(2)])
    # one replacement (a new loop in the queue) fits in the hour, the next does not
    service.start_predicted(store, flow, [_prediction(flow, 10, 0.5)])
    service.start_predicted(store, flow, [_prediction(flow, 11, 0.4)])
    loops = {loop.name: loop for loop in _loops(store, flow)}
    reasons = sorted((loop.failure_reason or "")[:12] for loop in loops.values() if loop.status == "Stopped")
    assert reasons == ["HourlyLimit:", "Replaced: fl"]
    assert sorted(loop.confidence for loop in loops.values() if loop.status == "InProgress") == [0.5, 0.9]
    # a loop asked for by name is refused when the flow cannot take it, and nothing is stored
    content = {"taskObject": "It is okay", "initialValue": "0"}
    with pytest.raises(HumanLoopConflictError, match="HourlyLimit"):
        service.start_loop(store, "by-name", flow.name, content)
    with store.uow() as uow:
        assert uow.review.loop("by-name") is None


def test_concurrent_writers_never_open_more_than_the_budget(store: Store) -> None:
    flow = _flow(store, max_open_loops=5)
    most = {"open": 0}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with store.uow() as uow:
                most["open"] = max(most["open"], uow.review.count(flow.id).get("InProgress", 0))

    def write(worker: int) -> None:
        rng = random.Random(worker)
        for i in range(12):
            service.start_predicted(
                store, flow, [_prediction(flow, worker * 100 + i, rng.uniform(0.34, 0.98))]
            )

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(write, range(6)))
    finally:
        done.set()
        watcher.join()
    loops = _loops(store, flow)
    assert len(loops) == 72 and most["open"] <= 5
    open_ = sorted(loop.confidence for loop in loops if loop.status == "InProgress")
    assert len(open_) == 5  # full, with the most uncertain (each writer's batch saw the others' commits)
    assert open_ == sorted(loop.confidence for loop in loops)[:5]  # type: ignore[type-var]


def test_one_invocation_starts_at_most_its_bound_of_loops_the_most_uncertain(store: Store) -> None:
    flow = _flow(store, max_loops_per_invocation=3)
    confidences = [0.9, 0.5, 0.8, 0.4, 0.95, 0.45, 0.7]
    rest = [(1 - c) / 2 for c in confidences]
    proba = np.array([[c, r, r] for c, r in zip(confidences, rest, strict=True)])
    texts = [f"text {i}" for i in range(len(confidences))]
    started = activate(flow, "e", "V", "many", texts, LABELS, proba, random.Random(0))
    assert [position for position, _ in started] == [1, 3, 5]  # in text order
    assert [record["confidence"] for _, record in started] == [0.5, 0.4, 0.45]
    unbounded = service.create_flow(store, "default", team="reviewers", categories=list(COURSE_CATEGORIES))
    assert unbounded.max_loops_per_invocation == 100
    many = np.tile([0.5, 0.25, 0.25], (250, 1))
    assert len(activate(unbounded, "e", "V", "x", ["t"] * 250, LABELS, many, random.Random(0))) == 100


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_open_loops", 0), ("max_loops_per_hour", -1), ("max_loops_per_invocation", 0),
     ("max_loops_per_invocation", 10_001)],
)  # fmt: skip
def test_budget_settings_out_of_bounds_are_refused_naming_the_field(
    store: Store, field: str, value: int
) -> None:
    workforce.create_team(store, "reviewers")
    with pytest.raises(ReviewError, match=f"{field}: a whole number from"):
        service.create_flow(
            store, "bad", team="reviewers", categories=list(COURSE_CATEGORIES), **{field: value}
        )
    assert service.list_flows(store) == []


def test_an_unbounded_flow_starts_every_loop(store: Store) -> None:
    flow = _flow(store)
    made = service.start_predicted(store, flow, [_prediction(flow, i, 0.5) for i in range(20)])
    assert len(made) == 20
    with store.uow() as uow:
        assert uow.review.count(flow.id) == {"InProgress": 20}
