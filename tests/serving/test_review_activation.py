"""Live activation on a real server: an endpoint attached to a flow starts a human loop for each
uncertain prediction (once per inference, even when the request is retried), a reviewer answers it in
the labeling queue with the prediction preselected, and the answer comes back as ground truth."""

from __future__ import annotations

import time

import httpx
import pytest

from auth_helpers import bearer
from loopwise.labeling.jobs import COURSE_CATEGORIES, COURSE_TITLE
from loopwise.review import service as review
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.workforce import service as workforce
from serving.conftest import running_server

pytestmark = pytest.mark.sqlite_only

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
            assert (
                output["humanAnswers"][0]["workerMetadata"]["identityData"]["email"] == "reviewer@example.com"
            )
            assert output["humanLoopActivationResults"]["texts"] == 1
            # a program (in the flow's team) gets the answers, not who gave them
            program = bearer(workforce.program_token(store, "reads-loops"))
            workforce.add_to_team(store, "reviewers", "programs@loopwise.local")
            seen = client.get(f"/api/v1/review/loops/{name}/output", headers=program).json()
            assert "workerMetadata" not in seen["humanAnswers"][0] and seen["humanAnswers"][0]["workerId"]
        with store.uow() as uow:
            truth = {f.inference_id: f.labels for f in uow.feedback.for_endpoint("reviews")}
        assert truth == {inference_id: ("-1",) for inference_id, _, _ in started.values()}
        with store.uow() as uow:
            assert uow.review.count() == {"Completed": len(started)}


def test_the_loop_api_answers_each_mistake_with_its_status_and_only_the_team_sees_the_tasks(
    store: Store,
) -> None:
    workforce.create_team(store, "reviewers")
    workforce.create_team(store, "others")
    workforce.create_worker(store, "in@example.com", teams=("reviewers",))
    workforce.create_worker(store, "out@example.com", teams=("others",))
    tokens = {e: workforce.create_token(store, e, "t") for e in ("in@example.com", "out@example.com")}
    with running_server(store) as (client, _):
        categories = [{"label": x} for x in ("1", "0", "-1")]
        made = client.post(
            "/api/v1/review/flows",
            json={"name": "course", "team": "reviewers", "categories": categories,
                  "activation_conditions": {"any": [{"confidence_below": 0.9}, {"audit": 5}]}},
        )  # fmt: skip
        assert made.status_code == 201 and made.json()["activation_conditions"]["any"][1] == {"audit": 5.0}
        bad_flow = client.post(
            "/api/v1/review/flows",
            json={"name": "bad", "team": "reviewers", "categories": [{"label": "a"}, {"label": "b"}],
                  "activation_conditions": {"margin_below": "wide"}},
        )  # fmt: skip
        assert bad_flow.status_code == 400 and "margin_below: a number from 0 to 1" in bad_flow.text

        def start(name: str, flow: str, content: object) -> httpx.Response:
            body = {
                "HumanLoopName": name,
                "FlowDefinitionName": flow,
                "HumanLoopInput": {"InputContent": content},
            }
            return client.post("/api/v1/review/loops", json=body)

        content = '{"taskObject": "It is okay", "initialValue": "0"}'  # Augmented AI sends a JSON string
        assert start("loop-1", "course", content).status_code == 201
        assert start("loop-1", "course", content).status_code == 200
        assert start("loop-1", "course", '{"taskObject": "other"}').status_code == 409
        assert start("loop-2", "nope", content).status_code == 404
        wrong = start("loop-2", "course", {"initialValue": "0"})
        assert wrong.status_code == 400 and "InputContent.taskObject" in wrong.json()["error"]["message"]
        assert client.get("/api/v1/review/loops/missing").status_code == 404
        assert client.delete("/api/v1/review/loops/loop-1").status_code == 409  # stop it first
        page = client.get("/api/v1/review/loops", params={"MaxResults": 1, "Status": "InProgress"}).json()
        assert [s["HumanLoopName"] for s in page["HumanLoopSummaries"]] == ["loop-1"]
        assert (
            client.get(
                "/api/v1/review/loops", params={"CreationTimeAfter": "2026-01-01T00:00:00"}
            ).status_code
            == 400
        )
        job = client.get("/api/v1/review/flows/course").json()["labeling_job_id"]
        base = str(client.base_url)
        for email, sees in (("in@example.com", 1), ("out@example.com", 0)):
            with httpx.Client(base_url=base, headers=bearer(tokens[email])) as person:
                assert len(person.get("/api/v1/labeling/jobs").json()) == sees
                tasks = person.post(f"/api/v1/labeling/jobs/{job}/next", json={})
                assert tasks.status_code == (200 if sees else 404)
                assert person.get("/api/v1/review/loops").status_code == 403  # workers do not read loops
        assert client.post("/api/v1/review/loops/loop-1/stop").json()["HumanLoopStatus"] == "Stopped"
        assert client.delete("/api/v1/review/loops/loop-1").status_code == 204
