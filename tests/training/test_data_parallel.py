"""Data-parallel training (``processes`` > 1): N gloo processes on the CPU, one run, one model version."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from loopwise.classifiers import Reporter, load_classifier
from loopwise.classifiers.batching import shard_batch
from loopwise.errors import TrainingError
from loopwise.storage import Store
from loopwise.training.ddp_worker import KILL_HOOK, Ranks, rank_device
from loopwise.training.records import RunStatus
from loopwise.training.service import TrainRequest, train
from training_helpers import small_config

pytestmark = pytest.mark.sqlite_only


def _staging_is_empty(store: Store) -> bool:
    return not list((store.artifacts.root / ".staging").iterdir())


def test_the_shares_of_a_batch_cover_it_once_and_weigh_to_its_mean() -> None:
    batch = [7, 3, 9, 1, 4]
    shares = [shard_batch(batch, rank, 2) for rank in range(2)]
    assert shares == [([7, 9, 4], [0.4] * 3), ([3, 1], [0.4] * 2)]
    # a last batch smaller than the ranks: the rank left out steps on a copy that weighs nothing
    assert shard_batch([5], 1, 2) == ([5], [0.0])
    with pytest.raises(TrainingError, match="rank 2"):
        shard_batch(batch, 2, 2)


def test_averaging_the_ranks_weighted_gradients_gives_the_global_batchs_gradient() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    inputs, labels = torch.randn(5, 4), torch.tensor([0, 2, 1, 1, 0])

    def gradient(rows: list[int], weights: list[float] | None) -> torch.Tensor:
        layer.zero_grad()
        logits = layer(inputs[rows])
        if weights is None:
            loss = F.cross_entropy(logits, labels[rows])
        else:
            loss = (F.cross_entropy(logits, labels[rows], reduction="none") * torch.tensor(weights)).sum()
        loss.backward()
        return layer.weight.grad.clone()  # type: ignore[union-attr]

    whole = gradient(list(range(5)), None)
    averaged = sum(gradient(*shard_batch(list(range(5)), rank, 2)) for rank in range(2)) / 2  # as DDP does
    torch.testing.assert_close(averaged, whole)


def test_two_processes_train_one_run_and_register_one_model_version(
    store: Store, small_dataset: str, tiny_bert_dir: Path
) -> None:
    request = TrainRequest(
        dataset=small_dataset,
        base_model=str(tiny_bert_dir),
        model_name="tiny",
        config=small_config(),
        processes=2,
    )
    outcome = train(store, request, progress=False)

    run, model = outcome.run, outcome.model
    assert run.status is RunStatus.COMPLETED and run.params["processes"] == 2
    assert model is not None and model.ref == "tiny:1" and model.run_id == run.id
    assert "val_acc" in run.metrics and model.metrics == run.metrics and run.profile["examples_per_s"] > 0
    with store.uow() as uow:
        assert len(uow.runs.list()) == 1 and len(uow.models.list()) == 1
        history = uow.runs.metrics(run.id)
    # rank 0 alone reports: every (step, metric) once, as one process would report them
    counts = Counter((m.step, m.name) for m in history)
    assert counts and set(counts.values()) == {1}
    assert [m.step for m in history if m.name == "val_acc"] == [
        4,
        8,
        11,
        12,
        16,
        20,
        22,
    ]  # 2 epochs of 11 global batches
    saved = load_classifier(Path(model.uri.removeprefix("file://")))
    assert saved.predict_proba(["great lovely item"]).shape == (1, 3)
    assert _staging_is_empty(store)


def test_a_killed_rank_fails_the_run_with_its_signal_and_leaves_no_model(
    sqlite_store: Store,
    import_small: Callable[[Store], str],
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = sqlite_store
    dataset = import_small(store)
    monkeypatch.setenv(KILL_HOOK, "1:3")  # rank 1 kills itself with SIGKILL at its third step
    request = TrainRequest(dataset=dataset, base_model=str(tiny_bert_dir), config=small_config(), processes=2)
    with pytest.raises(TrainingError, match="rank 1 was killed by SIGKILL"):
        train(store, request, progress=False)

    with store.uow() as uow:
        (run,) = uow.runs.list()
        assert run.status is RunStatus.FAILED and "rank 1 was killed by SIGKILL (exit code -9)" in (
            run.error or ""
        )
        assert uow.models.list() == []
    assert not (store.artifacts.root / "models").exists()
    assert _staging_is_empty(store)


class _PruneAfterFirstValidation(Reporter):
    def __init__(self) -> None:
        self.validations = 0

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.validations += 1

    def should_stop(self) -> bool:
        return self.validations >= 1

    def discard_model(self) -> bool:
        return True


def test_the_ranks_stop_together_when_the_callers_reporter_asks(
    sqlite_store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    store = sqlite_store
    request = TrainRequest(
        dataset=import_small(store),
        base_model=str(tiny_bert_dir),
        config=small_config(epochs=40),
        processes=2,
    )
    outcome = train(store, request, progress=False, reporter=_PruneAfterFirstValidation())

    assert outcome.model is None and outcome.run.status is RunStatus.STOPPED
    with store.uow() as uow:
        steps = [m.step for m in uow.runs.metrics(outcome.run.id)]
    assert max(steps) < 40 * 11  # stopped long before its 40 epochs of 11 global batches
    assert not (store.artifacts.root / "models").exists() and _staging_is_empty(store)


@pytest.mark.parametrize(
    ("processes", "batch_size", "message"),
    [(0, 8, "processes must be at least 1"), (3, 8, "batch size 8 cannot be split evenly over 3 processes")],
)
def test_a_run_that_cannot_be_split_is_refused_before_anything_is_recorded(
    sqlite_store: Store,
    import_small: Callable[[Store], str],
    processes: int,
    batch_size: int,
    message: str,
) -> None:
    dataset = import_small(sqlite_store)
    request = TrainRequest(dataset=dataset, config=small_config(batch_size=batch_size), processes=processes)
    with pytest.raises(TrainingError, match=message):
        train(sqlite_store, request)
    with pytest.raises(TrainingError, match="tfidf backend trains in one process"):
        train(sqlite_store, TrainRequest(dataset=dataset, backend="tfidf", processes=2))
    with sqlite_store.uow() as uow:
        assert uow.runs.list() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--processes", "0"], "'--processes': Input should be greater than or equal to 1"),
        (["--processes", "3", "--batch-size", "8"], "--batch-size 8 cannot be split over 3 processes"),
    ],
)
def test_the_cli_refuses_processes_that_cannot_split_the_batch_in_one_line(
    args: list[str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loopwise.cli import main

    monkeypatch.setenv("LOOPWISE_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as stopped:
        main(["train", *args])
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and len(err.splitlines()) == 1
    assert expected in err and "loopwise train --help" in err


def test_each_rank_takes_the_gpu_of_its_local_rank_with_nccl_and_the_cpu_with_gloo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert rank_device(1) == (torch.device("cpu"), "gloo")

    current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    assert rank_device(1) == (torch.device("cuda", 1), "nccl") and current == [torch.device("cuda", 1)]
    with pytest.raises(RuntimeError, match="rank 2 has no GPU: 2 visible"):
        rank_device(2)


def test_a_rank_on_a_gpu_gives_ddp_its_device_and_on_the_cpu_none(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def ddp(
        module: torch.nn.Module, device_ids: list[int] | None, broadcast_buffers: bool
    ) -> torch.nn.Module:
        seen.append((device_ids, broadcast_buffers))
        return module

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", ddp)
    layer = torch.nn.Linear(2, 2)
    assert Ranks(0, 2, torch.device("cuda", 1)).wrap(layer) is layer
    Ranks(1, 2, torch.device("cpu")).wrap(layer)
    assert seen == [([1], False), (None, False)]
