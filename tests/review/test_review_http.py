"""Human review over a real server: a team sees only its own flows and loops (another team's are 'not
found', and left out of lists; admins see all), and one invocation of thousands of texts starts a
bounded number of loops with a bounded header."""

from __future__ import annotations

import random
import time

import httpx
import orjson
import pytest

from auth_helpers import bearer
from loopwise.api.invocations import HUMAN_LOOPS_MAX_BYTES
from loopwise.errors import NotFoundError
from loopwise.labeling import service as labeling
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.review import service
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.workforce import service as workforce
from serving.conftest import running_server


def _person(store: Store, email: str, role: str, team: str) -> str:
    workforce.create_worker(store, email, role=role, teams=(team,))
    return workforce.create_token(store, email, "t")


def test_a_team_never_sees_another_teams_flows_loops_or_answers(store: Store) -> None:
    for team in ("alpha", "beta"):
        workforce.create_team(store, team)
        service.create_flow(store, f"{team}-flow", team=team, categories=list(COURSE_CATEGORIES))
    alpha = _person(store, "ra@example.com", "reviewer", "alpha")
    beta = _person(store, "rb@example.com", "reviewer", "beta")
    program = _person(store, "svc@example.com", "service", "alpha")
    service.start_loop(store, "a-loop", "alpha-flow", {"taskObject": "alpha's secret review"})
    service.start_loop(store, "b-loop", "beta-flow", {"taskObject": "beta's secret review"})
    answerer, _ = workforce.create_worker(store, "wb@example.com", teams=("beta",))
    (task,) = labeling.next_tasks(store, answerer, service.find_flow(store, "beta-flow").job_id)
    labeling.submit(store, answerer, task.assignment_id, "1")
    assert service.describe_loop(store, "b-loop").status == "Completed"
    with running_server(store) as (admin, _):
        base = str(admin.base_url)
        with httpx.Client(base_url=base, headers=bearer(alpha), timeout=30) as ra:
            assert [f["FlowDefinitionName"] for f in ra.get("/api/v1/review/flows").json()] == ["alpha-flow"]
            assert ra.get("/api/v1/review/flows/beta-flow").status_code == 404
            listed = ra.get("/api/v1/review/loops").json()["HumanLoopSummaries"]
            assert [s["HumanLoopName"] for s in listed] == ["a-loop"]
            assert (
                ra.get("/api/v1/review/loops", params={"FlowDefinitionName": "beta-flow"}).status_code == 404
            )
            for path in ("/api/v1/review/loops/b-loop", "/api/v1/review/loops/b-loop/output"):
                refused = ra.get(path)
                assert (
                    refused.status_code == 404 and "secret" not in refused.text and "wb@" not in refused.text
                )
            assert (
                ra.get("/api/v1/review/loops/a-loop").json()["InputContent"]["taskObject"].startswith("alpha")
            )
            page = ra.get("/console/loop")  # the loop's page lists the queues of one's teams only
            assert page.status_code == 200 and "alpha-flow" in page.text and "beta-flow" not in page.text
        with httpx.Client(base_url=base, headers=bearer(beta), timeout=30) as rb:
            output = rb.get("/api/v1/review/loops/b-loop/output").json()
            assert output["humanAnswers"][0]["workerMetadata"]["identityData"]["email"] == "wb@example.com"
            assert rb.get("/api/v1/review/loops/a-loop").status_code == 404
        with httpx.Client(base_url=base, headers=bearer(program), timeout=30) as svc:
            assert svc.post("/api/v1/review/loops/b-loop/stop").status_code == 404
            body = {"HumanLoopName": "c-loop", "HumanLoopInput": {"InputContent": {"taskObject": "x"}}}
            assert (
                svc.post("/api/v1/review/loops", json={**body, "FlowDefinitionName": "beta-flow"}).status_code
                == 404
            )
            assert (
                svc.post(
                    "/api/v1/review/loops", json={**body, "FlowDefinitionName": "alpha-flow"}
                ).status_code
                == 201
            )
            assert svc.post("/api/v1/review/loops/a-loop/stop").json()["HumanLoopStatus"] == "Stopped"
        # a budget is set with the flow, each field checked
        flow = {"name": "kept", "team": "alpha", "categories": [{"label": "1"}, {"label": "0"}]}
        bad = admin.post("/api/v1/review/flows", json={**flow, "max_loops_per_hour": 0})
        assert bad.status_code == 400 and "max_loops_per_hour: a whole number from 1" in bad.text
        made = admin.post(
            "/api/v1/review/flows", json={**flow, "max_open_loops": 200, "max_loops_per_hour": 500}
        )
        assert made.status_code == 201
        assert (made.json()["max_open_loops"], made.json()["max_loops_per_invocation"]) == (200, 100)
        # admins see every team's
        assert len(admin.get("/api/v1/review/flows").json()) == 3
        assert len(admin.get("/api/v1/review/loops").json()["HumanLoopSummaries"]) == 3
        assert admin.get("/api/v1/review/loops/b-loop/output").status_code == 200
    assert service.describe_loop(store, "b-loop").status == "Completed"  # untouched by the other team
    with store.uow() as uow:
        reviewer = uow.workforce.find("ra@example.com")
    with pytest.raises(NotFoundError):
        service.delete_loop(store, "b-loop", reviewer)
    with pytest.raises(NotFoundError):
        service.delete_flow(store, "beta-flow", reviewer)


def test_an_invocation_of_thousands_of_texts_starts_a_bounded_number_of_loops(two_models: Store) -> None:
    store = two_models
    workforce.create_team(store, "reviewers")
    service.create_flow(store, "everything", team="reviewers", categories=list(COURSE_CATEGORIES))
    config = {
        "variants": [{"name": "VariantA", "model": "small-tfidf@champion"}],
        "review": {"flow": "everything"},
    }
    create_endpoint(store, "reviews", parse_endpoint_config(config))
    words = [
        "love",
        "great",
        "okay",
        "fine",
        "poor",
        "awful",
        "small",
        "lovely",
        "return",
        "soft",
        "cheap",
        "perfect",
        "tight",
    ]
    rng = random.Random(3)
    texts = [{"features": [" ".join(rng.choices(words, k=6))]} for _ in range(3000)]
    with running_server(store) as (client, _):
        answer = client.post("/endpoints/reviews/invocations", content=orjson.dumps(texts),
                             headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 200, answer.text[:300]
        body = answer.json()
        in_body = [(i, a["human_loop_name"]) for i, a in enumerate(body) if "human_loop_name" in a]
        assert len(in_body) == 100  # the flow's default bound, the full list in the body
        listed = answer.headers["x-loopwise-human-loops"]
        assert len(listed.encode()) <= HUMAN_LOOPS_MAX_BYTES
        assert answer.headers["x-loopwise-human-loop-count"] == "100"
        names = listed.split(",")
        assert 0 < sum(1 for n in names if n) < 100  # cut, and the count says so
        assert [(i, n) for i, n in enumerate(names) if n] == in_body[: sum(1 for n in names if n)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with store.uow() as uow:
                if uow.review.count() == {"InProgress": 100}:
                    break
            time.sleep(0.05)
        with store.uow() as uow:
            assert uow.review.count() == {"InProgress": 100}
