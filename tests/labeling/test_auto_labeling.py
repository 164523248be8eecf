"""Automated labeling: the selection strategies and the settings' checks, and whole jobs on SQLite and
PostgreSQL where simulated people label the seed and each batch while the machine labels the rest (rounds
run by hand and by the server)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopwise.app import background_server
from loopwise.errors import LabelingError
from loopwise.labeling import service
from loopwise.labeling.auto import run_round
from loopwise.labeling.manifest import dataset_items
from loopwise.labeling.output import export_job, labeled_items
from loopwise.labeling.planning import AutoLabelSettings, select
from loopwise.labeling.records import Category
from loopwise.storage import Store
from loopwise.workforce import service as workforce
from loopwise.workforce.records import Worker


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


def _auto_job(
    store: Store,
    import_small: Callable[..., str],
    encoder: Path,
    *,
    name: str = "auto",
    rows_per_class: int = 150,
    **settings: Any,
) -> tuple[int, dict[int, str], list[Worker]]:
    """A job with automated labeling over the small data set's training split, one simulated person in
    its team; ``settings`` override the tests' automated-labeling settings."""
    ref = import_small(store, rows_per_class=rows_per_class)
    items = dataset_items(store, ref, "train")
    truth = {i.position: i.extra["dataset_label"] for i in items}
    workforce.create_team(store, "labelers")
    workers = [workforce.create_worker(store, "ann@example.com", teams=("labelers",))[0]]
    chosen = AutoLabelSettings(
        **{
            "target_accuracy": 0.8,
            "seed_share": 0.4,
            "min_seed": 20,
            "batch_share": 0.1,
            "min_count": 10,
            "strategy": "diversity",
            "base_model": str(encoder),
            **settings,
        }
    )
    job = service.create_job(
        store, name, items, team="labelers", workers_per_item=1, auto_label=chosen,
        categories=[Category("-1"), Category("0"), Category("1")],
    )  # fmt: skip
    return job.id, truth, workers


def test_a_job_labeled_by_people_and_machine_round_by_round(
    store: Store, import_small, tiny_bert_dir
) -> None:  # type: ignore[no-untyped-def]
    job_id, truth, workers = _auto_job(store, import_small, tiny_bert_dir)
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
        if report.model:
            choice, certificate = report.model_choice, report.certificate
            assert set(choice["candidates"]) == {"tfidf", "embeddings", "finetune"}
            assert (
                choice["chosen"] in ("tfidf", "embeddings") and "skipped" in choice["candidates"]["finetune"]
            )
            assert certificate["could_label"] == report.machine_labeled and certificate["why_not_more"]
            assert certificate["validated_on"] == report.holdout >= 20
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


def test_the_server_runs_the_rounds_by_itself(
    sqlite_store: Store, import_small, tmp_path, tiny_bert_dir
) -> None:  # type: ignore[no-untyped-def]
    job_id, truth, workers = _auto_job(sqlite_store, import_small, tiny_bert_dir)
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


def test_a_fine_tuned_candidate_joins_once_people_gave_enough_answers(
    sqlite_store: Store, import_small: Callable[..., str], tiny_bert_dir: Path
) -> None:
    store = sqlite_store  # the storage paths are the whole-job test's, on both databases
    job_id, truth, workers = _auto_job(
        store, import_small, tiny_bert_dir, name="tuned", rows_per_class=40, strategy="margin",
        seed_share=0.5, models=("tfidf", "finetune"), finetune_min_labels=30, finetune_epochs=1, folds=2,
    )  # fmt: skip
    _answer_all(store, workers, job_id, truth)
    report = run_round(store, "tuned")
    figures = report.model_choice["candidates"]["finetune"]
    assert figures["validated_on"] == report.holdout and figures["folds"] == 2
    assert 0 <= figures["accuracy"] <= 1 and "skipped" not in figures
    assert report.model_choice["chosen"] in ("tfidf", "finetune")
    # the diversity strategy was not asked for and no candidate needs embeddings: none were computed
    assert store.artifacts.list("labeling/tuned/embeddings") == []


def test_the_jobs_embeddings_are_computed_once(
    sqlite_store: Store,
    import_small: Callable[..., str],
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = sqlite_store  # the storage paths are the whole-job test's, on both databases
    from loopwise.labeling import embeddings

    job_id, truth, workers = _auto_job(store, import_small, tiny_bert_dir)
    encoded: list[int] = []
    real = embeddings.encode

    def counting(texts, *args, **kwargs):  # type: ignore[no-untyped-def]
        encoded.append(len(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(embeddings, "encode", counting)
    for _ in range(2):
        _answer_all(store, workers, job_id, truth)
        run_round(store, "auto")
    assert encoded == [len(truth)]  # every item of the job once, in the first round only
    assert len(store.artifacts.list("labeling/auto/embeddings")) == 1


def test_a_seed_of_one_class_gets_a_random_batch_instead_of_a_model(
    sqlite_store: Store, import_small: Callable[..., str], tiny_bert_dir: Path
) -> None:
    store = sqlite_store  # the storage paths are the whole-job test's, on both databases
    job_id, truth, workers = _auto_job(store, import_small, tiny_bert_dir, models=("tfidf",))
    one_class = {position: "1" for position in truth}  # the people answer "1" to everything
    _answer_all(store, workers, job_id, one_class)
    report = run_round(store, "auto")
    assert report.model == "" and report.machine_labeled == 0 and report.audit == report.sent_to_people > 0
    assert "a single class" in report.certificate["why_not_more"]
    assert service.progress(store, service.find_job(store, "auto")).waiting == report.waiting
    _answer_all(store, workers, job_id, truth)  # the audit's answers bring the other classes
    assert run_round(store, "auto").model == "auto-auto:1"
