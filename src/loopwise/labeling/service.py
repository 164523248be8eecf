"""Labeling jobs' services: create a job from a manifest, hand workers the next item, take their
answers once, skip and undo, expire holds and jobs, and report progress.

Assignment. A worker asking for work first gets back the live holds they already have (a reload loses
nothing); with fewer than ``MAX_HOLDS`` (the item on screen and the next, prefetched) they get a new hold
on the first item in manifest order that still needs answers and that they have not seen. Taking a hold
is a conditional UPDATE of the item's counters (``answers + holds < workers per item``), so no item is
ever held or answered by more workers than it needs, whatever the concurrency, on SQLite and PostgreSQL;
(item, worker) is unique, so nobody answers an item twice. Holds end after the job's task time limit and
their item goes back to the queue; an answer to an expired or already submitted hold is refused.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from loopwise.errors import AnswerRefusedError, LabelingError, NotFoundError, PermissionDeniedError
from loopwise.labeling.jobs import MAX_WORKERS_PER_ITEM, TASK_TIME_LIMIT_S, check_categories, check_name
from loopwise.labeling.lookup import find_job as find_job
from loopwise.labeling.lookup import job_for as job_for
from loopwise.labeling.lookup import visible
from loopwise.labeling.lookup import visible_jobs as visible_jobs
from loopwise.labeling.records import Answer, Assignment, Category, LabelingJob, Progress, Task, WorkerFigures

if TYPE_CHECKING:
    from loopwise.labeling.planning import AutoLabelSettings
    from loopwise.labeling.records import ManifestItem, Review
    from loopwise.storage import Store
    from loopwise.storage.session import UnitOfWork
    from loopwise.workforce.records import Worker

#: live holds a worker may have in one job: the item on screen and the next one, prefetched
MAX_HOLDS = 2
#: items tried per request for a hold before giving up (each taken by someone else meanwhile)
CANDIDATES = 16
DEFAULT_LIFETIME = timedelta(days=10)
SWEEP_EVERY = timedelta(seconds=1)
#: the course's one-line instruction, shown above every item of a job made without categories
COURSE_SHORT_INSTRUCTIONS = "Choose the sentiment of the review."


def create_job(
    store: Store,
    name: str,
    items: list[ManifestItem],
    *,
    team: str,
    categories: list[Category],
    title: str | None = None,
    short_instructions: str = "",
    full_instructions: str = "",
    workers_per_item: int = 1,
    task_time_limit_s: int = 300,
    lifetime: timedelta = DEFAULT_LIFETIME,
    blind: bool = True,
    source: str = "",
    created_by: Worker | None = None,
    auto_label: AutoLabelSettings | None = None,
) -> LabelingJob:
    """A new job over ``items`` (already checked whole: see :mod:`loopwise.labeling.manifest`), in one
    transaction: either every item is stored or none. With ``auto_label``, people get a random seed set
    first and a model labels what it can reach the target accuracy on (:mod:`loopwise.labeling.auto`)."""
    check_name(name)
    check_categories(categories)
    if not 1 <= workers_per_item <= MAX_WORKERS_PER_ITEM:
        raise LabelingError(f"workers per item: 1 to {MAX_WORKERS_PER_ITEM}, got {workers_per_item}")
    low, high = TASK_TIME_LIMIT_S
    if not low <= task_time_limit_s <= high:
        raise LabelingError(f"task time limit: {low} to {high} seconds, got {task_time_limit_s}")
    if not timedelta(minutes=1) <= lifetime <= timedelta(days=30):
        raise LabelingError(f"availability lifetime: 1 minute to 30 days, got {lifetime}")
    if not items:
        raise LabelingError("a job needs at least one item")
    from loopwise.labeling.auto import initial_pools

    with store.uow() as uow:
        if uow.labeling.find_job(name) is not None:
            raise LabelingError(f"a labeling job {name!r} exists already: pick another name")
        found = uow.workforce.find_team(team)
        if found is None:
            raise NotFoundError(f"no team {team!r}; make it with `loopwise workforce team create {team}`")
        job_id = uow.labeling.add_job(
            team_id=found.id,
            created_by=created_by.id if created_by else None,
            items=items,
            initial=initial_pools(len(items), auto_label) if auto_label else None,
            auto_label=auto_label.to_dict() if auto_label else None,
            name=name,
            title=title or name,
            categories=categories,
            short_instructions=short_instructions,
            full_instructions=full_instructions,
            workers_per_item=workers_per_item,
            task_time_limit_s=task_time_limit_s,
            expires_at=datetime.now(UTC) + lifetime,
            blind=blind,
            source=source[:1000],
        )
        return uow.labeling.job(job_id)


def create_labeling_job(
    store: Store,
    name: str,
    *,
    team: str,
    items: list[ManifestItem] | None = None,
    dataset: str | None = None,
    split: str = "train",
    source: str = "",
    categories: list[Category] | None = None,
    title: str | None = None,
    short_instructions: str | None = None,
    full_instructions: str = "",
    workers_per_item: int = 1,
    task_time_limit_s: int = 300,
    lifetime: timedelta = DEFAULT_LIFETIME,
    blind: bool = True,
    created_by: Worker | None = None,
    auto_label: AutoLabelSettings | None = None,
) -> LabelingJob:
    """A new job, as ``loopwise label job create`` and ``POST /api/v1/labeling/jobs`` make it from what
    they parsed: over a manifest's ``items`` (checked whole; ``source`` says where they came from) or
    over a registered ``dataset``'s ``split``, one of the two. Without ``categories``, the job is the
    course's: its sentiment categories, and its title and instructions where none are given."""
    from loopwise.labeling.jobs import COURSE_CATEGORIES, COURSE_FULL_INSTRUCTIONS, COURSE_TITLE
    from loopwise.labeling.manifest import dataset_items

    if (items is None) == (dataset is None):
        raise LabelingError("label a manifest's items or a data set's split: give one of the two")
    course = categories is None
    if items is None:
        assert dataset is not None
        items = dataset_items(store, dataset, split)
        source = f"{dataset} {split}"
    if short_instructions is None:
        short_instructions = COURSE_SHORT_INSTRUCTIONS if course else ""
    return create_job(
        store,
        name,
        items,
        team=team,
        categories=list(COURSE_CATEGORIES) if categories is None else categories,
        title=title or (COURSE_TITLE if course else None),
        short_instructions=short_instructions,
        full_instructions=full_instructions or (COURSE_FULL_INSTRUCTIONS if course else ""),
        workers_per_item=workers_per_item,
        task_time_limit_s=task_time_limit_s,
        lifetime=lifetime,
        blind=blind,
        source=source,
        created_by=created_by,
        auto_label=auto_label,
    )


