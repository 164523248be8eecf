"""Multi-armed bandit routing: Thompson sampling on rewards from feedback, kept across restarts (the
sampling itself: ``tests/experiments/test_bandit_math.py``)."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import running_server
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store

pytestmark = pytest.mark.sqlite_only


def test_feedback_moves_a_bandit_endpoints_traffic_to_the_better_variant_and_survives_a_restart(
    two_models: Store,
) -> None:
    config = {
        "variants": [{"name": "A", "model": "small-tfidf:1"}, {"name": "B", "model": "small-tfidf:2"}],
        "routing": "bandit",
    }
    create_endpoint(two_models, "reviews", parse_endpoint_config(config))
    url = "/api/v1/endpoints/reviews/predict"
    with running_server(two_models) as (client, _):
        for _ in range(12):  # rounds of traffic and feedback: B's answers are right, A's wrong
            answers = [client.post(url, json={"texts": ["a review"]}).json() for _ in range(10)]
            feedback = [
                {"inference_id": a["inference_id"], "reward": 1.0 if a["variant"] == "B" else 0.0}
                for a in answers
            ]
            assert client.post("/api/v1/endpoints/reviews/feedback", json=feedback).json()["rewarded"] == 10
        again = client.post("/api/v1/endpoints/reviews/feedback", json=feedback)  # each answer counts once
        late = Counter(client.post(url, json={"texts": ["x"]}).json()["variant"] for _ in range(100))
        arms = client.get("/api/v1/endpoints/reviews/bandit").json()["arms"]
    assert again.json()["rewarded"] == 0
    assert late["B"] >= 90
    assert arms["B"]["pulls"] + arms["A"]["pulls"] == 120 and arms["B"]["posterior_mean"] > 0.9
    with running_server(two_models) as (client, _):  # a new server goes on from the stored evidence
        restarted = client.get("/api/v1/endpoints/reviews/bandit").json()["arms"]
        after = Counter(client.post(url, json={"texts": ["x"]}).json()["variant"] for _ in range(50))
    assert restarted == arms and after["B"] >= 45
