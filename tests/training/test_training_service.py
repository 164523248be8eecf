from __future__ import annotations

from pathlib import Path

import pytest

from loopwise.classifiers import Reporter
from loopwise.errors import ClassifierError, NotFoundError, TrainingError
from loopwise.storage import Store
from loopwise.training.records import RunStatus
from loopwise.training.service import TrainRequest, train
from training_helpers import small_config

pytestmark = pytest.mark.sqlite_only


def test_a_run_registers_a_model_with_lineage_metrics_and_profile(
    store: Store, small_dataset: str, tiny_bert_dir: Path
) -> None:
    outcome = train(
        store,
        TrainRequest(
            dataset=small_dataset, base_model=str(tiny_bert_dir), model_name="tiny", config=small_config()
        ),
        progress=False,
    )
    run, model = outcome.run, outcome.model
    assert run.status is RunStatus.COMPLETED and run.finished_at is not None
    assert model.ref == "tiny:1" and model.run_id == run.id and model.labels == ["-1", "0", "1"]
    assert model.params["learning_rate"] == 1e-3 and model.params["base_model"] == str(tiny_bert_dir)
    assert "val_acc" in run.metrics and model.metrics == run.metrics
    assert {"examples_per_s", "peak_rss_mb", "cpu_utilization"} <= run.profile.keys()
    with store.uow() as uow:
        history = uow.runs.metrics(run.id)
        assert uow.datasets.get_by_id(model.dataset_version_id).ref == small_dataset
    names = {m.name for m in history}
    assert {"loss", "val_acc", "val_loss"} <= names
    assert len([m for m in history if m.name == "val_acc"]) >= 2  # every 4 steps and at each epoch end
    assert (Path(model.uri.removeprefix("file://")) / "classifier.json").exists()


def test_the_tfidf_backend_trains_through_the_same_service(store: Store, small_dataset: str) -> None:
    outcome = train(store, TrainRequest(dataset=small_dataset, backend="tfidf"), progress=False)
    assert outcome.model.ref == "small-tfidf:1"
    assert outcome.run.metrics["val_acc"] > 0.5


def test_a_wrong_model_path_records_nothing(store: Store, small_dataset: str, tmp_path: Path) -> None:
    with pytest.raises(ClassifierError, match="no-such-model"):
        train(store, TrainRequest(dataset=small_dataset, base_model=str(tmp_path / "no-such-model")))
    with store.uow() as uow:
        assert uow.runs.list() == [] and uow.models.list() == []


def test_an_unknown_dataset_or_parent_fails_before_training(store: Store, small_dataset: str) -> None:
    with pytest.raises(NotFoundError, match="data set 'nope' not found"):
        train(store, TrainRequest(dataset="nope", backend="tfidf"))
    with pytest.raises(NotFoundError, match="models list"):
        train(store, TrainRequest(dataset=small_dataset, backend="tfidf", parent="ghost:1"))
    with store.uow() as uow:
        assert uow.runs.list() == []


def test_a_failure_mid_fit_marks_the_run_failed_and_leaves_no_model(
    store: Store, small_dataset: str, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopwise.classifiers.transformer import TransformerClassifier

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(TransformerClassifier, "fit", explode)
    with pytest.raises(TrainingError, match="out of memory"):
        train(
            store, TrainRequest(dataset=small_dataset, base_model=str(tiny_bert_dir), config=small_config())
        )
    with store.uow() as uow:
        (run,) = uow.runs.list()
        assert run.status is RunStatus.FAILED and "out of memory" in (run.error or "")
        assert uow.models.list() == []
    assert not list((store.artifacts.root / ".staging").iterdir())
    assert not (store.artifacts.root / "models").exists()


class _PruneAfterFirstValidation(Reporter):
    def __init__(self) -> None:
        self.validations = 0

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.validations += 1

    def should_stop(self) -> bool:
        return self.validations >= 1

    def discard_model(self) -> bool:
        return True


def test_a_run_its_reporter_stops_and_discards_ends_stopped_without_a_model(
    store: Store, small_dataset: str, tiny_bert_dir: Path
) -> None:
    reporter = _PruneAfterFirstValidation()
    request = TrainRequest(
        dataset=small_dataset, base_model=str(tiny_bert_dir), config=small_config(epochs=5)
    )
    outcome = train(store, request, progress=False, reporter=reporter)

    assert outcome.model is None and reporter.validations == 1
    assert outcome.run.status is RunStatus.STOPPED and "val_acc" in outcome.run.metrics
    with store.uow() as uow:
        assert uow.models.list() == [] and uow.runs.get(outcome.run.id).status is RunStatus.STOPPED
    assert not (store.artifacts.root / "models").exists()
    assert not list((store.artifacts.root / ".staging").iterdir())


def test_streaming_training_reads_the_split_from_disk(
    store: Store, small_dataset: str, tiny_bert_dir: Path
) -> None:
    outcome = train(
        store,
        TrainRequest(
            dataset=small_dataset,
            base_model=str(tiny_bert_dir),
            stream=True,
            config=small_config(stream_pool_size=16, epochs=1),
        ),
        progress=False,
    )
    assert outcome.run.params["stream"] is True
    assert outcome.run.profile["examples"] > 0
