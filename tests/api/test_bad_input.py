"""Bad input over real HTTP on SQLite and PostgreSQL: every class the outside tester's 500s fell into is
refused at the edge with a 4xx that names the field (never a 500, never the value in the server's log)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from auth_helpers import admin_token, bearer
from loopwise.app import background_server
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.review import service as review
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.workforce import service as workforce

HUGE = 2**63  # one past PostgreSQL's bigint
INT4 = 2**31  # one past PostgreSQL's integer, the ids' type
NUL = "a\x00b"
CATEGORIES = [{"label": "1"}, {"label": "0"}]


@pytest.fixture
def http(store: Store) -> Iterator[httpx.Client]:
    """An admin's client on a real server over ``store``."""
    headers = bearer(admin_token(store))
    with (
        background_server(store) as (url, _),
        httpx.Client(base_url=url, timeout=30, headers=headers) as client,
    ):
        yield client


def _refused(answer: httpx.Response, field: str, status: int = 400) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert field in error["message"], error


def _job(**changes: object) -> dict[str, object]:
    return {"name": "job", "team": "t", "categories": CATEGORIES, "items": [{"source": "x"}], **changes}


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", f"/api/v1/labeling/jobs/{HUGE}", "job_id"),
        ("GET", f"/api/v1/labeling/jobs/{INT4}/progress", "job_id"),
        ("POST", f"/api/v1/labeling/assignments/{INT4}/submit", "assignment_id"),
        ("GET", f"/api/v1/labeling/jobs/{10**30}/answers", "job_id"),
        ("POST", f"/api/v1/labeling/jobs/{HUGE}/next", "job_id"),
        ("POST", f"/api/v1/labeling/assignments/{HUGE}/skip", "assignment_id"),
        ("POST", "/api/v1/labeling/assignments/0/skip", "assignment_id"),
        ("GET", f"/api/v1/labeling/jobs/{HUGE}/reviews", "job_id"),
        ("POST", f"/api/v1/labeling/jobs/{HUGE}/stop", "job_id"),
    ],
)
def test_out_of_range_ids_in_paths_are_refused(
    http: httpx.Client, method: str, path: str, field: str
) -> None:
    _refused(http.request(method, path, json={}), field)


def test_out_of_range_integers_in_bodies_and_queries_are_refused(store: Store, http: httpx.Client) -> None:
    workforce.create_team(store, "t")
    _refused(http.post("/api/v1/labeling/jobs", json=_job(lifetime_s=1e20)), "lifetime_s")
    _refused(http.post("/api/v1/labeling/jobs", json=_job(task_time_limit_s=HUGE)), "task_time_limit_s")
    _refused(http.post("/api/v1/labeling/jobs", json=_job(workers_per_item=HUGE)), "workers_per_item")
    _refused(http.post("/api/v1/labeling/jobs/1/next", json={"have": [HUGE]}), "have")
    _refused(http.post("/api/v1/labeling/jobs/1/next", json={"have": [INT4]}), "have")
    _refused(http.post(f"/api/v1/labeling/reviews/{HUGE}", json={"label": "1"}), "review_id")
    flow = {"name": "f", "team": "t", "categories": CATEGORIES, "task_availability_lifetime_s": 10**20}
    _refused(http.post("/api/v1/review/flows", json=flow), "task_availability_lifetime_s")
    _refused(http.get("/api/v1/review/loops", params={"MaxResults": HUGE}), "MaxResults")
    assert http.get("/api/v1/labeling/jobs").json() == []  # nothing was made meanwhile


def test_huge_reference_numbers_are_refused(store: Store, http: httpx.Client) -> None:
    workforce.create_team(store, "t")
    for ref in ("reviews:99999999999999999999999", f"reviews:{HUGE}", "reviews:\u00b2"):
        asked = _job(items=None, dataset=ref)
        answer = http.post("/api/v1/labeling/jobs", json=asked)
        assert answer.status_code in (400, 404), answer.text
        assert "dataset" in answer.json()["error"]["message"] or ref in answer.json()["error"]["message"]
    _refused(http.get("/api/v1/review/loops", params={"NextToken": f"after-{10**30}"}), "NextToken")


