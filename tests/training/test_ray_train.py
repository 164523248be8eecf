"""Data-parallel training on Ray Train (``executor="ray"``): 2 TorchTrainer workers on a local Ray (gloo on
the CPU) train one run with the same curve as 2 local processes, and a worker that raises fails the run
with its error and leaves no model version. SQLite only: a Ray run takes tens of seconds, and storage goes
through the same training service as the local data-parallel tests, which run on both databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli_helpers import usage_error
from loopwise.errors import TrainingError
from loopwise.storage import Store
from loopwise.training.ddp_worker import KILL_HOOK
from loopwise.training.records import RunStatus
from loopwise.training.service import TrainRequest, train
from training_helpers import small_config


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module's runs (each run would otherwise start and stop its own)."""
    ray = pytest.importorskip("ray", reason="Ray Train is an optional extra: pip install 'loopwise[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _losses(store: Store, run_id: str) -> list[float]:
    with store.uow() as uow:
        return [m.value for m in uow.runs.metrics(run_id) if m.name == "loss"]


@pytest.mark.ray
def test_two_ray_workers_train_one_run_with_the_curve_of_two_processes(
    local_ray: None, sqlite_store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    dataset = import_small(sqlite_store)

    def request(executor: str) -> TrainRequest:
        config = small_config()
        model = f"tiny-{executor}"
        return TrainRequest(
            dataset,
            base_model=str(tiny_bert_dir),
            model_name=model,
            config=config,
            processes=2,
            executor=executor,
        )

    on_ray = train(sqlite_store, request("ray"), progress=False)
    local = train(sqlite_store, request("process"), progress=False)

    run, model = on_ray.run, on_ray.model
    assert run.status is RunStatus.COMPLETED and run.params["executor"] == "ray"
    assert model is not None and model.ref == "tiny-ray:1" and model.run_id == run.id
    with sqlite_store.uow() as uow:
        assert len(uow.models.list("tiny-ray")) == 1  # rank 0 alone registered it
        history = uow.runs.metrics(run.id)
    assert len({(m.step, m.name) for m in history}) == len(history)  # each report once: rank 0's
    ray_curve, local_curve = _losses(sqlite_store, run.id), _losses(sqlite_store, local.run.id)
    assert len(ray_curve) == len(local_curve) > 1  # a loss each epoch
    assert all(abs(a - b) <= 0.02 for a, b in zip(ray_curve, local_curve, strict=True)), (
        ray_curve,
        local_curve,
    )
    assert model.metrics.keys() == local.run.metrics.keys()


@pytest.mark.ray
def test_a_ray_worker_that_raises_fails_the_run_with_its_error_and_no_model(
    local_ray: None,
    sqlite_store: Store,
    import_small: Callable[[Store], str],
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = import_small(sqlite_store)
    monkeypatch.setenv(KILL_HOOK, "1:2:raise")  # rank 1 raises at its second step
    request = TrainRequest(
        dataset, base_model=str(tiny_bert_dir), config=small_config(epochs=1), processes=2, executor="ray"
    )
    with pytest.raises(TrainingError, match="rank 1 raised RuntimeError: rank 1 failed on purpose"):
        train(sqlite_store, request, progress=False)

    with sqlite_store.uow() as uow:
        (run,) = uow.runs.list()
        assert run.status is RunStatus.FAILED and "over 2 Ray workers failed" in (run.error or "")
        assert uow.models.list() == []
    assert not (sqlite_store.artifacts.root / "models").exists()
    assert not list((sqlite_store.artifacts.root / ".staging").iterdir())


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--executor", "ray", "--backend", "tfidf"], "tfidf trains in one process"),
        (["--ray-address", "auto"], "--ray-address"),
        (["--executor", "spark"], "'spark': use one of process, ray"),
    ],
)
def test_the_cli_refuses_executor_combinations_that_cannot_run_in_one_line(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert named in usage_error(capsys, "train", *args)


def test_the_service_refuses_ray_for_a_backend_that_trains_in_one_process(
    sqlite_store: Store, import_small: Callable[[Store], str]
) -> None:
    dataset = import_small(sqlite_store)
    with pytest.raises(TrainingError, match="use --executor process"):
        train(sqlite_store, TrainRequest(dataset, backend="tfidf", executor="ray"))
    with sqlite_store.uow() as uow:
        assert uow.runs.list() == []  # refused before anything was recorded
