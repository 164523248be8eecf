"""Human loops on SQLite and PostgreSQL: flows, idempotent starts, answers through the labeling queue,
completion with output.json and ground truth, stop, expiry, listing, deletion and webhooks."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from loopwise import webhooks
from loopwise.errors import AnswerRefusedError, HumanLoopConflictError, NotFoundError, ReviewError
from loopwise.labeling import service as labeling
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.review import output as loop_output
from loopwise.review import service
from loopwise.review.loops import content_hash
from loopwise.storage import Store
from loopwise.workforce import service as workforce
from loopwise.workforce.records import Worker

REVIEW = {"taskObject": "It is okay", "initialValue": "0"}


def _flow(
    store: Store, *, task_count: int = 1, webhook: str | None = None, lifetime_s: int = 3600
) -> list[Worker]:
    workforce.create_team(store, "reviewers")
    workers = [workforce.create_worker(store, f"r{i}@example.com", teams=("reviewers",))[0] for i in range(3)]
    service.create_flow(
        store,
        "reviews-sentiment",
        team="reviewers",
        categories=list(COURSE_CATEGORIES),
        answer_key="sentiment",
        task_count=task_count,
        conditions={"confidence_below": 0.9},
        webhook=webhook,
        lifetime_s=lifetime_s,
    )
    return workers


def _answer(store: Store, worker: Worker, flow: str, label: str) -> None:
    job = service.find_flow(store, flow).job_id
    (task,) = labeling.next_tasks(store, worker, job)[:1]
    labeling.submit(store, worker, task.assignment_id, label)


def test_a_loop_starts_once_is_answered_and_completes_with_its_output(store: Store) -> None:
    workers = _flow(store, task_count=2)
    loop, new = service.start_loop(store, "loop-1", "reviews-sentiment", REVIEW)
    assert new and loop.status == "InProgress" and loop.input == REVIEW
    # the same name and content again: the same loop; key order does not matter
    again, new = service.start_loop(
        store, "loop-1", "reviews-sentiment", {"initialValue": "0", "taskObject": "It is okay"}
    )
    assert not new and again.id == loop.id
    with pytest.raises(HumanLoopConflictError, match="exists already with other input"):
        service.start_loop(store, "loop-1", "reviews-sentiment", {"taskObject": "Something else"})
    # the reviewer sees the text with the model's prediction preselected
    job = service.find_flow(store, "reviews-sentiment").job_id
    (task,) = labeling.next_tasks(store, workers[0], job)
    assert (task.source, task.initial) == ("It is okay", "0")
    labeling.submit(store, workers[0], task.assignment_id, "0")
    assert service.describe_loop(store, "loop-1").status == "InProgress"  # two answers per loop
    _answer(store, workers[1], "reviews-sentiment", "0")
    done = service.describe_loop(store, "loop-1")
    assert done.status == "Completed" and done.output_uri
    output = loop_output.read_output(store, done)
    assert [a["answerContent"] for a in output["humanAnswers"]] == [{"sentiment": {"label": "0"}}] * 2
    first = output["humanAnswers"][0]
    assert (
        first["workerMetadata"]["identityData"]["email"] == "r0@example.com"
        and first["timeSpentInSeconds"] >= 0
    )
    assert datetime.fromisoformat(first["acceptanceTime"]) <= datetime.fromisoformat(first["submissionTime"])
    assert output["inputContent"] == REVIEW and output["consolidatedAnswer"]["confidence"] == 1.0
    assert service.settle(store) == {"completed": 0, "failed": 0}  # completed once
    # an answer to a loop that has ended cannot be taken back: it was consolidated already
    with pytest.raises(AnswerRefusedError, match="no answer of yours to undo"):
        labeling.undo(store, workers[1], job)
    assert loop_output.completed_examples(store, "reviews-sentiment")[0]["label"] == "0"


def test_input_that_does_not_fit_the_template_is_refused_naming_the_field(store: Store) -> None:
    _flow(store)
    cases = {
        "InputContent.taskObject": {"initialValue": "0"},
        r"InputContent.taskObject: the text": {"taskObject": "   "},
        "InputContent.initialValue: '5' is not a category": {"taskObject": "fine", "initialValue": "5"},
        "InputContent: not a JSON object": "{broken",
        "InputContent: an object": ["taskObject"],
    }
    for message, content in cases.items():
        with pytest.raises(ReviewError, match=message):
            service.start_loop(store, "bad-input", "reviews-sentiment", content)
    with pytest.raises(NotFoundError, match="no flow definition 'nope'"):
        service.start_loop(store, "loop-x", "nope", REVIEW)
    with pytest.raises(ReviewError, match="human loop name 'Bad_Name'"):
        service.start_loop(store, "Bad_Name", "reviews-sentiment", REVIEW)
    with store.uow() as uow:
        assert uow.review.count() == {}  # nothing half-stored


def test_a_loop_stopped_while_a_worker_holds_it_is_never_completed(store: Store) -> None:
    workers = _flow(store)
    service.start_loop(store, "held", "reviews-sentiment", REVIEW)
    job = service.find_flow(store, "reviews-sentiment").job_id
    (task,) = labeling.next_tasks(store, workers[0], job)
    assert service.stop_loop(store, "held").status == "Stopped"
    with pytest.raises(AnswerRefusedError, match="withdrawn"):
        labeling.submit(store, workers[0], task.assignment_id, "1")
    assert service.describe_loop(store, "held").status == "Stopped"
    assert labeling.next_tasks(store, workers[1], job) == []  # out of the queue
    service.delete_loop(store, "held")
    with pytest.raises(NotFoundError):
        service.describe_loop(store, "held")


def test_loops_past_their_lifetime_fail_as_expired_and_in_progress_ones_cannot_be_deleted(
    store: Store,
) -> None:
    workers = _flow(store, lifetime_s=60)
    service.start_loop(store, "late", "reviews-sentiment", REVIEW)
    with pytest.raises(HumanLoopConflictError, match="stop it first"):
        service.delete_loop(store, "late")
    assert service.settle(store, now=datetime.now(UTC) + timedelta(seconds=61)) == {
        "completed": 0,
        "failed": 1,
    }
    late = service.describe_loop(store, "late")
    assert late.status == "Failed" and late.failure_reason.startswith("Expired")  # type: ignore[union-attr]
    assert late.to_dict()["FailureCode"] == "Expired"
    job = service.find_flow(store, "reviews-sentiment").job_id
    assert labeling.next_tasks(store, workers[0], job) == []


def test_listing_pages_through_loops_by_flow_status_and_time(store: Store) -> None:
    _flow(store)
    for i in range(7):
        service.start_loop(store, f"loop-{i}", "reviews-sentiment", {"taskObject": f"review {i}"})
    service.stop_loop(store, "loop-3")
    seen, token = [], None
    while True:
        page, token = service.list_loops(store, flow="reviews-sentiment", max_results=3, next_token=token)
        seen += [loop.name for loop in page]
        if token is None:
            break
    assert seen == [f"loop-{i}" for i in range(7)]
    newest, _ = service.list_loops(store, descending=True, max_results=2)
    assert [loop.name for loop in newest] == ["loop-6", "loop-5"]
    stopped, _ = service.list_loops(store, status="Stopped")
    assert [loop.name for loop in stopped] == ["loop-3"]
    future, _ = service.list_loops(store, created_after=datetime.now(UTC) + timedelta(minutes=1))
    assert future == []
    with pytest.raises(ReviewError, match="status 'Done'"):
        service.list_loops(store, status="Done")


def test_concurrent_starts_of_one_name_make_one_loop_and_of_many_names_lose_none(store: Store) -> None:
    _flow(store)
    flow = service.find_flow(store, "reviews-sentiment")
    errors: list[BaseException] = []

    def start(i: int) -> None:
        try:
            service.start_loop(store, "same", "reviews-sentiment", REVIEW)
            service.start_predicted(
                store,
                flow,
                [
                    {"name": f"p-{i}-{j}", "input": {"taskObject": f"t{i}{j}"}, "content_hash": "x"}
                    for j in range(5)
                ],
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with store.uow() as uow:
        assert uow.review.count() == {"InProgress": 41}
        items = uow.labeling.item_counters(flow.job_id)
    assert len(items) == 41 and service.find_flow(store, "reviews-sentiment").status == "Active"
    assert service.describe_loop(store, "same").content_hash == content_hash(REVIEW)


def test_status_changes_reach_the_webhook_at_least_once(store: Store) -> None:
    workers = _flow(store, webhook="http://127.0.0.1:9/hook")
    service.start_loop(store, "hooked", "reviews-sentiment", REVIEW)
    _answer(store, workers[0], "reviews-sentiment", "1")
    assert service.describe_loop(store, "hooked").status == "Completed"
    received: list[dict[str, object]] = []
    calls = {"n": 0}

    secret = service.find_flow(store, "reviews-sentiment").webhook_secret
    assert secret and secret.startswith("whsec_")

    def flaky(url: str, body: bytes, headers: dict[str, str]) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return 503  # the receiver is down the first time
        webhooks.verify(secret, body, headers["X-Loopwise-Signature"])  # signed with the flow's secret
        assert headers["X-Loopwise-Event"] == "loopwise.human-loop-status-change"
        received.append(json.loads(body))
        return 204

    assert service.deliver_events(store, post=flaky) == (0, 1)
    assert service.deliver_events(store, post=flaky) == (0, 0)  # backing off
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert service.deliver_events(store, post=flaky, now=later) == (1, 0)
    assert received[0]["humanLoopName"] == "hooked" and received[0]["humanLoopStatus"] == "Completed"
    assert service.deliver_events(store, post=flaky, now=later + timedelta(hours=2)) == (0, 0)


def test_flow_definitions_are_checked_and_deleting_one_stops_its_loops(store: Store) -> None:
    _flow(store)
    with pytest.raises(ReviewError, match="exists already"):
        service.create_flow(store, "reviews-sentiment", team="reviewers", categories=list(COURSE_CATEGORIES))
    with pytest.raises(NotFoundError, match="no team 'ghosts'"):
        service.create_flow(store, "other", team="ghosts", categories=list(COURSE_CATEGORIES))
    with pytest.raises(ReviewError, match="task count"):
        service.create_flow(
            store, "other", team="reviewers", categories=list(COURSE_CATEGORIES), task_count=10
        )
    with pytest.raises(ReviewError, match="activation conditions"):
        service.create_flow(
            store, "other", team="reviewers", categories=list(COURSE_CATEGORIES), conditions={"x": 1}
        )
    service.start_loop(store, "open-one", "reviews-sentiment", REVIEW)
    assert service.delete_flow(store, "reviews-sentiment").status == "Deleted"
    assert service.describe_loop(store, "open-one").status == "Stopped"
    with pytest.raises(HumanLoopConflictError, match="is Deleted"):
        service.start_loop(store, "after", "reviews-sentiment", REVIEW)


def test_completed_loops_become_labeled_examples_and_a_data_set_version(
    store: Store, tmp_path: object
) -> None:
    workers = _flow(store)
    labels = ["1", "0", "-1"]
    for i in range(12):
        service.start_loop(store, f"loop-{i}", "reviews-sentiment", {"taskObject": f"review number {i}"})
        _answer(store, workers[0], "reviews-sentiment", labels[i % 3])
    service.start_loop(store, "unanswered", "reviews-sentiment", REVIEW)
    assert service.settle(store)["completed"] == 12
    rows = loop_output.completed_examples(store, "reviews-sentiment")
    assert len(rows) == 12 and {r["source"] for r in rows} == {f"human loop loop-{i}" for i in range(12)}
    assert [r["label"] for r in rows] == [labels[i % 3] for i in range(12)]
    version = loop_output.export_dataset(
        store, "reviews-sentiment", "reviewed", train=0.5, validation=0.25, test=0.25
    )
    assert sum(split.rows for split in version.splits.values()) == 12
    assert version.source["origin"]["kind"] == "human review" and version.source["origin"]["loops"] == 12
