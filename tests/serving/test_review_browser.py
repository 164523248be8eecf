"""The course's Lab 3 flow in Chromium over a real server: the endpoint sends its uncertain predictions of
the course's four reviews to people, a reviewer works them in the labeling page with the model's answer
preselected (Enter accepts it, a number key changes it), and each loop completes with its output.json.
Screenshots are kept under test-artifacts/."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from auth_helpers import ARTIFACTS, admin_token, bearer, sign_in
from loopwise.app import background_server
from loopwise.labeling.jobs import COURSE_CATEGORIES, COURSE_TITLE
from loopwise.review import service as review
from loopwise.review.output import read_output
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.workforce import service as workforce

REVIEWS = ["I enjoy this product", "I am unhappy with this product", "It is okay", "sometimes it works"]
PASSWORD = "a reviewer's passw0rd"


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_reviewer_answers_the_course_loops_in_the_browser(two_models: Store, page: Any) -> None:
    store = two_models
    workforce.create_team(store, "reviewers")
    _, temporary = workforce.create_worker(store, "rita@example.com", role="reviewer", teams=("reviewers",))
    workforce.change_password(store, "rita@example.com", temporary, PASSWORD)
    flow = review.create_flow(
        store, "course-sentiment", team="reviewers", categories=list(COURSE_CATEGORIES), title=COURSE_TITLE,
        answer_key="sentiment", conditions={"confidence_below": 0.9},
    )  # fmt: skip
    config = {
        "variants": [{"name": "VariantA", "model": "small-tfidf@champion"}],
        "review": {"flow": flow.name},
    }
    create_endpoint(store, "reviews", parse_endpoint_config(config))
    with background_server(store) as (base, _):
        loops = {}
        with httpx.Client(base_url=base, headers=bearer(admin_token(store)), timeout=30) as client:
            for text in REVIEWS:
                body = client.post("/endpoints/reviews/invocations", json={"features": [text]}).json()
                if "human_loop_name" in body:
                    loops[text] = (body["human_loop_name"], str(body["predicted_label"]))
        assert len(loops) >= 2, "the small model is unsure of most of the course's reviews"

        sign_in(page, base, "rita@example.com", PASSWORD)
        page.goto(f"{base}/label/jobs/{flow.job_id}")
        expected = {}
        for turn in range(len(loops)):
            page.wait_for_selector('#labeler[data-state="ready"]')
            text = str(page.text_content("#text"))
            _, predicted = loops[text]
            preselected = page.locator(".choice.preselected")
            assert preselected.count() == 1 and preselected.get_attribute("data-label") == predicted
            if turn == 0:
                page.screenshot(path=str(ARTIFACTS / "review-preselected.png"), full_page=True)
                page.keyboard.press("Enter")  # the model was right: accept it
                expected[text] = predicted
            else:
                page.keyboard.press("3")  # the model was wrong: negative
                expected[text] = "-1"
            page.wait_for_function("(t) => document.getElementById('text').textContent !== t", arg=text)
        page.wait_for_selector('#labeler[data-state="done"]')
        page.wait_for_selector('#labeler[data-pending="0"]')
        for text, (name, _) in loops.items():
            deadline = time.monotonic() + 10
            while (loop := review.describe_loop(store, name)).status != "Completed":
                assert time.monotonic() < deadline, f"{name} did not complete"
                time.sleep(0.05)
            output = read_output(store, loop)
            assert output["humanAnswers"][0]["answerContent"] == {"sentiment": {"label": expected[text]}}
            assert output["humanAnswers"][0]["workerMetadata"]["identityData"]["email"] == "rita@example.com"
            assert output["inputContent"]["taskObject"] == text
