"""Guarded rollouts: step weights, plans, alarms, and on a server a failing variant rolled back."""

from __future__ import annotations

import time

import pytest

from conftest import running_server
from loopwise.errors import EndpointError
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.records import RolloutStatus
from loopwise.serving.rollout import RolloutPlan, alarm, step_weights
from loopwise.serving.service import create_endpoint, describe_endpoint, start_rollout
from loopwise.storage import Store

pytestmark = pytest.mark.sqlite_only

URL = "/endpoints/reviews/invocations"


def test_steps_give_the_variant_its_share_and_the_others_the_rest_in_proportion() -> None:
    baseline = {"A": 75.0, "B": 25.0, "New": 0.0}
    assert step_weights(baseline, "New", 0.1) == pytest.approx({"New": 10.0, "A": 67.5, "B": 22.5})
    assert step_weights(baseline, "New", 1.0) == pytest.approx({"New": 100.0, "A": 0.0, "B": 0.0})
    assert step_weights({"A": 0.0, "New": 0.0}, "New", 0.5) == {"New": 50.0, "A": 50.0}
    assert RolloutPlan.canary(10, 60).shares == (0.1, 1.0)
    assert RolloutPlan.linear(4, 60).shares == (0.25, 0.5, 0.75, 1.0)
    for shares in ((0.5,), (0.6, 0.3, 1.0), (0.0, 1.0)):
        with pytest.raises(ValueError, match=r"shares|last step"):
            RolloutPlan(shares=shares, bake_s=10)


def test_alarms_judge_the_error_rate_and_the_p99_once_there_are_enough_requests() -> None:
    plan = RolloutPlan.canary(10, 60, max_error_rate=0.05, max_p99_ms=50, min_requests=10)

    def row(answered: int, errors: int, p99: float | None = 5.0) -> dict[str, object]:
        return {
            "Invocations": answered,
            "Invocation5XXErrors": errors,
            "ModelLatencyP99": p99,
            "OverheadLatencyP99": 1.0,
        }

    assert alarm([row(3, 3)], plan) is None  # too few to judge
    assert "5XX error rate 20.0% over 10 requests" in (alarm([row(8, 2)], plan) or "")
    assert alarm([row(99, 1)], plan) is None
    assert "p99 latency 81.0 ms" in (alarm([row(50, 0, 80.0)], plan) or "")


def _endpoint(store: Store, new_model: str) -> None:
    config = {
        "variants": [
            {"name": "Steady", "model": "small-tfidf:1", "weight": 1},
            {"name": "New", "model": new_model, "weight": 0},
        ]
    }
    create_endpoint(store, "reviews", parse_endpoint_config(config))


def _send_until(client, done, headers=None, deadline_s: float = 60.0) -> list[int]:  # type: ignore[no-untyped-def]
    statuses = []
    deadline = time.monotonic() + deadline_s
    while not done():
        statuses.append(client.post(URL, json={"features": ["boom, it broke"]}, headers=headers).status_code)
        assert time.monotonic() < deadline, "the rollout did not move in time"
        time.sleep(0.02)
    return statuses


def test_a_failing_variant_is_rolled_back_automatically(flaky_model: Store) -> None:
    _endpoint(flaky_model, "flaky:1")
    plan = RolloutPlan.canary(50, bake_s=60, max_error_rate=0.1, min_requests=5)
    rollout = start_rollout(flaky_model, "reviews", "New", plan)
    assert describe_endpoint(flaky_model, "reviews")[0].config.traffic_shares() == {"Steady": 0.5, "New": 0.5}
    with pytest.raises(EndpointError, match="a rollout is running"):
        start_rollout(flaky_model, "reviews", "New", plan)

    def rolled_back() -> bool:
        with flaky_model.uow() as uow:
            return uow.rollouts.latest("reviews").status is RolloutStatus.ROLLED_BACK

    with running_server(flaky_model) as (client, _):
        statuses = _send_until(client, rolled_back)
        time.sleep(1.0)  # the old weights are back in force within a second
        after = [client.post(URL, json={"features": ["boom"]}).status_code for _ in range(20)]
    assert 500 in statuses  # the canary did fail
    assert after == [200] * 20  # all traffic back on Steady
    with flaky_model.uow() as uow:
        ended = uow.rollouts.latest("reviews")
    assert ended.id == rollout.id and ended.step == 0 and "5XX error rate" in (ended.reason or "")
    endpoint, history = describe_endpoint(flaky_model, "reviews")
    assert endpoint.config.traffic_shares() == {"Steady": 1.0, "New": 0.0}
    assert history[-1].note == f"rollout {rollout.id}: rolled back"


def test_a_healthy_variant_is_rolled_out_step_by_step(two_models: Store) -> None:
    _endpoint(two_models, "small-tfidf:2")
    start_rollout(two_models, "reviews", "New", RolloutPlan.linear(2, bake_s=1, min_requests=1))

    def completed() -> bool:
        with two_models.uow() as uow:
            return uow.rollouts.latest("reviews").status is RolloutStatus.COMPLETED

    with running_server(two_models) as (client, _):
        statuses = _send_until(client, completed)
    assert set(statuses) == {200}
    endpoint, history = describe_endpoint(two_models, "reviews")
    assert endpoint.config.traffic_shares() == {"Steady": 0.0, "New": 1.0}
    assert [h.note.split(": ")[-1] for h in history[1:]] == ["New 50%", "New 100%"]
