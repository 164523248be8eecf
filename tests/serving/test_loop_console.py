"""The loop's console page in Chromium over a real server: the champion, the endpoint's traffic, each
variant's live figures and its review flow, an open alert, the queues for people, a pipeline run with its
steps, and the data set versions with where their labels came from. Screenshot under test-artifacts/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_helpers import ARTIFACTS, admin_token, bearer, ensure_admin, sign_in
from loopwise.app import background_server
from loopwise.labeling import service as labeling
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.pipelines import service as pipelines
from loopwise.review import service as review
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.workforce import service as workforce


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_the_loop_page_shows_the_loop_as_it_stands(two_models: Store, page: Any, tmp_path: Path) -> None:
    store = two_models
    ensure_admin(store)
    workforce.create_team(store, "reviewers")
    worker = workforce.create_worker(store, "r@example.com", teams=("reviewers",))[0]
    flow = review.create_flow(store, "course", team="reviewers", categories=list(COURSE_CATEGORIES))
    config = {
        "variants": [
            {"name": "VariantA", "model": "small-tfidf:1", "weight": 90},
            {"name": "VariantB", "model": "small-tfidf@champion", "weight": 10},
        ],
        "review": {"flow": "course"},
    }
    create_endpoint(store, "reviews", parse_endpoint_config(config))
    for i, label in enumerate(["1", "-1", "1", "-1"]):
        review.start_loop(store, f"done-{i}", "course", {"taskObject": f"reviewed text {i}"})
        (task,) = labeling.next_tasks(store, worker, flow.job_id)[:1]
        labeling.submit(store, worker, task.assignment_id, label)
    review.start_loop(store, "waiting", "course", {"taskObject": "not answered yet"})
    review.settle(store)
    with store.uow() as uow:
        base = uow.datasets.list()[0].ref
        uow.monitoring.add_alerts(
            [
                {
                    "endpoint": "reviews", "variant": "VariantB", "check": "embedding_drift",
                    "constraint": "p >= 0.01", "observed": 0.001, "threshold": 0.01, "p_value": 0.001,
                    "message": "the reviews drifted", "schedule_id": None, "report": None,
                    "action": "retrain",
                }
            ]
        )  # fmt: skip
    spec = tmp_path / "retrain.yaml"
    spec.write_text(
        "name: retrain\nsteps:\n  - name: gather\n    uses: gather-labels\n"
        f"    with: {{dataset: reviewed, base: '{base}', review_flows: [course]}}\n"
    )
    pipelines.create_pipeline(store, spec)
    run = pipelines.run_pipeline(store, "retrain", trigger="manual")
    assert run.status == "Succeeded"
    with background_server(store) as (url, _):
        with httpx.Client(base_url=url, headers=bearer(admin_token(store)), timeout=30) as client:
            for variant, times in (("VariantA", 5), ("VariantB", 3)):
                for _ in range(times):
                    client.post(
                        "/api/v1/endpoints/reviews/predict",
                        json={"texts": ["great lovely item"], "target_variant": variant},
                    ).raise_for_status()
        deadline = time.monotonic() + 30
        while review.list_loops(store, flow="course", status="InProgress", max_results=100)[0][8:9] == []:
            assert time.monotonic() < deadline, "the predictions' loops were not written"
            time.sleep(0.05)  # a loop reaches the database a few milliseconds after its prediction
        sign_in(page, url)
        page.goto(f"{url}/console/loop")
        live = page.text_content('#endpoints tr[data-endpoint="reviews"] td.live')
        assert "VariantA: 5 requests, 0 5XX, p99 " in live and "VariantB: 3 requests, 0 5XX" in live
        assert "small-tfidf:2" in page.text_content('#models tr[data-model="small-tfidf"] td.champion')
        traffic = page.text_content('#endpoints tr[data-endpoint="reviews"] td.split')
        assert "VariantA small-tfidf:1 90%" in traffic and "VariantB small-tfidf:2 10%" in traffic
        assert page.text_content("#alerts .count") == "1" and "the reviews drifted" in page.text_content(
            "#alerts"
        )
        # one loop left unanswered, and the eight predictions each started one (the flow has no condition)
        assert page.text_content('#queues tr[data-queue="review:course"] td.waiting') == "9"
        assert "gather: Succeeded" in page.text_content(f'#runs tr[data-run="{run.id}"] td.steps')
        origin = page.text_content('#datasets tr[data-dataset="reviewed:1"] td.origin')
        assert origin == f"pipeline: 4 labels from people; flows course; base {base}"
        page.screenshot(path=str(ARTIFACTS / "loop-console.png"), full_page=True)
        # the alerts page, under its Content-Security-Policy too (the page fixture fails on a violation)
        alerts = page.goto(f"{url}/console/alerts")
        assert "frame-ancestors 'none'" in alerts.headers["content-security-policy"]
        assert "the reviews drifted" in page.text_content("#alerts tr[data-alert] td:nth-child(8)")
