"""Target tracking on InvocationsPerInstance: the rule, the cooldowns, and both directions on a server."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pytest

from conftest import running_server
from loopwise.errors import EndpointConfigError
from loopwise.serving import metrics as metrics_module
from loopwise.serving.autoscaler import Autoscaler
from loopwise.serving.config import Autoscaling, parse_endpoint_config
from loopwise.serving.metrics import Metrics
from loopwise.serving.router import EndpointRuntime, Routing
from loopwise.serving.service import create_endpoint, describe_endpoint, set_autoscaling
from loopwise.storage import Store

pytestmark = pytest.mark.sqlite_only

COURSE_POLICY = Autoscaling(target=2.0, min_instances=1, max_instances=2)


def test_target_tracking_sets_the_count_that_meets_the_target_within_bounds() -> None:
    wide = Autoscaling(target=2.0, min_instances=1, max_instances=10)
    assert wide.desired(instances=1, per_instance=5.0) == 3  # ceil(1 * 5 / 2)
    assert wide.desired(instances=3, per_instance=2.0) == 3  # on target: stay
    assert wide.desired(instances=4, per_instance=0.5) == 1
    assert wide.desired(instances=2, per_instance=0.0) == 1  # idle: the minimum
    assert COURSE_POLICY.desired(instances=1, per_instance=50.0) == 2  # the maximum
    assert (COURSE_POLICY.scale_out_cooldown_s, COURSE_POLICY.scale_in_cooldown_s) == (60.0, 300.0)
    with pytest.raises(ValueError, match="max_instances"):
        Autoscaling(target=2.0, min_instances=3, max_instances=2)


@dataclass
class _Pool:
    target: int

    def scale(self, instances: int) -> None:
        self.target = instances


def test_cooldowns_hold_scale_outs_apart_and_scale_ins_after_any_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1_000_000.0]
    monkeypatch.setattr(metrics_module.time, "time", lambda: clock[0])
    policy = Autoscaling(
        target=2.0, min_instances=1, max_instances=4, scale_out_cooldown_s=60, scale_in_cooldown_s=300
    )
    config = parse_endpoint_config(
        {"variants": [{"name": "A", "model": "m:1", "autoscaling": policy.model_dump()}]}
    )
    pool = _Pool(1)
    runtime = EndpointRuntime("reviews", Routing.of(1, config), {"A": pool}, rng=random.Random(0))  # type: ignore[dict-item]
    metrics = Metrics()
    scaler = Autoscaler(metrics)

    def traffic(requests: int) -> None:
        for _ in range(requests):
            metrics.answered("reviews", "A", 1.0, 0.1)

    traffic(6)  # 6 per instance in the last minute against a target of 2
    assert [(e.instances_before, e.instances_after) for e in scaler.tick(runtime, now=clock[0])] == [(1, 3)]
    clock[0] += 30
    traffic(30)
    assert scaler.tick(runtime, now=clock[0]) == [] and pool.target == 3  # scale-out cooldown (60 s)
    clock[0] += 31
    assert scaler.tick(runtime, now=clock[0])[0].instances_after == 4
    clock[0] += 200  # quiet now, but the last change was 200 s ago (scale-in cooldown 300 s)
    assert scaler.tick(runtime, now=clock[0]) == [] and pool.target == 4
    clock[0] += 101
    assert scaler.tick(runtime, now=clock[0])[0].instances_after == 1


def test_a_server_scales_a_variant_out_under_load_and_back_in_when_quiet(two_models: Store) -> None:
    config = {"variants": [{"name": "VariantA", "model": "small-tfidf:1"}]}
    create_endpoint(two_models, "reviews", parse_endpoint_config(config))
    quick = Autoscaling(
        target=2.0,
        min_instances=1,
        max_instances=2,
        scale_out_cooldown_s=1,
        scale_in_cooldown_s=3,
        period_s=2,
    )
    endpoint = set_autoscaling(two_models, "reviews", "VariantA", quick)
    assert endpoint.current.version == 2 and "autoscaling VariantA" in endpoint.current.note
    with pytest.raises(EndpointConfigError, match="no variant 'Nope'"):
        set_autoscaling(two_models, "reviews", "Nope", quick)
    with running_server(two_models) as (client, app):
        pool = app.state.plane.runtimes["reviews"].pools["VariantA"]
        assert pool.target == 1
        deadline = time.monotonic() + 60
        while len(pool.live) < 2:  # load: about 20 requests a second against a target of 1 a second
            assert client.post("/endpoints/reviews/invocations", json={"features": ["ok"]}).status_code == 200
            assert time.monotonic() < deadline, "no scale-out under load"
            time.sleep(0.05)
        while pool.target > 1:  # quiet
            assert time.monotonic() < deadline, "no scale-in when quiet"
            time.sleep(0.2)
        scaling = client.get("/api/v1/endpoints/reviews/scaling").json()
    moves = [(e["instances_before"], e["instances_after"]) for e in scaling["events"]]
    assert moves == [(1, 2), (2, 1)]
    assert scaling["events"][1]["at"] - scaling["events"][0]["at"] >= 3  # the scale-in cooldown
    assert describe_endpoint(two_models, "reviews")[0].config.variant("VariantA").autoscaling == quick
