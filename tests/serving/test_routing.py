"""Choosing a variant: weighted draws, target variants and sticky keys (no processes involved)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from loopwise.errors import EndpointConfigError
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.router import EndpointRuntime, Routing, sticky_point


def _runtime(weights: dict[str, float], shadow: bool = False) -> EndpointRuntime:
    variants = [{"name": name, "model": "m:1", "weight": w} for name, w in weights.items()]
    if shadow:
        variants.append({"name": "Shadow", "model": "m:2", "role": "shadow"})
    config = parse_endpoint_config({"variants": variants})
    return EndpointRuntime("reviews", Routing.of(1, config), rng=random.Random(0))


def test_weighted_draws_follow_the_weights_and_skip_zero_weights() -> None:
    runtime = _runtime({"A": 1, "B": 0, "C": 3}, shadow=True)
    drawn = Counter(runtime.pick() for _ in range(8000))
    assert set(drawn) == {"A", "C"}  # never a zero-weight or shadow variant
    assert abs(drawn["A"] / 8000 - 0.25) < 4 * (0.25 * 0.75 / 8000) ** 0.5
    assert Routing.of(1, runtime.routing.config).choose(0.0) == "A"
    assert Routing.of(1, runtime.routing.config).choose(0.999999) == "C"


def test_a_target_variant_wins_and_an_unknown_one_is_refused() -> None:
    runtime = _runtime({"A": 1, "B": 0}, shadow=True)
    assert runtime.pick(target="B") == "B" and runtime.pick(target="Shadow") == "Shadow"
    with pytest.raises(EndpointConfigError, match=r"no variant 'Z': this endpoint has A, B, Shadow"):
        runtime.pick(target="Z")


def test_a_caller_key_stays_on_one_variant_and_keys_split_by_the_weights() -> None:
    runtime = _runtime({"A": 50, "B": 50})
    keys = [f"user-{i}" for i in range(2000)]
    first = {key: runtime.pick(key=key) for key in keys}
    assert all(runtime.pick(key=key) == first[key] for key in keys for _ in range(3))
    share = Counter(first.values())["A"] / len(keys)
    assert abs(share - 0.5) < 4 * (0.25 / len(keys)) ** 0.5
    # another endpoint splits the same keys independently
    other = EndpointRuntime("other", runtime.routing)
    agree = sum(other.pick(key=k) == first[k] for k in keys) / len(keys)
    assert abs(agree - 0.5) < 4 * (0.25 / len(keys)) ** 0.5
    assert 0.0 <= sticky_point("reviews", "user-1") < 1.0
    # moving weight from B to A only moves keys from B to A
    shifted = EndpointRuntime("reviews", _runtime({"A": 80, "B": 20}).routing)
    moved = {k for k in keys if shifted.pick(key=k) != first[k]}
    assert moved and all(first[k] == "B" for k in moved)