def warm(store: Store, connections: int = 4) -> None:
    """Ready the database for workers' requests: ``connections`` pooled connections opened and the
    requests' reads compiled (the server calls this at start; the first 50 workers arriving at once
    otherwise waited 100-230 ms on PostgreSQL for connections and compilation)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> None:
        with store.uow() as uow:
            uow.labeling.warm()

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(one, range(connections)))


def all_progress(store: Store) -> list[Progress]:
    """The progress of every labeling job (an admin's view, as the CLI shows it)."""
    with store.uow() as uow:
        jobs = uow.labeling.jobs()
    return [progress(store, job) for job in jobs]


def visible_progress(store: Store, worker: Worker) -> list[Progress]:
    """The progress of every job ``worker`` may see (:func:`visible_jobs`)."""
    return [progress(store, job) for job in visible_jobs(store, worker)]


def job_progress(store: Store, worker: Worker, job_id: int) -> Progress:
    """The progress of the job, when ``worker`` may see it (:func:`job_for`)."""
    return progress(store, job_for(store, worker, job_id))


def stop_visible_job(store: Store, worker: Worker, job_id: int) -> LabelingJob:
    """Stop the job, when ``worker`` may see it (:func:`job_for`, :func:`stop_job`)."""
    return stop_job(store, job_for(store, worker, job_id).name)


def find_job_label_errors(store: Store, worker: Worker, job_id: int) -> list[Review]:
    """cleanlab's likely wrong labels of the job ``worker`` may see, each opened as a review
    (:func:`loopwise.labeling.label_errors.find_label_errors`)."""
    from loopwise.labeling.label_errors import find_label_errors

    return find_label_errors(store, job_for(store, worker, job_id).name)


def next_tasks(
    store: Store, worker: Worker, job_id: int, *, have: tuple[int, ...] = (), now: datetime | None = None
) -> list[Task]:
    """The worker's live holds not in ``have`` (assignment ids the page shows already) and, when they
    hold fewer than MAX_HOLDS, a new one; empty when nothing is left for them. One transaction."""
    now = now or datetime.now(UTC)
    with store.uow() as uow:
        job = visible(uow, worker, job_id)
        if job.status != "InProgress":
            return []
        if job.expires_at <= now:  # past its lifetime
            uow.labeling.set_status(job.id, "Expired", when="InProgress")
            return []
        if _sweep_due(job.id, now):
            uow.labeling.release_expired(job.id, now)
        held = uow.labeling.live_holds(job.id, worker.id, now)
        if len(held) < MAX_HOLDS:
            expires_at = now + timedelta(seconds=job.task_time_limit_s)
            for candidate in uow.labeling.candidates(job.id, worker.id, job.workers_per_item, CANDIDATES):
                taken = uow.labeling.take(job.id, candidate, worker.id, job.workers_per_item, expires_at)
                if taken is not None:
                    held.append(taken)
                    break
        fresh = [t for t in held if t.assignment_id not in have]
        if not job.blind:
            fresh = [_with_others(uow, t, worker.id) for t in fresh]
        return fresh


#: when each job's expired holds were last released by this process (by the requests' clock)
_last_sweep: dict[int, datetime] = {}


def _sweep_due(job_id: int, now: datetime) -> bool:
    """Whether to release the job's expired holds now: at most once a second per job and process (a
    write on every request would serialise them all on SQLite); an item whose hold expired is held by
    nobody, so the second's delay only keeps it from the queue a little longer."""
    last = _last_sweep.get(job_id)
    if last is not None and timedelta(0) <= now - last < SWEEP_EVERY:
        return False
    if len(_last_sweep) > 10_000:
        _last_sweep.clear()
    _last_sweep[job_id] = now
    return True


def submit(
    store: Store, worker: Worker, assignment_id: int, label: str, *, now: datetime | None = None
) -> Answer:
    """Store the worker's answer to their hold, once; a second submit, an expired hold or a label the
    job does not have is refused (:class:`LabelingError`) and changes nothing. One transaction."""
    now = now or datetime.now(UTC)
    with store.uow() as uow:
        found = uow.labeling.assignment(assignment_id)
        if found is None or found.worker_id != worker.id:
            raise NotFoundError(f"no assignment {assignment_id} of yours")
        job = uow.labeling.job(found.job_id)
        if label not in job.labels:
            raise LabelingError(f"{label!r} is not a category of job {job.name}: {', '.join(job.labels)}")
        if found.state != "held":
            raise AnswerRefusedError(found.why_not_held(now))
        if job.status != "InProgress":
            raise AnswerRefusedError(f"job {job.name} is {job.status}: it takes no more answers")
        outcome = uow.labeling.submit(assignment_id, worker.id, label, now, job.workers_per_item)
        if outcome is None:
            raise _refusal(uow, assignment_id, now)
        seconds, item_complete = outcome
    if item_complete:
        # after the commit: two last answers committed at once on PostgreSQL each saw the other's item
        # still open from inside their transactions, and the job stayed InProgress; the later of two
        # checks made after their commits sees both
        with store.uow() as uow:
            # an automated labeling job ends with its last round's consolidation (labeling.auto), and a
            # flow definition's job takes new loops as long as the flow lives
            if (
                not uow.labeling.open_items(job.id)
                and uow.labels.auto_label(job.id) is None
                and not uow.labeling.takes_new_items(job.id)
            ):
                uow.labeling.set_status(job.id, "Completed", when="InProgress")
    task = found.task
    return Answer(assignment_id, task.item_id, task.position, worker.email, label, now, seconds)


def skip(store: Store, worker: Worker, assignment_id: int, *, now: datetime | None = None) -> None:
    """Give the hold back without an answer: the item goes to others, never again to this worker."""
    now = now or datetime.now(UTC)
    _assignment(store, worker, assignment_id)
    with store.uow() as uow:
        if not uow.labeling.skip(assignment_id, worker.id, now):
            raise _refusal(uow, assignment_id, now)


def undo(store: Store, worker: Worker, job_id: int, *, now: datetime | None = None) -> Task:
    """Take back the worker's latest answer in the job: its item is held for them again, to answer anew."""
    now = now or datetime.now(UTC)
    job = job_for(store, worker, job_id)
    if job.status not in ("InProgress", "Completed") or job.expires_at <= now:
        raise AnswerRefusedError(f"job {job.name} is {job.status}: answers can no longer change")
    with store.uow() as uow:
        task = uow.labeling.undo_last(job.id, worker.id, now, timedelta(seconds=job.task_time_limit_s))
        if task is None:
            raise AnswerRefusedError("no answer of yours to undo in this job")
        uow.labeling.set_status(job.id, "InProgress", when="Completed")
        return task


def answers(store: Store, worker: Worker, job_id: int, *, everyone: bool = False) -> list[Answer]:
    """The worker's own answers, or (``everyone``, for reviewers and admins) all of the job's."""
    job = job_for(store, worker, job_id)
    if everyone and not worker.can("review"):
        raise PermissionDeniedError(f"the {worker.role} role sees only its own answers")
    with store.uow() as uow:
        return uow.labeling.answers(job.id, None if everyone else worker.id)


def stop_job(store: Store, name: str) -> LabelingJob:
    job = find_job(store, name)
    with store.uow() as uow:
        uow.labeling.set_status(job.id, "Stopped", when="InProgress")
        return uow.labeling.job(job.id)


def progress(store: Store, job: LabelingJob, *, now: datetime | None = None) -> Progress:
    """Items done, answers against those needed, holds now, and per worker: answers, skips, the median
    time an answer took, answers per hour and agreement with the other workers' majority."""
    now = now or datetime.now(UTC)
    _in_progress(store, job, now)
    with store.uow() as uow:
        job = uow.labeling.job(job.id)
        counts = uow.labeling.counts(job.id, now)
        given = uow.labeling.answers(job.id)
    by_item: dict[int, list[Answer]] = defaultdict(list)
    by_worker: dict[str, list[Answer]] = defaultdict(list)
    for answer in given:
        by_item[answer.item_id].append(answer)
        by_worker[answer.worker].append(answer)
    skipped = {key.split(":", 1)[1]: n for key, n in counts.items() if key.startswith("skipped:")}
    figures = []
    for email in sorted(set(by_worker) | set(skipped)):
        mine = by_worker.get(email, [])
        times = [a.seconds for a in mine if a.seconds is not None]
        span = (
            (max(a.submitted_at for a in mine) - min(a.submitted_at for a in mine)).total_seconds()
            if mine
            else 0
        )
        agreed = compared = 0
        for answer in mine:
            others = Counter(a.label for a in by_item[answer.item_id] if a.worker != email)
            if others:
                top = max(others.values())
                compared += 1
                agreed += others[answer.label] == top and list(others.values()).count(top) == 1
        figures.append(
            WorkerFigures(
                worker=email,
                answers=len(mine),
                skipped=skipped.get(email, 0),
                median_seconds=round(statistics.median(times), 2) if times else None,
                per_hour=round(len(mine) / span * 3600, 1) if span > 0 else None,
                agreement=round(agreed / compared, 3) if compared else None,
            )
        )
    return Progress(
        job=job,
        items=counts["items"],
        complete=counts["complete"],
        answers=counts["answers"],
        answers_needed=(counts["items"] - counts["waiting"] - counts["machine"]) * job.workers_per_item,
        machine_labeled=counts["machine"],
        waiting=counts["waiting"],
        held_now=counts["held_now"],
        workers=tuple(figures),
    )


def _in_progress(store: Store, job: LabelingJob, now: datetime) -> bool:
    """Whether the job takes work now; a job past its lifetime becomes Expired."""
    if job.status == "InProgress" and job.expires_at <= now:
        with store.uow() as uow:
            uow.labeling.set_status(job.id, "Expired", when="InProgress")
        return False
    return job.status == "InProgress"


def _assignment(store: Store, worker: Worker, assignment_id: int) -> tuple[LabelingJob, Assignment]:
    with store.uow() as uow:
        found = uow.labeling.assignment(assignment_id)
        if found is None or found.worker_id != worker.id:
            raise NotFoundError(f"no assignment {assignment_id} of yours")
        return uow.labeling.job(found.job_id), found


def _refusal(uow: UnitOfWork, assignment_id: int, now: datetime) -> AnswerRefusedError:
    found = uow.labeling.assignment(assignment_id)
    return AnswerRefusedError(found.why_not_held(now) if found else f"no assignment {assignment_id}")


def _with_others(uow: UnitOfWork, task: Task, worker_id: int) -> Task:
    return replace(task, others=tuple(uow.labeling.others(task.item_id, worker_id)))
