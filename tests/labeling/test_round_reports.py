"""Automated labeling's round reports as the admin reads them: a round with the model choice and the
certificate summarised, an old round without them summarised with gaps instead of failing, and the
rounds kept from anyone but admins."""

from __future__ import annotations

import pytest

from labeling_helpers import NEW_ROUND, OLD_ROUND, WHY_NOT_MORE, write_rounds
from loopwise.errors import PermissionDeniedError
from loopwise.labeling import service
from loopwise.labeling.auto import AutoLabelSettings
from loopwise.labeling.records import Category, ManifestItem
from loopwise.labeling.rounds import NOT_RECORDED, candidate_names, stored_rounds, summarize, visible_rounds
from loopwise.storage import Store
from loopwise.workforce import service as workforce


def test_a_round_with_the_model_choice_and_certificate() -> None:
    summary = summarize(NEW_ROUND)
    assert (summary.round, summary.chosen, summary.chosen_accuracy) == (2, "embeddings", 0.91)
    assert [c.name for c in summary.candidates] == ["tfidf", "embeddings", "finetune"]
    finetune = summary.candidate("finetune")
    assert (
        finetune is not None and finetune.accuracy is None and "needs 2,000 labels" in str(finetune.skipped)
    )
    assert (summary.could_label, summary.lower_bound, summary.threshold_text) == (1200, 0.953, "0.930")
    assert summary.why_not_more_text == WHY_NOT_MORE


def test_an_old_round_reads_with_gaps() -> None:
    summary = summarize(OLD_ROUND)
    assert summary.chosen is None and summary.chosen_accuracy is None and summary.candidates == ()
    assert summary.could_label is None and summary.lower_bound is None
    assert summary.threshold_text == "1: 0.971, 0: -, -1: -"  # each class's, as old rounds chose them
    assert summary.why_not_more_text == NOT_RECORDED
    assert summary.machine_labeled == 40 and summary.sent_to_people == 10
    assert candidate_names([summary, summarize(NEW_ROUND)]) == ["tfidf", "embeddings", "finetune"]


def test_a_certificate_that_passed_no_threshold() -> None:
    report = {**NEW_ROUND, "certificate": {**NEW_ROUND["certificate"], "threshold": None, "could_label": 0}}
    summary = summarize(report)
    assert summary.threshold_text == "none passed" and summary.could_label == 0


def test_only_admins_see_a_jobs_rounds(sqlite_store: Store) -> None:
    store = sqlite_store
    workforce.create_team(store, "labelers")
    admin, _ = workforce.create_worker(store, "boss@example.com", role="admin")
    ann, _ = workforce.create_worker(store, "ann@example.com", teams=("labelers",))
    items = [ManifestItem(i + 1, f"review {i}") for i in range(5)]
    categories = [Category("1"), Category("0"), Category("-1")]
    plain = service.create_job(store, "plain", items, team="labelers", categories=categories)
    auto = service.create_job(
        store, "auto", items, team="labelers", categories=categories, auto_label=AutoLabelSettings()
    )
    assert stored_rounds(store, plain.id) is None and stored_rounds(store, auto.id) == []
    write_rounds(store, auto.id, [OLD_ROUND, NEW_ROUND])
    assert visible_rounds(store, admin, auto.id) == [OLD_ROUND, NEW_ROUND]
    with pytest.raises(PermissionDeniedError):
        visible_rounds(store, ann, auto.id)
