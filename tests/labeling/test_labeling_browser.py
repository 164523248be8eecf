"""The labeling UI in Chromium over a real server on 127.0.0.1: a new worker signs in, changes the
temporary password, labels five items with the keyboard only (one skip, one undo), and the admin's
console shows the progress. Screenshots are kept under test-artifacts/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auth_helpers import ARTIFACTS, csp_violations, ensure_admin, sign_in
from loopwise.app import background_server
from loopwise.labeling import service
from loopwise.labeling.jobs import COURSE_CATEGORIES, COURSE_FULL_INSTRUCTIONS, COURSE_TITLE
from loopwise.labeling.manifest import read_manifest
from loopwise.storage import Store
from loopwise.workforce import service as workforce

REVIEWS = [
    "I love this dress, it fits perfectly!",
    "The fabric is fine but the color is not as pictured.",
    "Ripped after one wash. Very disappointed.",
    "It is a dress. It is blue.",
    "Gorgeous, I bought it in two colors.",
    "Too small and the zipper broke.",
    "Okay for the price.",
]
#: the keys the worker presses and what they mean, in order (1 = "1", 2 = "0", 3 = "-1")
KEYS = {"1": "1", "2": "0", "3": "-1"}


def _text(page: Any) -> str:
    page.wait_for_selector('#labeler[data-state="ready"]')
    return str(page.text_content("#text"))


def _press(page: Any, key: str) -> str:
    """Press ``key`` on the item shown; returns the text that was answered once the next one shows."""
    before = _text(page)
    page.keyboard.press(key)
    page.wait_for_function("(before) => document.getElementById('text').textContent !== before", arg=before)
    return before


def test_a_worker_labels_five_items_by_keyboard_and_the_admin_sees_it(
    sqlite_store: Store, page: Any, tmp_path: Path
) -> None:
    store = sqlite_store
    ensure_admin(store)
    workforce.create_team(store, "labelers")
    _, temporary = workforce.create_worker(store, "ann@example.com", teams=("labelers",))
    manifest = tmp_path / "reviews.manifest"
    manifest.write_text("".join(json.dumps({"source": r, "id": i}) + "\n" for i, r in enumerate(REVIEWS)))
    job = service.create_job(
        store,
        "course-sentiment",
        read_manifest(manifest),
        team="labelers",
        categories=list(COURSE_CATEGORIES),
        title=COURSE_TITLE,
        short_instructions="Choose the sentiment of the review.",
        full_instructions=COURSE_FULL_INSTRUCTIONS,
        workers_per_item=2,
    )
    with background_server(store) as (base, _):
        # first sign-in: the temporary password must be changed before anything else
        sign_in(page, base, "ann@example.com", temporary)
        page.wait_for_url(f"{base}/account/password")
        page.fill('input[name="current"]', temporary)
        page.fill('input[name="new"]', "ann's own passw0rd")
        page.fill('input[name="confirm"]', "ann's own passw0rd")
        page.click('main button[type="submit"]')
        page.wait_for_url(f"{base}/label")
        assert page.locator(f'#jobs tr[data-job="{job.id}"]').count() == 1
        with page.expect_navigation() as opened:
            page.click("text=Start labeling")
        page.wait_for_url(f"{base}/label/jobs/{job.id}")
        # the keyboard below works under the page's policy (the page fixture fails on any violation)
        assert "script-src 'self'" in opened.value.headers["content-security-policy"]
        assert "joy, excitement, delight" in page.text_content("#choices")
        assert COURSE_TITLE in page.text_content("h1")

        # five answers and a skip with the keyboard only; the item after each is already loaded
        answered = {}
        for key in ("1", "3", "2"):
            answered[_press(page, key)] = KEYS[key]
        skipped = _press(page, "s")
        answered[_press(page, "1")] = "1"
        # undo takes back the last answer: the same text comes back, to be answered anew
        last = list(answered)[-1]
        page.keyboard.press("u")
        page.wait_for_function("(t) => document.getElementById('text').textContent === t", arg=last)
        answered[_press(page, "2")] = "0"
        answered[_press(page, "3")] = "-1"
        page.wait_for_selector('#labeler[data-pending="0"]')
        page.screenshot(path=str(ARTIFACTS / "labeling-worker.png"), full_page=True)

        ann = workforce.sign_in(store, "ann@example.com", "ann's own passw0rd")
        stored = {a.item_id: a.label for a in service.answers(store, ann, job.id)}
        texts = {a.item_id: REVIEWS[a.position - 1] for a in service.answers(store, ann, job.id)}
        assert len(stored) == 5 and {texts[i]: label for i, label in stored.items()} == answered
        assert skipped not in answered

        # the admin signs in on a fresh page and sees the job's progress and ann's figures
        context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
        admin = context.new_page()
        violations = csp_violations(admin)
        try:
            sign_in(admin, base)
            admin.wait_for_url(f"{base}/console/labeling")
            row = admin.locator(f'#jobs tr[data-job="{job.id}"]')
            assert "5 / 14" in row.locator("td.answers").text_content()
            admin.click(f"text={job.name}")
            admin.wait_for_url(f"{base}/console/labeling/{job.id}")
            assert (
                admin.locator('#workers tr[data-worker="ann@example.com"] td.answers').text_content() == "5"
            )
            admin.screenshot(path=str(ARTIFACTS / "labeling-admin.png"), full_page=True)
            assert not violations, f"the console broke its Content-Security-Policy: {violations}"
        finally:
            context.close()
