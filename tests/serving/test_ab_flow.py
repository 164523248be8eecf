"""An A/B test end to end: traffic with capture, feedback over HTTP, the report, and promotion."""

from __future__ import annotations

import json

import pytest

from cli_helpers import run
from conftest import running_server
from loopwise.serving.ab_report import ab_report
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint, describe_endpoint
from loopwise.storage import Store

pytestmark = pytest.mark.sqlite_only

FEEDBACK = "/api/v1/endpoints/reviews/feedback"


def test_feedback_joins_captures_into_a_verdict_and_the_winner_is_promoted(two_models: Store) -> None:
    config = {
        "variants": [
            {"name": "VariantA", "model": "small-tfidf:1", "weight": 50},
            {"name": "VariantB", "model": "small-tfidf:2", "weight": 50},
        ],
        "capture": {"share": 1.0, "embeddings": False},
    }
    create_endpoint(two_models, "reviews", parse_endpoint_config(config))
    with running_server(two_models) as (client, app):
        # a seeded split: an unseeded one is flagged as a sample-ratio mismatch in one run in a thousand
        app.state.plane.runtimes["reviews"].rng.seed(7)
        answers = [
            client.post("/api/v1/endpoints/reviews/predict", json={"texts": [f"review {i}"]}).json()
            for i in range(300)
        ]
        # ground truth that makes VariantA right and VariantB wrong (the statistics are tested elsewhere;
        # here the plumbing: capture, feedback by inference id, the join, the verdict)
        labels = ["-1", "0", "1"]
        feedback = []
        for answer in answers:
            predicted = answer["predictions"][0]["label"]
            wrong = labels[(labels.index(predicted) + 1) % 3]
            truth = predicted if answer["variant"] == "VariantA" else wrong
            feedback.append({"inference_id": answer["inference_id"], "label": truth})
        posted = client.post(FEEDBACK, json=feedback)
        again = client.post(FEEDBACK, json=feedback[:5])  # posting again replaces, adds nothing
        bad = client.post(FEEDBACK, json=[{"inference_id": "x"}, {"label": "1"}])
        unknown = client.post("/api/v1/endpoints/nope/feedback", json=feedback[:1])
        app.state.plane.capture_writers["reviews"].flush()
    assert posted.status_code == 200 and posted.json() == {"recorded": 300, "new": 300, "rewarded": 0}
    assert again.json() == {"recorded": 5, "new": 0, "rewarded": 0}
    assert bad.status_code == 400 and "item 1: give label" in bad.json()["error"]["message"]
    assert "item 2.inference_id" in bad.json()["error"]["message"]
    assert unknown.status_code == 404

    report = ab_report(two_models, "reviews")
    served = {v: sum(a["variant"] == v for a in answers) for v in ("VariantA", "VariantB")}
    assert {v: f["requests"] for v, f in report["variants"].items()} == served
    assert (
        report["variants"]["VariantA"]["accuracy"] == 1.0
        and report["variants"]["VariantB"]["accuracy"] == 0.0
    )
    assert report["sample_ratio_mismatch"]["broken"] is False
    assert report["verdict"] == "winner" and report["winner"] == "VariantA"
    (comparison,) = report["comparisons"]
    assert comparison["difference"] == -1.0 and comparison["p_value"] < 0.05

    home, url = two_models.settings.home, two_models.settings.resolved_database_url
    shown = run(home, "ab", "report", "reviews", "--promote", "--json", check=False, database_url=url)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["promoted"] == 2
    endpoint, _ = describe_endpoint(two_models, "reviews")
    assert endpoint.config.traffic_shares() == {"VariantA": 1.0, "VariantB": 0.0}
    text = run(home, "ab", "report", "reviews", check=False, database_url=url)
    assert text.returncode == 0 and "verdict: winner: VariantA" in text.stdout


def test_no_feedback_means_keep_running(two_models: Store) -> None:
    config = {
        "variants": [{"name": "A", "model": "small-tfidf:1"}, {"name": "B", "model": "small-tfidf:2"}],
        "capture": {"share": 1.0},
    }
    create_endpoint(two_models, "reviews", parse_endpoint_config(config))
    report = ab_report(two_models, "reviews")
    assert report["verdict"] == "keep running" and report["winner"] is None
    assert report["captured_requests"] == 0
