"""Labeling jobs on SQLite and PostgreSQL: manifests checked whole, N workers per item, holds that expire,
answers stored once, skip and undo, progress, and the counters right under concurrent workers."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from loopwise.errors import LabelingError, ManifestError, NotFoundError
from loopwise.labeling import service
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.labeling.manifest import dataset_items, read_manifest
from loopwise.labeling.records import Category
from loopwise.storage import Store
from loopwise.storage.tables import LabelingAssignmentRow, LabelingItemRow, LabelingJobRow
from loopwise.workforce import service as workforce
from loopwise.workforce.records import Worker

LABELS = [c.label for c in COURSE_CATEGORIES]


def _manifest(tmp_path: Path, lines: list[str], name: str = "input.manifest") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _team(store: Store, size: int, team: str = "labelers") -> list[Worker]:
    workforce.create_team(store, team)
    return [workforce.create_worker(store, f"w{i}@example.com", teams=(team,))[0] for i in range(size)]


def _job(store: Store, count: int, *, per_item: int = 2, blind: bool = True, limit: int = 300) -> int:
    items = [{"source": f"review number {i}", "id": i} for i in range(count)]
    path = Path(store.settings.home) / "items.manifest"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    job = service.create_job(
        store,
        "reviews-sentiment",
        read_manifest(path),
        team="labelers",
        categories=list(COURSE_CATEGORIES),
        workers_per_item=per_item,
        task_time_limit_s=limit,
        blind=blind,
    )
    return job.id


def test_a_malformed_manifest_is_refused_by_line_and_nothing_is_imported(
    store: Store, tmp_path: Path
) -> None:
    _team(store, 1)
    good = _manifest(tmp_path, ['{"source": "I love it", "id": 1}', "", '{"source": "meh", "id": 2}'])
    items = read_manifest(good)
    assert [(i.position, i.source, i.extra) for i in items] == [
        (1, "I love it", {"id": 1}),
        (3, "meh", {"id": 2}),
    ]
    cases = {
        "line 2: not JSON": ['{"source": "fine"}', '{"source": "broken'],
        "line 3: no 'source' field (it has text)": ['{"source": "a"}', '{"source": "b"}', '{"text": "c"}'],
        "line 1: 'source' is empty": ['{"source": "   "}'],
        "line 2: 'source' must be a string of text, not int": ['{"source": "a"}', '{"source": 5}'],
        "line 1: a JSON list": ['["source"]'],
        "source-ref (a file to fetch) is not read": ['{"source-ref": "s3://bucket/a.txt"}'],
    }
    for expected, lines in cases.items():
        with pytest.raises(ManifestError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            read_manifest(_manifest(tmp_path, lines))
    many = _manifest(tmp_path, ['{"text": 1}'] * 8)
    with pytest.raises(ManifestError, match=r"line 5: .*\(and 3 more\)"):
        read_manifest(many)
    csv_path = tmp_path / "items.csv"
    csv_path.write_text("id,review\n1,great dress\n2,\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"no column 'source' .*columns: id, review.*--text-field"):
        read_manifest(csv_path)
    with pytest.raises(ManifestError, match="line 3: 'review' is empty"):
        read_manifest(csv_path, text_field="review")
    csv_path.write_text("id,review\n1,great dress\n2,too small\n", encoding="utf-8")
    assert [(i.position, i.source, i.extra) for i in read_manifest(csv_path, text_field="review")] == [
        (2, "great dress", {"id": "1"}),
        (3, "too small", {"id": "2"}),
    ]
    # bad settings are refused before anything is stored, too
    for bad, message in (
        ({"workers_per_item": 10}, "workers per item: 1 to 9"),
        ({"task_time_limit_s": 5}, "task time limit: 30 to 28800"),
        ({"categories": [Category("only")]}, "2 to 20 categories"),
        ({"categories": [Category(f"c{i}") for i in range(21)]}, "2 to 20 categories.*got 21"),
        ({"categories": [Category("a"), Category("a")]}, "repeat a label"),
        ({"team": "nobody"}, "no team 'nobody'"),
    ):
        settings = {"team": "labelers", "categories": list(COURSE_CATEGORIES), **bad}
        with pytest.raises((LabelingError, NotFoundError), match=message):
            service.create_job(store, "job", items, **settings)  # type: ignore[arg-type]
    with store.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(LabelingJobRow)) == 0
        assert uow.session.scalar(select(func.count()).select_from(LabelingItemRow)) == 0


def test_a_data_set_split_becomes_a_job_with_its_labels_kept_hidden(store: Store, import_small) -> None:  # type: ignore[no-untyped-def]
    ref = import_small(store)
    items = dataset_items(store, ref, "validation")
    assert len(items) == 18 and {i.extra["dataset_label"] for i in items} == {"-1", "0", "1"}
    with pytest.raises(NotFoundError, match="has no split 'dev'"):
        dataset_items(store, ref, "dev")


def test_items_get_exactly_their_answers_and_a_second_submit_is_refused(store: Store) -> None:
    ann, bob, cy = _team(store, 3)
    job_id = _job(store, 3, per_item=2, blind=False)
    first = service.next_tasks(store, ann, job_id)
    assert [t.position for t in first] == [1]
    again = service.next_tasks(store, ann, job_id, have=(first[0].assignment_id,))
    assert [t.position for t in again] == [2]  # the prefetched next item
    assert service.next_tasks(store, ann, job_id, have=(first[0].assignment_id, again[0].assignment_id)) == []
    assert service.next_tasks(store, ann, job_id) == first + again  # a reload gets the same holds back
    answer = service.submit(store, ann, first[0].assignment_id, "1")
    assert answer.label == "1" and answer.position == 1 and answer.seconds is not None
    with pytest.raises(LabelingError, match="submitted already"):
        service.submit(store, ann, first[0].assignment_id, "0")
    with pytest.raises(LabelingError, match="'7' is not a category"):
        service.submit(store, ann, again[0].assignment_id, "7")
    with pytest.raises(NotFoundError, match="no assignment"):
        service.submit(store, bob, again[0].assignment_id, "1")  # not his
    # bob sees item 1 with ann's answer (the job is not blind), and item 2 is held by ann
    (for_bob,) = service.next_tasks(store, bob, job_id, have=())[:1]
    assert for_bob.position == 1 and for_bob.others == ("1",)
    service.submit(store, bob, for_bob.assignment_id, "0")
    # item 1 has its two answers: cy never sees it
    seen = [t.position for t in service.next_tasks(store, cy, job_id)]
    assert 1 not in seen
    with store.uow() as uow:
        counters = uow.labeling.item_counters(job_id)
    assert counters[0] == (1, 2, 0, "complete")
    assert [a.label for a in service.answers(store, ann, job_id)] == ["1"]  # her own answers only
    assert {a.worker for a in service.answers(store, bob, job_id)} == {bob.email}


def test_holds_expire_and_go_back_to_the_queue_skips_and_undo(store: Store) -> None:
    ann, bob, cy = _team(store, 3)
    job_id = _job(store, 2, per_item=1, limit=30)
    now = datetime.now(UTC)
    held = service.next_tasks(store, ann, job_id, now=now)
    assert [t.position for t in held] == [1, 2][: len(held)] and len(held) == 1
    assert len(service.next_tasks(store, ann, job_id, have=(held[0].assignment_id,), now=now)) == 1
    assert service.next_tasks(store, bob, job_id, now=now) == []  # both items held by ann, one answer each
    later = now + timedelta(seconds=31)
    with pytest.raises(LabelingError, match="time limit for this item ran out"):
        service.submit(store, ann, held[0].assignment_id, "1", now=later)
    # past the time limit both holds end; bob gets the items
    for_bob = service.next_tasks(store, bob, job_id, now=later)
    assert [t.position for t in for_bob] == [1]
    service.skip(store, bob, for_bob[0].assignment_id, now=later)
    with pytest.raises(LabelingError, match="skipped"):
        service.submit(store, bob, for_bob[0].assignment_id, "1", now=later)
    # a skipped item never comes back to bob; it goes to ann again
    positions = [t.position for t in service.next_tasks(store, bob, job_id, now=later)]
    assert positions == [2]
    (bob_two,) = service.next_tasks(store, bob, job_id, now=later)
    service.submit(store, bob, bob_two.assignment_id, "-1", now=later)
    assert service.next_tasks(store, bob, job_id, now=later) == []
    (ann_one,) = service.next_tasks(store, ann, job_id, now=later)
    assert ann_one.position == 1 and ann_one.assignment_id == held[0].assignment_id  # her row, renewed
    service.submit(store, ann, ann_one.assignment_id, "1", now=later)
    assert service.find_job(store, "reviews-sentiment").status == "Completed"
    # undo: the latest answer comes back to its worker; the job takes answers again
    undone = service.undo(store, ann, job_id, now=later)
    assert undone.position == 1 and service.find_job(store, "reviews-sentiment").status == "InProgress"
    service.submit(store, ann, undone.assignment_id, "0", now=later)
    assert [a.label for a in service.answers(store, ann, job_id)] == ["0"]
    with pytest.raises(LabelingError, match="no answer of yours to undo"):
        service.undo(store, cy, job_id, now=later)


def test_a_job_past_its_lifetime_expires_and_other_teams_never_see_it(store: Store) -> None:
    (ann,) = _team(store, 1)
    workforce.create_team(store, "others")
    outsider, _ = workforce.create_worker(store, "out@example.com", teams=("others",))
    job_id = _job(store, 2)
    with pytest.raises(NotFoundError, match="among yours"):
        service.next_tasks(store, outsider, job_id)
    assert service.visible_jobs(store, outsider) == []
    assert [j.id for j in service.visible_jobs(store, ann)] == [job_id]
    later = datetime.now(UTC) + timedelta(days=11)
    assert service.next_tasks(store, ann, job_id, now=later) == []
    assert service.find_job(store, "reviews-sentiment").status == "Expired"


def test_concurrent_workers_never_over_assign_or_duplicate(store: Store) -> None:
    workers = _team(store, 10)
    per_item, count = 3, 24
    job_id = _job(store, count, per_item=per_item)
    refused: list[str] = []
    errors: list[BaseException] = []

    def work(worker: Worker, seed: int) -> None:
        rng = random.Random(seed)
        try:
            while True:
                tasks = service.next_tasks(store, worker, job_id)
                if not tasks:
                    return
                task = tasks[0]
                # now and then the same answer is sent twice at once (a double click, a retry)
                label = rng.choice(LABELS)
                if rng.random() < 0.2:
                    twice = [
                        threading.Thread(
                            target=_try, args=(store, worker, task.assignment_id, label, refused)
                        )
                        for _ in range(2)
                    ]
                    for thread in twice:
                        thread.start()
                    for thread in twice:
                        thread.join()
                else:
                    service.submit(store, worker, task.assignment_id, label)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w, i)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors
    with store.uow() as uow:
        rows = uow.session.execute(
            select(LabelingAssignmentRow.item_id, LabelingAssignmentRow.worker_id).where(
                LabelingAssignmentRow.state == "submitted"
            )
        ).all()
        counters = uow.labeling.item_counters(job_id)
    per_item_answers = Counter(item for item, _ in rows)
    assert len(rows) == len(set(rows)) == count * per_item  # nothing duplicated, nothing lost
    assert set(per_item_answers.values()) == {per_item}
    assert all(c == (c[0], per_item, 0, "complete") for c in counters)
    assert all("submitted already" in r for r in refused), set(refused)
    assert service.find_job(store, "reviews-sentiment").status == "Completed"
    figures = service.progress(store, service.find_job(store, "reviews-sentiment"))
    assert figures.answers == figures.answers_needed == count * per_item and figures.complete == count
    assert sum(w.answers for w in figures.workers) == count * per_item


def _try(store: Store, worker: Worker, assignment_id: int, label: str, refused: list[str]) -> None:
    try:
        service.submit(store, worker, assignment_id, label)
    except LabelingError as exc:
        refused.append(str(exc))
