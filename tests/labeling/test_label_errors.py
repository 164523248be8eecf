"""Likely wrong labels: cleanlab flags the labels a cross-validated model finds unlikely, each opens a
review once, a reviewer's change becomes the item's label; the queue over HTTP and in the browser is for
reviewers and admins only (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from typing import Any

import httpx

from auth_helpers import admin_token, bearer, sign_in
from loopwise.app import background_server
from loopwise.errors import AnswerRefusedError
from loopwise.labeling import label_errors, service
from loopwise.labeling.manifest import parse_records
from loopwise.labeling.output import consolidate_job, labeled_items
from loopwise.labeling.records import Category
from loopwise.storage import Store
from loopwise.workforce import service as workforce

WORDS = {"pos": "great lovely perfect gorgeous comfy", "neg": "awful broken ripped cheap itchy"}


def _job_with_flipped_labels(store: Store) -> tuple[int, set[int]]:
    """120 items labeled by one worker, 12 of them with the wrong label on purpose."""
    rng = random.Random(0)
    truth = [label for label in WORDS for _ in range(60)]
    rng.shuffle(truth)
    records: list[object] = [
        {"source": " ".join(rng.sample(WORDS[label].split(), 3)) + f" dress {i}"}
        for i, label in enumerate(truth)
    ]
    workforce.create_team(store, "labelers")
    ann, _ = workforce.create_worker(store, "ann@example.com", teams=("labelers",))
    job = service.create_job(
        store, "flips", parse_records(records, where="test"), team="labelers",
        categories=[Category("pos"), Category("neg")],
    )  # fmt: skip
    flipped = set(rng.sample(range(1, 121), 12))
    while tasks := service.next_tasks(store, ann, job.id):
        right = truth[tasks[0].position - 1]
        given = ("neg" if right == "pos" else "pos") if tasks[0].position in flipped else right
        service.submit(store, ann, tasks[0].assignment_id, given)
    consolidate_job(store, "flips", "majority")
    return job.id, flipped


def test_cleanlab_flags_the_flipped_labels_and_a_reviewer_fixes_them(store: Store) -> None:
    job_id, flipped = _job_with_flipped_labels(store)
    found = label_errors.find_label_errors(store, "flips")
    positions = {r.position for r in found}
    assert len(positions & flipped) >= 10 and len(positions - flipped) <= 2, (positions, flipped)
    assert all(r.suggested != r.label and r.self_confidence < 0.5 for r in found)
    assert label_errors.find_label_errors(store, "flips") == []  # open reviews are not opened twice
    reviewer, _ = workforce.create_worker(store, "rev@example.com", role="reviewer", teams=("labelers",))
    first = found[0]
    decided = label_errors.decide(store, reviewer, first.id, first.suggested)
    assert decided.status == "changed" and decided.decided_by == "rev@example.com"
    try:
        label_errors.decide(store, reviewer, first.id, first.label)
        raise AssertionError("a review was decided twice")
    except AnswerRefusedError as exc:
        assert "decided already" in str(exc)
    items = {i.position: i for i in labeled_items(store, service.find_job(store, "flips"))}
    assert items[first.position].label == first.suggested and items[first.position].labeled_by == "reviewer"
    kept = label_errors.decide(store, reviewer, found[1].id, found[1].label)
    assert kept.status == "kept" and items[found[1].position].label == found[1].label
    assert [r.id for r in label_errors.reviews(store, reviewer, job_id)] == [r.id for r in found[2:]]


def test_the_review_queue_over_http_and_in_the_browser(sqlite_store: Store, page: Any) -> None:
    job_id, _ = _job_with_flipped_labels(sqlite_store)
    admin = bearer(admin_token(sqlite_store))
    worker_token = bearer(workforce.create_token(sqlite_store, "ann@example.com", "api"))
    with background_server(sqlite_store) as (url, _), httpx.Client(base_url=url) as http:
        assert (
            http.post(f"/api/v1/labeling/jobs/{job_id}/find-errors", headers=worker_token).status_code == 403
        )
        found = http.post(f"/api/v1/labeling/jobs/{job_id}/find-errors", headers=admin).json()
        assert (
            found
            and http.get(f"/api/v1/labeling/jobs/{job_id}/reviews", headers=worker_token).status_code == 403
        )
        queue = http.get(f"/api/v1/labeling/jobs/{job_id}/reviews", headers=admin).json()
        assert [r["id"] for r in queue] == [r["id"] for r in found]
        decided = http.post(
            f"/api/v1/labeling/reviews/{found[0]['id']}", json={"label": found[0]["suggested"]}, headers=admin
        )
        assert decided.json()["status"] == "changed"
        again = http.post(f"/api/v1/labeling/reviews/{found[0]['id']}", json={"label": "pos"}, headers=admin)
        assert again.status_code == 409
        # in the browser: the admin keeps the second suspect's label with one click
        sign_in(page, url)
        page.goto(f"{url}/review/jobs/{job_id}")
        second = found[1]
        page.click(f'#review-{second["id"]} button[value="{second["label"]}"]')
        page.wait_for_selector(f'#review-{second["id"]}[data-status="kept"]')
        assert page.locator(f"#review-{found[0]['id']}").get_attribute("data-status") == "changed"
