"""Automated labeling: the Clopper-Pearson bound, per-class thresholds by fixed-sequence testing, the
selection strategies, and whole jobs on SQLite and PostgreSQL where simulated people label the seed and
each batch while the machine labels the rest (rounds run by hand and by the server)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from loopwise.app import background_server
from loopwise.errors import LabelingError
from loopwise.labeling import service
from loopwise.labeling.auto import AutoLabelSettings, choose_thresholds, lower_bound, run_round, select
from loopwise.labeling.manifest import dataset_items
from loopwise.labeling.output import export_job, labeled_items
from loopwise.labeling.records import Category
from loopwise.storage import Store
from loopwise.workforce import service as workforce
from loopwise.workforce.records import Worker


def test_the_lower_bound_is_clopper_pearsons() -> None:
    assert lower_bound(100, 100, 0.95) == pytest.approx(0.05 ** (1 / 100))  # closed form when all right
    assert lower_bound(19, 20, 0.95) == pytest.approx(0.7839, abs=1e-4)
    assert lower_bound(0, 10, 0.95) == 0.0 and lower_bound(0, 0, 0.95) == 0.0
    assert lower_bound(90, 100, 0.99) < lower_bound(90, 100, 0.9) < 0.9


def test_thresholds_keep_the_bound_above_the_target_or_give_none() -> None:
    rng = np.random.default_rng(0)
    n = 400
    # class 0: right whenever its confidence passes 0.75, a coin flip below; class 1: always a coin flip
    confidence = rng.uniform(0.5, 1.0, n)
    predicted = np.arange(n) % 2
    coin = rng.integers(0, 2, n)
    truth = np.where(predicted == 0, np.where(confidence >= 0.75, 0, coin), coin)
    proba = np.zeros((n, 2))
    proba[np.arange(n), predicted] = confidence
    proba[np.arange(n), 1 - predicted] = 1 - confidence
    zero, one = choose_thresholds(proba, truth, target=0.9, level=0.95, min_count=20)
    assert one is None
    assert zero is not None and 0.6 < zero < 0.8
    kept = (predicted == 0) & (confidence >= zero)
    right, total = int((truth[kept] == 0).sum()), int(kept.sum())
    assert lower_bound(right, total, 0.95) >= 0.9 and total >= 20
    # a lower threshold would have failed the bound (fixed sequence: it stops at the first failure)
    looser = (predicted == 0) & (confidence >= zero - 0.05)
    assert (
        lower_bound(int((truth[looser] == 0).sum()), int(looser.sum()), 0.95) < 0.9 or looser.sum() == total
    )


def test_the_selection_strategies() -> None:
    proba = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.34, 0.33, 0.33], [0.6, 0.3, 0.1]])
    assert list(select("margin", proba, 2)) == [2, 1]
    assert list(select("entropy", proba, 1)) == [2]
    assert sorted(select("random", proba, 2, seed=1)) == sorted(set(select("random", proba, 2, seed=1)))
    assert len(select("diversity", proba, 2, features=proba)) == 2
    assert list(select("margin", proba, 10)) == [0, 1, 2, 3]
    with pytest.raises(LabelingError, match="strategy 'best'"):
        AutoLabelSettings(strategy="best")  # type: ignore[arg-type]
    with pytest.raises(LabelingError, match=r"target accuracy 1\.2"):
        AutoLabelSettings(target_accuracy=1.2)


def _answer_all(store: Store, workers: list[Worker], job_id: int, truth: dict[int, str]) -> int:
    """Simulated people answer everything open with the true label; returns the answers given."""
    given = 0
    for worker in workers:
        while tasks := service.next_tasks(store, worker, job_id):
            service.submit(store, worker, tasks[0].assignment_id, truth[tasks[0].position])
            given += 1
    return given


def _auto_job(store: Store, import_small: Callable[..., str]) -> tuple[int, dict[int, str], list[Worker]]:
    ref = import_small(store, rows_per_class=150)
    items = dataset_items(store, ref, "train")
    truth = {i.position: i.extra["dataset_label"] for i in items}
    workforce.create_team(store, "labelers")
    workers = [workforce.create_worker(store, "ann@example.com", teams=("labelers",))[0]]
    settings = AutoLabelSettings(
        target_accuracy=0.8, seed_share=0.4, min_seed=20, batch_share=0.1, min_count=10, strategy="diversity"
    )
    job = service.create_job(
        store, "auto", items, team="labelers", workers_per_item=1, auto_label=settings,
        categories=[Category("-1"), Category("0"), Category("1")],
    )  # fmt: skip
    return job.id, truth, workers


def test_a_job_labeled_by_people_and_machine_round_by_round(store: Store, import_small) -> None:  # type: ignore[no-untyped-def]
    job_id, truth, workers = _auto_job(store, import_small)
    before = service.progress(store, service.find_job(store, "auto"))
    assert before.waiting > 0 and before.answers_needed == (before.items - before.waiting)
    with pytest.raises(LabelingError, match="open items this round"):
        run_round(store, "auto")
    answers = _answer_all(store, workers, job_id, truth)
    rounds = 0
    while service.find_job(store, "auto").status == "InProgress":
        report = run_round(store, "auto")
        rounds += 1
        assert report.model in (f"auto-auto:{rounds}", "")  # "": the last consolidation
        answers += _answer_all(store, workers, job_id, truth)
        assert rounds < 20
    items = labeled_items(store, service.find_job(store, "auto"))
    machine = [i for i in items if i.labeled_by == "machine"]
    assert len(items) == len(truth) and machine, "the machine labeled nothing"
    accuracy = sum(i.label == truth[i.position] for i in machine) / len(machine)
    assert accuracy >= 0.8
    assert answers + len(machine) == len(truth)  # every item labeled once, by people or by the machine
    assert all(i.machine_model and i.machine_threshold for i in machine)
    with pytest.raises(LabelingError, match="is Completed: no more rounds"):
        run_round(store, "auto")


def test_the_server_runs_the_rounds_by_itself(sqlite_store: Store, import_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    job_id, truth, workers = _auto_job(sqlite_store, import_small)
    with background_server(sqlite_store, auto_label_interval_s=0.2):
        deadline = time.monotonic() + 120
        while service.find_job(sqlite_store, "auto").status == "InProgress" and time.monotonic() < deadline:
            _answer_all(sqlite_store, workers, job_id, truth)
            time.sleep(0.3)
    assert service.find_job(sqlite_store, "auto").status == "Completed"
    out = tmp_path / "output.manifest"
    export_job(sqlite_store, "auto", out)
    import json

    lines = [json.loads(line)["auto-metadata"] for line in out.read_text().splitlines()]
    machine = [m for m in lines if m["human-annotated"] == "no"]
    assert machine and all(
        m["model-version"].startswith("auto-auto:") and 0 < m["threshold"] <= 1 for m in machine
    )
    assert len(lines) == len(truth)
