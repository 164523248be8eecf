"""The main job's review step on its own, over a small model: its flow keeps a budget one reviewer can keep
up with, and its program reads the loops of its team's flow (flows and loops are scoped by team)."""

from __future__ import annotations

from loopwise.cli._course_review import MAX_LOOPS_PER_HOUR, MAX_OPEN_LOOPS, course_review
from loopwise.review import service
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store


def test_the_course_review_step_sets_a_budget_and_reads_its_loops_as_its_team(two_models: Store) -> None:
    store = two_models
    config = {"variants": [{"name": "VariantA", "model": "small-tfidf@champion"}]}
    create_endpoint(store, "reviews", parse_endpoint_config(config))
    outcome = course_review(store, "reviews")
    flow = service.find_flow(store, outcome.flow)
    assert (
        (flow.max_open_loops, flow.max_loops_per_hour) == (MAX_OPEN_LOOPS, MAX_LOOPS_PER_HOUR) == (200, 500)
    )
    assert outcome.loops  # the small model is unsure of the course's reviews
    assert all(service.describe_loop(store, name).status == "Completed" for name in outcome.loops)
    assert len(outcome.examples.read_text(encoding="utf-8").splitlines()) == len(outcome.loops)
