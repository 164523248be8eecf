"""Live activation on a real server: an endpoint attached to a flow starts a human loop for each
uncertain prediction (once per inference, even when the request is retried), a reviewer answers it in
the labeling queue with the prediction preselected, and the answer comes back as ground truth."""

from __future__ import annotations

import time

import httpx

from auth_helpers import bearer
from loopwise.labeling.jobs import COURSE_CATEGORIES, COURSE_TITLE
from loopwise.review import service as review
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.workforce import service as workforce
from serving.conftest import running_server

#: the course's Lab 3 reviews
REVIEWS = ["I enjoy this product", "I am unhappy with this product", "It is okay", "sometimes it works"]


def _wait_for(client: httpx.Client, name: str) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = client.get(f"/api/v1/review/loops/{name}")
        if answer.status_code == 200:
            return dict(answer.json())
        time.sleep(0.02)
    raise AssertionError(f"loop {name} was not written within 10 s")


def test_uncertain_predictions_start_loops_whose_answers_become_ground_truth(two_models: Store) -> None:
    store = two_models
    workforce.create_team(store, "reviewers")
    workforce.create_worker(store, "reviewer@example.com", role="reviewer", teams=("reviewers",))
    reviewer = workforce.create_token(store, "reviewer@example.com", "ui")
    review.create_flow(
        store,
        "course-sentiment",
        team="reviewers",
        categories=list(COURSE_CATEGORIES),
        title=COURSE_TITLE,
        answer_key="sentiment",
        conditions={"confidence_below": 0.9},
    )
    config = {
        "variants": [{"name": "VariantA", "model": "small-tfidf@champion"}],
        "review": {"flow": "course-sentiment"},
    }
    create_endpoint(store, "reviews", parse_endpoint_config(config))
    with running_server(store) as (client, _):
        started: dict[str, tuple[str, str, str]] = {}
        for i, text in enumerate([*REVIEWS, "great lovely perfect great lovely perfect"]):
            answer = client.post(
                "/endpoints/reviews/invocations",
                json={"features": [text]},
                headers={"X-Amzn-SageMaker-Inference-Id": f"inference-{i}"},
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            # a loop starts exactly for the predictions under the course's 0.90
            assert ("human_loop_name" in body) == (body["probability"] < 0.9), body
            if "human_loop_name" in body:
                assert answer.headers["x-loopwise-human-loops"] == body["human_loop_name"]
                started[body["human_loop_name"]] = (f"inference-{i}", str(body["predicted_label"]), text)
        assert started, "the small model is unsure of the course's reviews: loops must start"
        # a retried request (the same inference id) starts no second loop
        again = client.post(
            "/endpoints/reviews/invocations",
            json={"features": [REVIEWS[2]]},
            headers={"X-Amzn-SageMaker-Inference-Id": "inference-2"},
        ).json()
        assert again.get("human_loop_name") in (None, *started)
        for name, (inference_id, _, _) in started.items():
            described = _wait_for(client, name)
            assert described["HumanLoopStatus"] == "InProgress" and described["InferenceId"] == inference_id
            results = described["HumanLoopActivationResults"]["conditions"]  # type: ignore[index]
            assert results[0]["condition"] == "confidence_below" and results[0]["fired"] is True
        listed = client.get("/api/v1/review/loops", params={"FlowDefinitionName": "course-sentiment"}).json()
        assert sorted(s["HumanLoopName"] for s in listed["HumanLoopSummaries"]) == sorted(started)
        # the reviewer works the loops in the labeling queue, the model's prediction preselected
        with httpx.Client(base_url=str(client.base_url), headers=bearer(reviewer), timeout=30) as person:
            (job,) = person.get("/api/v1/labeling/jobs").json()
            assert job["title"] == COURSE_TITLE
            predicted = {text: label for _, label, text in started.values()}
            answered = []
            while tasks := person.post(f"/api/v1/labeling/jobs/{job['id']}/next", json={}).json()["tasks"]:
                task = tasks[0]
                assert task["initial"] == predicted[task["source"]]
                submitted = person.post(
                    f"/api/v1/labeling/assignments/{task['assignment_id']}/submit", json={"label": "-1"}
                )
                assert submitted.status_code == 200
                answered.append(task["source"])
            assert sorted(answered) == sorted(predicted)
            assert person.get("/api/v1/review/loops").status_code == 200  # reviewers observe loops
            assert person.delete(f"/api/v1/review/loops/{next(iter(started))}").status_code == 403
        for name in started:
            described = client.get(f"/api/v1/review/loops/{name}").json()
            assert described["HumanLoopStatus"] == "Completed", described
            output = client.get(f"/api/v1/review/loops/{name}/output").json()
            assert output["humanAnswers"][0]["answerContent"] == {"sentiment": {"label": "-1"}}
            assert output["humanLoopActivationResults"]["texts"] == 1
        with store.uow() as uow:
            truth = {f.inference_id: f.labels for f in uow.feedback.for_endpoint("reviews")}
        assert truth == {inference_id: ("-1",) for inference_id, _, _ in started.values()}
        with store.uow() as uow:
            assert uow.review.count() == {"Completed": len(started)}
