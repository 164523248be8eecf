"""Target tracking on InvocationsPerInstance: the rule, the decision over several servers' load with its
cooldowns, and both directions on a server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from conftest import running_server
from loopwise.errors import EndpointConfigError
from loopwise.serving.autoscaler import count_of, decide
from loopwise.serving.config import Autoscaling, parse_endpoint_config
from loopwise.serving.records import VariantLoad, VariantScale
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


def test_the_decision_counts_every_servers_load_and_waits_out_the_cooldowns() -> None:
    policy = Autoscaling(
        target=2.0, min_instances=1, max_instances=4, scale_out_cooldown_s=60, scale_in_cooldown_s=300
    )
    config = parse_endpoint_config(
        {"variants": [{"name": "A", "model": "m:1", "autoscaling": policy.model_dump()}]}
    )
    variant = config.variant("A")
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)

    def load(*invocations: int) -> list[VariantLoad]:  # one report a server
        return [VariantLoad("reviews", "A", n, 60.0, 1, replica=f"s{i}") for i, n in enumerate(invocations)]

    def scale(instances: int, changed_s: float, scaled_out_s: float | None) -> VariantScale:
        return VariantScale(
            "reviews", "A", instances, at(changed_s), None if scaled_out_s is None else at(scaled_out_s)
        )

    # 6 invocations on one server at 1 instance: 6 per instance against a target of 2 -> 3 a server
    first = decide("reviews", variant, load(6), None, at(0))
    assert first is not None and (first.instances_before, first.instances_after, first.metric) == (1, 3, 6.0)
    # two servers, 12 and 0 invocations: 6 per instance over their 2 instances -> 3 a server, where
    # the busy server alone would have asked for 4 (its 12 against a target of 2 on 1 instance: 6)
    both = decide("reviews", variant, load(12, 0), None, at(0))
    assert both is not None and (both.instances_after, both.invocations, both.replicas) == (3, 12, 2)
    assert both.metric == 6.0
    busy = decide("reviews", variant, load(30, 30), scale(3, 0, 0), at(30))
    assert busy is None  # 5 per instance wants 4, but the scale-out cooldown (60 s) runs
    later = decide("reviews", variant, load(30, 30), scale(3, 0, 0), at(61))
    assert later is not None and later.instances_after == 4
    assert decide("reviews", variant, load(0, 0), scale(4, 61, 61), at(261)) is None  # scale-in: 300 s
    quiet = decide("reviews", variant, load(0, 0), scale(4, 61, 61), at(362))
    assert quiet is not None and quiet.instances_after == 1
    assert decide("reviews", variant, [], scale(4, 0, 0), at(999)) is None  # no server reports: no view
    # the count in force is kept within the policy's bounds; a variant without a policy keeps its own
    assert count_of(variant, scale(9, 0, 0)) == 4 and count_of(variant, None) == 1
    plain = parse_endpoint_config({"variants": [{"name": "B", "model": "m:1", "instances": 3}]})
    assert count_of(plain.variant("B"), scale(1, 0, 0)) == 3


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
