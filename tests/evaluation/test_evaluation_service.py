"""Evaluating a registered model: on the data set of its lineage unless one is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise import registry
from loopwise.errors import DataError, NotFoundError
from loopwise.evaluation.service import compare, evaluate
from loopwise.storage import Store


def test_a_model_is_evaluated_on_its_own_data_set_by_default(two_models: Store, tmp_path: Path) -> None:
    outcome = evaluate(two_models, "small-tfidf@champion", split="test", out_dir=tmp_path / "report")
    assert outcome.dataset == "small:1"  # not `reviews`, which this store does not have
    with two_models.uow() as uow:
        small = uow.datasets.get("small", 1)
    test_rows = small.split("test").rows
    assert outcome.metrics["n"] == test_rows > 0  # the small set's test split
    with two_models.uow() as uow:
        assert uow.datasets.get_by_id(outcome.record.dataset_version_id).ref == "small:1"


def test_a_named_data_set_wins_and_an_unknown_one_is_refused(two_models: Store, tmp_path: Path) -> None:
    named = evaluate(two_models, "small-tfidf:1", "small:1", "validation", out_dir=tmp_path / "a")
    with two_models.uow() as uow:
        validation_rows = uow.datasets.get("small", 1).split("validation").rows
    assert named.dataset == "small:1" and named.metrics["n"] == validation_rows
    with pytest.raises(NotFoundError, match="reviews"):
        evaluate(two_models, "small-tfidf:1", "reviews", out_dir=tmp_path / "b")


def test_a_comparison_defaults_to_the_first_model_s_data_set(two_models: Store, tmp_path: Path) -> None:
    outcome = compare(two_models, "small-tfidf:1", "small-tfidf:2", out_dir=tmp_path / "c")
    with two_models.uow() as uow:
        assert outcome.comparison["n"] == uow.datasets.get("small", 1).split("test").rows


def test_a_model_directory_needs_a_named_data_set(two_models: Store, tmp_path: Path) -> None:
    with two_models.uow() as uow:
        directory = registry.resolve(uow, "small-tfidf:1").uri
    with pytest.raises(DataError, match="--dataset"):
        evaluate(two_models, directory.removeprefix("file://"), out_dir=tmp_path / "d")
