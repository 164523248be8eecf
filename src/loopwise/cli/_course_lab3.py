"""Labeling with a private workforce, as a step of the main job (the labeling half of the course's Lab 3):
a team and three workers (created with temporary passwords, as the course's user pool does), a labeling
job over reviews of the test split with the course's categories and instructions, three workers per item,
the workers answering through the labeling API of a real server on 127.0.0.1 (simulated: each answers the
review's true sentiment except at their own error rate, one of them careless), Dawid-Skene consolidation
with each worker's estimated quality and the agreement, likely wrong labels flagged by cleanlab into the
review queue, Ground Truth's output manifest, and the labels as a new data set version."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from loopwise.cli._common import console

if TYPE_CHECKING:
    from loopwise.storage import Store

TEAM = "course-labelers"
#: the simulated workers and how often each answers wrong
WORKERS = {"ana@loopwise.local": 0.05, "ben@loopwise.local": 0.15, "cy@loopwise.local": 0.45}
ITEMS = 90


@dataclass(frozen=True)
class LabelingOutcome:
    job: str
    manifest: Path
    dataset: str
    accuracy: float


def course_labeling(store: Store, dataset_ref: str) -> LabelingOutcome:
    from loopwise.app import background_server
    from loopwise.labeling import service
    from loopwise.labeling.jobs import COURSE_CATEGORIES, COURSE_FULL_INSTRUCTIONS, COURSE_TITLE
    from loopwise.labeling.label_errors import find_label_errors
    from loopwise.labeling.manifest import dataset_items
    from loopwise.labeling.output import consolidate_job, export_job, labeled_items, to_dataset
    from loopwise.workforce import service as workforce

    known = {w.email for w in workforce.list_workers(store)}
    if workforce.find_team(store, TEAM) is None:
        workforce.create_team(store, TEAM)
    tokens = {}
    for email in WORKERS:
        if email not in known:
            workforce.create_worker(store, email, teams=(TEAM,))
            console.print(f"worker {email} created in team {TEAM} (a temporary password, changed at sign-in)")
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        tokens[email] = workforce.create_token(store, email, f"course-{stamp}")
    items = dataset_items(store, dataset_ref, "test")[:ITEMS]
    truth = {item.position: item.extra["dataset_label"] for item in items}
    name = f"course-lab3-{datetime.now(UTC):%Y%m%d%H%M%S}"
    job = service.create_job(
        store, name, items, team=TEAM, categories=list(COURSE_CATEGORIES), title=COURSE_TITLE,
        short_instructions="Choose the sentiment of the review.", full_instructions=COURSE_FULL_INSTRUCTIONS,
        workers_per_item=3, source=f"{dataset_ref} test",
    )  # fmt: skip
    console.print(f"labeling job {name}: {len(items)} reviews, 3 workers per item, team {TEAM}")
    with background_server(store) as (url, _):
        threads = [
            threading.Thread(target=_simulated_worker, args=(url, token, job.id, truth, WORKERS[email], i))
            for i, (email, token) in enumerate(tokens.items())
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
    figures = service.progress(store, service.find_job(store, name))
    console.print(f"{figures.answers} answers over HTTP, {figures.complete}/{figures.items} items complete")
    result, _ = consolidate_job(store, name, "dawid-skene")
    quality = ", ".join(f"{w} {q:.0%}" for w, q in sorted(result.worker_quality.items()))
    console.print(
        f"Dawid-Skene: worker quality {quality}; Krippendorff's alpha {result.krippendorff_alpha:.3f}, "
        f"Fleiss' kappa {result.fleiss_kappa:.3f}",
        highlight=False,
    )
    labeled = labeled_items(store, service.find_job(store, name))
    accuracy = sum(i.label == truth[i.position] for i in labeled) / len(labeled)
    console.print(f"consolidated labels agree with the data set's sentiment on {accuracy:.1%} of the reviews")
    flagged = find_label_errors(store, name)
    console.print(
        f"cleanlab flagged {len(flagged)} likely wrong labels into the review queue (/review/jobs/{job.id})"
    )
    _, manifest = store.artifacts.write_with(
        f"labeling/{name}/output",
        lambda folder: (export_job(store, name, folder / "output.manifest"), folder / "output.manifest"),
    )
    version = to_dataset(store, name, "course-lab3-labels")
    console.print(f"output manifest: {manifest}; new data set version {version.ref}", highlight=False)
    return LabelingOutcome(name, manifest, version.ref, accuracy)


def _simulated_worker(
    url: str, token: str, job_id: int, truth: dict[int, str], error_rate: float, seed: int
) -> None:
    """One worker labeling over HTTP until nothing is left for them."""
    import httpx

    rng = random.Random(seed)
    labels = ["1", "0", "-1"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        while tasks := http.post(f"/api/v1/labeling/jobs/{job_id}/next", json={}).json()["tasks"]:
            task = tasks[0]
            right = truth[task["position"]]
            answer = right if rng.random() >= error_rate else rng.choice([x for x in labels if x != right])
            http.post(f"/api/v1/labeling/assignments/{task['assignment_id']}/submit", json={"label": answer})
