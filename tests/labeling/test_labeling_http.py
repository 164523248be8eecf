"""The labeling API over a real server on 127.0.0.1, on SQLite and PostgreSQL: jobs created by admins
only (a malformed item refused by its line, nothing stored), workers confined to their teams' jobs and
their own answers, an answer sent twice refused with 409, workers racing over HTTP, and automated
labeling's rounds shown to admins only, in the job's JSON and on its console page."""

from __future__ import annotations

import threading
from collections import Counter

import httpx

from auth_helpers import admin_token, bearer
from labeling_helpers import NEW_ROUND, OLD_ROUND, WHY_NOT_MORE, write_rounds
from loopwise.app import background_server
from loopwise.storage import Store
from loopwise.workforce import service as workforce

CATEGORIES = [{"label": "1", "description": "joy"}, {"label": "0"}, {"label": "-1", "description": "anger"}]


def _job(count: int, per_item: int, name: str = "reviews") -> dict[str, object]:
    return {
        "name": name,
        "team": "labelers",
        "categories": CATEGORIES,
        "workers_per_item": per_item,
        "items": [{"source": f"review {i}", "id": i} for i in range(count)],
    }


def test_the_labeling_api_keeps_workers_to_their_jobs_and_answers(store: Store) -> None:
    workforce.create_team(store, "labelers")
    workforce.create_team(store, "others")
    tokens = {}
    for email, team, role in (
        ("ann@example.com", "labelers", "worker"),
        ("bob@example.com", "labelers", "worker"),
        ("rev@example.com", "labelers", "reviewer"),
        ("out@example.com", "others", "worker"),
    ):
        workforce.create_worker(store, email, role=role, teams=(team,))
        tokens[email] = bearer(workforce.create_token(store, email, "api"))
    admin = bearer(admin_token(store))
    with background_server(store) as (url, _), httpx.Client(base_url=url) as http:
        bad = _job(3, 2)
        bad["items"][1] = {"text": "no source"}  # type: ignore[index]
        refused = http.post("/api/v1/labeling/jobs", json=bad, headers=admin)
        assert refused.status_code == 400
        assert "line 2: no 'source' field" in refused.json()["error"]["message"]
        assert http.get("/api/v1/labeling/jobs", headers=admin).json() == []  # nothing half-imported
        assert (
            http.post("/api/v1/labeling/jobs", json=_job(3, 2), headers=tokens["ann@example.com"]).status_code
            == 403
        )
        made = http.post("/api/v1/labeling/jobs", json=_job(3, 2), headers=admin)
        assert made.status_code == 201, made.text
        job = made.json()["id"]
        again = http.post("/api/v1/labeling/jobs", json=_job(3, 2), headers=admin)
        assert again.status_code == 400 and "exists already" in again.json()["error"]["message"]

        ann = tokens["ann@example.com"]
        (task,) = http.post(f"/api/v1/labeling/jobs/{job}/next", json={}, headers=ann).json()["tasks"][:1]
        assert task["source"] == "review 0" and task["position"] == 1
        submit = f"/api/v1/labeling/assignments/{task['assignment_id']}/submit"
        assert http.post(submit, json={"label": "1"}, headers=ann).status_code == 200
        twice = http.post(submit, json={"label": "0"}, headers=ann)
        assert twice.status_code == 409 and "submitted already" in twice.json()["error"]["message"]
        assert http.post(submit, json={"label": "1"}, headers=tokens["bob@example.com"]).status_code == 404
        assert http.post(submit, json={}, headers=ann).status_code == 400  # no label
        # another team's worker sees neither the job nor its items
        outsider = tokens["out@example.com"]
        assert http.get("/api/v1/labeling/jobs", headers=outsider).json() == []
        assert http.post(f"/api/v1/labeling/jobs/{job}/next", json={}, headers=outsider).status_code == 404
        # a worker sees their own answers only; reviewers and admins see everyone's
        bob = tokens["bob@example.com"]
        (bob_task,) = http.post(f"/api/v1/labeling/jobs/{job}/next", json={}, headers=bob).json()["tasks"][:1]
        http.post(
            f"/api/v1/labeling/assignments/{bob_task['assignment_id']}/submit",
            json={"label": "-1"},
            headers=bob,
        )
        mine = http.get(f"/api/v1/labeling/jobs/{job}/answers", headers=ann).json()
        assert [a["worker"] for a in mine] == ["ann@example.com"]
        assert http.get(f"/api/v1/labeling/jobs/{job}/answers?everyone=true", headers=ann).status_code == 403
        everyone = http.get(
            f"/api/v1/labeling/jobs/{job}/answers?everyone=true", headers=tokens["rev@example.com"]
        )
        assert sorted(a["worker"] for a in everyone.json()) == ["ann@example.com", "bob@example.com"]
        seen = http.get(f"/api/v1/labeling/jobs/{job}", headers=ann).json()
        assert [w["worker"] for w in seen["workers"]] == ["ann@example.com"] and seen["answers"] == 2
        progress = http.get(f"/api/v1/labeling/jobs/{job}/progress", headers=admin).json()
        assert {w["worker"] for w in progress["workers"]} == {"ann@example.com", "bob@example.com"}
        assert http.get(f"/api/v1/labeling/jobs/{job}/progress", headers=ann).status_code == 403
        stopped = http.post(f"/api/v1/labeling/jobs/{job}/stop", headers=admin).json()
        assert stopped["status"] == "Stopped"
        assert http.post(f"/api/v1/labeling/jobs/{job}/next", json={}, headers=ann).json() == {"tasks": []}