def test_nul_bytes_in_json_fields_are_refused(
    store: Store, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    workforce.create_team(store, "t")
    caplog.set_level(logging.INFO)
    _refused(http.post("/api/v1/labeling/jobs", json=_job(name=NUL)), "name")
    _refused(http.post("/api/v1/labeling/jobs", json=_job(items=[{"source": NUL}])), "items.0.source")
    _refused(http.post("/api/v1/labeling/jobs", json=_job(categories=[{"label": NUL}])), "categories.0.label")
    _refused(http.post("/api/v1/labeling/assignments/1/submit", json={"label": NUL}), "label")
    _refused(
        http.post("/api/v1/review/flows", json={"name": "f", "team": NUL, "categories": CATEGORIES}), "team"
    )
    loop = {"HumanLoopName": "l", "FlowDefinitionName": "f", "HumanLoopInput": {"InputContent": NUL}}
    _refused(http.post("/api/v1/review/loops", json=loop), "HumanLoopInput.InputContent")
    # in paths and queries too
    _refused(http.get("/api/v1/review/loops/a%00b"), "path")
    _refused(http.get("/api/v1/review/loops", params={"FlowDefinitionName": NUL}), "FlowDefinitionName")
    _refused(http.get("/api/v1/alerts", params={"endpoint": NUL}), "endpoint")
    _refused(
        http.post("/api/v1/endpoints/e/feedback", json=[{"inference_id": NUL, "label": "1"}]), "inference_id"
    )
    assert http.get("/api/v1/labeling/jobs").json() == []
    assert "a\x00b" not in caplog.text and "a\\x00b" not in caplog.text  # the value is never logged


def test_nul_bytes_in_form_fields_are_refused_signed_in_or_not(store: Store, http: httpx.Client) -> None:
    anonymous = httpx.Client(base_url=str(http.base_url), timeout=30)
    with anonymous:
        answer = anonymous.post("/signin", data={"email": NUL, "password": "x"})
        _refused(answer, "email")
        answer = anonymous.post("/signin", data={"email": "a@example.com", "password": NUL})
        _refused(answer, "password")
        answer = anonymous.post("/signin", data={"email": "a@example.com", "password": "x", "next": NUL})
        _refused(answer, "next")


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00Z",
        "99999-01-01T00:00:00Z",
    ],
)
def test_out_of_range_datetimes_in_list_filters_are_refused(http: httpx.Client, moment: str) -> None:
    for name in ("CreationTimeAfter", "CreationTimeBefore"):
        _refused(http.get("/api/v1/review/loops", params={name: moment}), name)


def test_a_nul_byte_sent_for_inference_is_refused_naming_the_text(two_models: Store) -> None:
    """An endpoint attached to a flow: before, PostgreSQL refused the loop and the caller was answered
    with a loop name that did not exist."""
    store = two_models
    workforce.create_team(store, "reviewers")
    review.create_flow(
        store, "f", team="reviewers", categories=list(COURSE_CATEGORIES), conditions={"confidence_below": 1.0}
    )
    config = {"variants": [{"name": "A", "model": "small-tfidf@champion"}], "review": {"flow": "f"}}
    create_endpoint(store, "reviews", parse_endpoint_config(config))
    headers = bearer(admin_token(store))
    with (
        background_server(store) as (url, _),
        httpx.Client(base_url=url, timeout=30, headers=headers) as client,
    ):
        url = "/endpoints/reviews/invocations"
        _refused(client.post(url, json={"features": [NUL]}), "instance 1")
        _refused(client.post(url, json=[{"features": ["fine"]}, {"features": [NUL]}]), "instance 2")
        lines = '{"features": ["fine"]}\n{"features": ["a\\u0000b"]}\n'
        _refused(client.post(url, content=lines, headers={"Content-Type": "application/jsonlines"}), "line 2")
        _refused(client.post(url, content="fine\na\x00b\n", headers={"Content-Type": "text/csv"}), "row 2")
        predict = client.post("/api/v1/endpoints/reviews/predict", json={"texts": ["fine", NUL]})
        _refused(predict, "texts.1")
        fine = client.post(url, json={"features": ["a\\u0000 is fine as text"]})
        assert fine.status_code == 200, fine.text
        assert fine.json()["human_loop_name"]  # the loop exists: it was written


def test_a_value_the_database_refuses_answers_400_as_a_last_resort(store: Store) -> None:
    """What a missed field would send: the database's own refusal (PostgreSQL's DataError, SQLite's
    driver overflow) maps to a 400, never a 500."""
    from sqlalchemy import text

    from loopwise.api.invocations import problem

    sent: list[tuple[str, object]] = [("SELECT CAST(:v AS INTEGER)", 2**64)]
    if store.engine.dialect.name == "postgresql":
        sent.append(("SELECT CAST(:v AS TEXT)", NUL))  # SQLite stores a NUL
    for statement, value in sent:
        with pytest.raises(Exception) as refused, store.uow() as uow:
            uow.session.execute(text(statement), {"v": value})
        answer = problem(refused.value)
        assert answer is not None and answer[:2] == (400, "ValidationError"), (statement, refused.value)
