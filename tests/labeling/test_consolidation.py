"""Consolidation: Fleiss' kappa and Krippendorff's alpha on worked examples, majority vote with its
tie-break, Dawid-Skene finding the careless workers, and a job's results as Ground Truth's output
manifest, CSV, JSON lines and a new data set version (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from loopwise.errors import LabelingError
from loopwise.labeling import service
from loopwise.labeling.consolidation import Vote, consolidate, fleiss_kappa, krippendorff_alpha
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.labeling.manifest import parse_records
from loopwise.labeling.output import consolidate_job, export_job, to_dataset
from loopwise.storage import Store
from loopwise.workforce import service as workforce

LABELS = ["1", "0", "-1"]


def test_fleiss_kappa_matches_the_worked_example() -> None:
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories: kappa 0.210
    table = np.array(
        [
            [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
        ]
    )  # fmt: skip
    assert fleiss_kappa(table, 14) == pytest.approx(0.2099, abs=1e-4)
    assert fleiss_kappa(table[:1], 14) is None  # one item: undefined


def test_krippendorff_alpha_by_hand() -> None:
    # two coders on four units: (a,a) (a,b) (b,b) (b,b): alpha = 1 - 7 * 2 / (2 * 3 * 5) = 0.5333
    counts = np.array([[2, 0], [1, 1], [0, 2], [0, 2]])
    assert krippendorff_alpha(counts) == pytest.approx(1 - 14 / 30)
    assert krippendorff_alpha(np.array([[2, 0], [0, 2]])) == pytest.approx(1.0)
    assert krippendorff_alpha(np.array([[1, 0], [0, 1]])) is None  # no unit with two answers


def test_majority_vote_with_its_confidence_and_tie_break() -> None:
    votes = [
        Vote(1, "a", "1"), Vote(1, "b", "1"), Vote(1, "c", "1"),
        Vote(2, "a", "-1"), Vote(2, "b", "0"),  # a tie: a agrees with the others more often than b
        Vote(3, "a", "-1"), Vote(3, "b", "0"), Vote(3, "c", "-1"), Vote(3, "d", "-1"),
    ]  # fmt: skip
    result = consolidate(votes, LABELS, "majority", per_item=3)
    # the tie goes to a's answer, not to the category listed first ("0")
    assert result.labels == {1: "1", 2: "-1", 3: "-1"}
    assert [result.confidence[i] for i in (1, 2, 3)] == pytest.approx([1.0, 0.5, 0.75])
    assert result.worker_quality["a"] == pytest.approx(2 / 3) and result.worker_quality["b"] == pytest.approx(
        1 / 3
    )
    with pytest.raises(LabelingError, match=r"answers outside the categories .*\['7'\]"):
        consolidate([Vote(1, "a", "7")], LABELS)
    with pytest.raises(LabelingError, match="unknown consolidation method 'mean'"):
        consolidate(votes, LABELS, "mean")  # type: ignore[arg-type]


def _simulated(items: int, accuracy: dict[str, float], seed: int = 0) -> tuple[list[Vote], dict[int, str]]:
    rng = random.Random(seed)
    truth = {i: rng.choice(LABELS) for i in range(items)}
    votes = []
    for i, label in truth.items():
        for worker, right in accuracy.items():
            answer = label if rng.random() < right else rng.choice([x for x in LABELS if x != label])
            votes.append(Vote(i, worker, answer))
    return votes, truth


def test_dawid_skene_finds_the_careless_workers_and_beats_the_majority() -> None:
    accuracy = {"good1": 0.9, "good2": 0.85, "spam1": 0.34, "spam2": 0.34, "spam3": 0.34}
    votes, truth = _simulated(400, accuracy)
    ds = consolidate(votes, LABELS, "dawid-skene", per_item=5)
    mv = consolidate(votes, LABELS, "majority", per_item=5)

    def right(labels: dict[int, str]) -> float:
        return sum(labels[i] == t for i, t in truth.items()) / len(truth)

    assert right(ds.labels) >= right(mv.labels) + 0.05  # three spammers sway the majority
    assert right(ds.labels) >= 0.88
    for worker, expected in accuracy.items():
        assert ds.worker_quality[worker] == pytest.approx(expected, abs=0.08), worker
    assert all(0 < c <= 1 for c in ds.confidence.values())
    assert ds.fleiss_kappa is not None and ds.krippendorff_alpha is not None
    assert -0.1 < ds.fleiss_kappa < 0.5  # mostly noise: low agreement, measured either way
    assert ds.krippendorff_alpha == pytest.approx(ds.fleiss_kappa, abs=0.05)


def test_a_jobs_results_as_output_manifest_csv_jsonl_and_a_data_set(store: Store, tmp_path: Path) -> None:
    workforce.create_team(store, "labelers")
    workers = [workforce.create_worker(store, f"w{i}@example.com", teams=("labelers",))[0] for i in range(3)]
    records: list[object] = [{"source": f"review {i}", "id": i} for i in range(6)]
    job = service.create_job(
        store, "course-job", parse_records(records, where="test"), team="labelers",
        categories=list(COURSE_CATEGORIES), workers_per_item=3,
    )  # fmt: skip
    with pytest.raises(LabelingError, match="no complete items to consolidate yet"):
        consolidate_job(store, "course-job")
    truth = {i: LABELS[i % 3] for i in range(6)}
    for worker in workers:
        while tasks := service.next_tasks(store, worker, job.id):
            position = tasks[0].position
            wrong = worker.email == "w2@example.com" and position == 1  # one dissent
            service.submit(store, worker, tasks[0].assignment_id, "-1" if wrong else truth[position - 1])
    result, report = consolidate_job(store, "course-job", "majority")
    assert json.loads(report.read_text())["method"] == "majority" and len(result.labels) == 6
    manifest = tmp_path / "out" / "output.manifest"
    assert export_job(store, "course-job", manifest) == 6
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    first = lines[0]
    assert first["source"] == "review 0" and first["id"] == 0 and first["course-job"] == 0  # index of "1"
    meta = first["course-job-metadata"]
    assert meta["class-name"] == "1" and meta["confidence"] == pytest.approx(0.6667, abs=1e-4)
    assert meta["human-annotated"] == "yes" and meta["job-name"] == "labeling-job/course-job"
    assert meta["type"] == "groundtruth/text-classification" and meta["creation-date"][:4].isdigit()
    assert [line["course-job-metadata"]["class-name"] for line in lines] == [truth[i] for i in range(6)]
    export_job(store, "course-job", tmp_path / "out.csv", "csv")
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r["label"] for r in rows] == [truth[i] for i in range(6)] and rows[0]["answers"] == "3"
    export_job(store, "course-job", tmp_path / "out.jsonl", "jsonl")
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 6
    with pytest.raises(LabelingError, match="unknown format 'xml'"):
        export_job(store, "course-job", tmp_path / "out.xml", "xml")  # type: ignore[arg-type]
    version = to_dataset(store, "course-job", "relabeled", train=0.5, validation=0.25, test=0.25)
    assert version.labels == ["1", "0", "-1"] and sum(s.rows for s in version.splits.values()) == 6