def test_workers_racing_over_http_give_every_item_exactly_its_answers(store: Store) -> None:
    workforce.create_team(store, "labelers")
    heads = []
    for i in range(8):
        email = f"w{i}@example.com"
        workforce.create_worker(store, email, teams=("labelers",))
        heads.append(bearer(workforce.create_token(store, email, "api")))
    count, per_item = 30, 3
    with background_server(store) as (url, _), httpx.Client(base_url=url) as http:
        job = http.post(
            "/api/v1/labeling/jobs", json=_job(count, per_item), headers=bearer(admin_token(store))
        )
        job_id = job.json()["id"]
        statuses: Counter[int] = Counter()

        def work(headers: dict[str, str]) -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as own:
                while tasks := own.post(f"/api/v1/labeling/jobs/{job_id}/next", json={}).json()["tasks"]:
                    submit = f"/api/v1/labeling/assignments/{tasks[0]['assignment_id']}/submit"
                    statuses[own.post(submit, json={"label": "0"}).status_code] += 1

        threads = [threading.Thread(target=work, args=(h,)) for h in heads]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
        answers = http.get(
            f"/api/v1/labeling/jobs/{job_id}/answers?everyone=true", headers=bearer(admin_token(store))
        ).json()
    per_item_answers = Counter(a["item_id"] for a in answers)
    pairs = [(a["item_id"], a["worker"]) for a in answers]
    assert statuses == {200: count * per_item}
    assert len(pairs) == len(set(pairs)) == count * per_item and set(per_item_answers.values()) == {per_item}


def test_admins_see_automated_labelings_rounds_and_workers_do_not(store: Store) -> None:
    workforce.create_team(store, "labelers")
    workforce.create_worker(store, "ann@example.com", teams=("labelers",))
    ann = bearer(workforce.create_token(store, "ann@example.com", "api"))
    admin = bearer(admin_token(store))
    with background_server(store) as (url, _), httpx.Client(base_url=url) as http:
        auto = http.post("/api/v1/labeling/jobs", json={**_job(5, 1), "auto_label": {}}, headers=admin)
        plain = http.post("/api/v1/labeling/jobs", json=_job(5, 1, "plain"), headers=admin)
        auto_id, plain_id = auto.json()["id"], plain.json()["id"]
        assert http.get(f"/api/v1/labeling/jobs/{auto_id}", headers=admin).json()["rounds"] == []
        page = http.get(f"/console/labeling/{auto_id}", headers=admin).text
        assert "Automated labeling" in page and "No round yet" in page

        write_rounds(store, auto_id, [OLD_ROUND, NEW_ROUND])
        seen = http.get(f"/api/v1/labeling/jobs/{auto_id}", headers=admin).json()
        assert seen["rounds"] == [OLD_ROUND, NEW_ROUND]  # as stored, old and new
        assert http.get(f"/api/v1/labeling/jobs/{plain_id}", headers=admin).json()["rounds"] is None
        mine = http.get(f"/api/v1/labeling/jobs/{auto_id}", headers=ann)
        assert mine.status_code == 200 and "rounds" not in mine.json()
        assert http.get(f"/console/labeling/{auto_id}", headers=ann).status_code == 403

        page = http.get(f"/console/labeling/{auto_id}", headers=admin).text
        assert "<h2>Automated labeling</h2>" in page and WHY_NOT_MORE in page
        assert "<strong>embeddings</strong> 0.910" in page  # the chosen model and its validation accuracy
        assert '<td class="candidate" data-candidate="tfidf">0.820' in page
        assert "finetune skipped in round 2: needs 2,000 labels" in page
        assert '<td class="could">1200</td>' in page and '<td class="could">-</td>' in page  # new, old
        assert "1: 0.971, 0: -, -1: -" in page  # the old round's per-class thresholds
        plain_page = http.get(f"/console/labeling/{plain_id}", headers=admin).text
        assert "Automated labeling" not in plain_page


def test_a_job_of_twelve_categories_gives_keys_to_the_first_ten(store: Store) -> None:
    workforce.create_team(store, "labelers")
    workforce.create_worker(store, "ann@example.com", teams=("labelers",))
    ann = bearer(workforce.create_token(store, "ann@example.com", "api"))
    admin = bearer(admin_token(store))
    twelve = [{"label": f"domain{i}"} for i in range(1, 13)]
    with background_server(store) as (url, _), httpx.Client(base_url=url) as http:
        made = http.post("/api/v1/labeling/jobs", json={**_job(3, 1), "categories": twelve}, headers=admin)
        assert made.status_code == 201, made.text
        page = http.get(f"/label/jobs/{made.json()['id']}", headers=ann).text
        assert 'data-label="domain9" data-key="9"' in page and 'data-label="domain10" data-key="0"' in page
        assert 'data-label="domain11">' in page  # no key: a click or Tab answers it
        assert "Keys: 1–9 and 0 answer" in page
        too_many = {**_job(3, 1, "wide"), "categories": [{"label": f"c{i}"} for i in range(21)]}
        refused = http.post("/api/v1/labeling/jobs", json=too_many, headers=admin)
        assert refused.status_code == 400 and "2 to 20 categories" in refused.json()["error"]["message"]
