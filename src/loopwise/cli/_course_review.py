"""Human review of live predictions, as a step of the main job (the human-in-the-loop half of the course's
Lab 3): a flow definition with the course's task (categories, instructions, the model's prediction as the
initial value) and its 0.90 confidence threshold, attached to the endpoint; the course's four reviews sent
to it over HTTP; loops start by themselves for the uncertain predictions; a reviewer answers them in the
labeling queue (simulated here through the same API the labeling page uses: the answer a person would
give); the loops are polled with describe until Completed, their output.json read, and their answers
collected as training data."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopwise.cli._common import console

if TYPE_CHECKING:
    from loopwise.storage import Store

TEAM = "course-reviewers"
REVIEWER = "rita@loopwise.local"
#: the service account of loopwise's own programs (``workforce.program_token``)
PROGRAMS = "programs@loopwise.local"
FLOW = "course-lab3-sentiment"
THRESHOLD = 0.90
#: what one reviewer keeps up with: the main job's later steps send thousands of live reviews to the
#: endpoint, and without a budget each uncertain one became a loop (10,873 for one reviewer); with it,
#: the most uncertain 200 wait open, and at most 500 new ones reach the queue an hour
MAX_OPEN_LOOPS = 200
MAX_LOOPS_PER_HOUR = 500
#: the course's Lab 3 reviews and the sentiment a person gives them
REVIEWS = {
    "I enjoy this product": "1",
    "I am unhappy with this product": "-1",
    "It is okay": "0",
    "sometimes it works": "0",
}


@dataclass(frozen=True)
class ReviewOutcome:
    flow: str
    loops: list[str]
    examples: Path


def course_review(store: Store, endpoint: str) -> ReviewOutcome:
    import httpx

    from loopwise.app import background_server
    from loopwise.labeling.jobs import COURSE_CATEGORIES, COURSE_FULL_INSTRUCTIONS, COURSE_TITLE
    from loopwise.review import service
    from loopwise.review.output import export
    from loopwise.serving.service import attach_review
    from loopwise.workforce import service as workforce

    if workforce.find_team(store, TEAM) is None:
        workforce.create_team(store, TEAM)
    if workforce.find_worker(store, REVIEWER) is None:
        workforce.create_worker(store, REVIEWER, role="reviewer", teams=(TEAM,))
        console.print(
            f"reviewer {REVIEWER} created in team {TEAM} (a temporary password, changed at sign-in)"
        )
    stamp = f"{datetime.now(UTC):%Y%m%d%H%M%S}"
    flow_name = f"{FLOW}-{stamp}"
    flow = service.create_flow(
        store, flow_name, team=TEAM, categories=list(COURSE_CATEGORIES), title=COURSE_TITLE,
        short_instructions="Check the model's answer, preselected; change it if it is wrong.",
        full_instructions=COURSE_FULL_INSTRUCTIONS, answer_key="sentiment", task_count=1,
        conditions={"confidence_below": THRESHOLD}, max_open_loops=MAX_OPEN_LOOPS,
        max_loops_per_hour=MAX_LOOPS_PER_HOUR,
    )  # fmt: skip
    attach_review(store, endpoint, flow.name)
    console.print(
        f"flow definition {flow.name}: team {TEAM}, 1 worker a loop, starts when confidence < {THRESHOLD}; "
        f"at most {MAX_OPEN_LOOPS} open, {MAX_LOOPS_PER_HOUR} new an hour"
    )
    token = workforce.program_token(store, "course-main-job")
    # a program reads the loops of its teams' flows only, as a reviewer does
    workforce.add_to_team(store, TEAM, PROGRAMS)
    reviewer = workforce.create_token(store, REVIEWER, f"course-{stamp}")
    with (
        background_server(store) as (url, app),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client,
    ):
        _wait_for(lambda: getattr(app.state.plane.flows.get(endpoint, (None,))[0], "name", None) == flow.name)
        started: dict[str, str] = {}
        for text in REVIEWS:
            answer = client.post(f"/endpoints/{endpoint}/invocations", json={"features": [text]}).json()
            loop = answer.get("human_loop_name")
            sent = f"human loop {loop}" if loop else "confident: no human loop"
            console.print(
                f"  {text!r}: {answer['predicted_label']} ({answer['probability']:.4f}) -> {sent}",
                highlight=False,
            )
            if loop:
                started[loop] = text
        console.print(f"{len(started)} of {len(REVIEWS)} reviews went to people (the course: 3 of 4)")
        # a loop is written to the database a few milliseconds after its prediction was answered
        _wait_for(lambda: all(client.get(f"/api/v1/review/loops/{n}").status_code == 200 for n in started))
        _answer_as_reviewer(url, reviewer, flow.job_id)
        for loop in started:
            described = _wait_completed(client, loop)
            output = client.get(f"/api/v1/review/loops/{loop}/output").json()
            human = output["humanAnswers"][0]
            console.print(
                f"  {loop}: {described['HumanLoopStatus']}; {human['answerContent']} "
                f"from worker {human['workerId']} in {human['timeSpentInSeconds']:.2f} s; "
                f"output {described['HumanLoopOutput']['OutputUri']}",
                highlight=False,
            )
    count, examples = store.artifacts.write_with(
        f"review/{flow.name}/training-data",
        lambda folder: (
            export(store, flow.name, folder / "training-data.jsonl"),
            folder / "training-data.jsonl",
        ),
    )
    console.print(f"{count} reviewed examples collected as training data: {examples}", highlight=False)
    return ReviewOutcome(flow.name, list(started), examples)


def _wait_for(condition: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not get there within 30 s")
        time.sleep(0.05)


def _answer_as_reviewer(url: str, token: str, job_id: int) -> None:
    """What the reviewer does in the labeling page: each loop's review, the model's answer preselected,
    kept or changed to the sentiment a person reads in it."""
    import httpx

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        while tasks := http.post(f"/api/v1/labeling/jobs/{job_id}/next", json={}).json()["tasks"]:
            task = tasks[0]
            label = REVIEWS.get(task["source"], task["initial"])
            kept = "kept" if label == task["initial"] else f"changed from {task['initial']}"
            http.post(f"/api/v1/labeling/assignments/{task['assignment_id']}/submit", json={"label": label})
            console.print(f"  reviewer: {task['source']!r} -> {label} ({kept})", highlight=False)


def _wait_completed(client: Any, loop: str, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        described = dict(client.get(f"/api/v1/review/loops/{loop}").json())
        if described["HumanLoopStatus"] != "InProgress" or time.monotonic() > deadline:
            return described
        time.sleep(0.2)
