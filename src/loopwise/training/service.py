"""Training runs end to end: data set version in, registered model version out, every step recorded."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from loopwise import registry
from loopwise.classifiers import FitResult, InMemoryExamples, Reporter, TrainConfig, create_classifier
from loopwise.classifiers.devices import resolve_config
from loopwise.data.records import DatasetVersion
from loopwise.data.service import split_examples
from loopwise.data.splits import read_split
from loopwise.data.versions import parse_dataset_ref
from loopwise.errors import LoopwiseError, TrainingError
from loopwise.registry.records import ModelVersion
from loopwise.registry.versions import check_name
from loopwise.storage.tables import utcnow
from loopwise.training.records import RunMetric, RunStatus, TrainingRun

#: where a data-parallel fit runs (:attr:`TrainRequest.executor`)
EXECUTORS = ("process", "ray")

if TYPE_CHECKING:
    from loopwise.storage import Store

log = logging.getLogger(__name__)


@dataclass
class TrainRequest:
    """What to train: a data set reference, a backend and its base model, hyperparameters."""

    dataset: str
    backend: str = "transformers"
    base_model: str | None = None
    model_name: str | None = None
    config: TrainConfig = field(default_factory=TrainConfig)
    #: read the training split from disk in pools instead of loading it whole
    stream: bool = False
    #: the split to train on; several joined by ``+`` (``train+validation``) are read whole and concatenated
    train_split: str = "train"
    validation_split: str | None = "validation"
    parent: str | None = None
    description: str = ""
    #: extra keyword arguments for the backend's constructor (for example ``C`` for tfidf)
    options: dict[str, Any] = field(default_factory=dict)
    #: extra entries recorded in the run's and the model version's params (lineage: a tuning job, a trial)
    lineage: dict[str, Any] = field(default_factory=dict)
    #: training processes, data-parallel (transformers only; the batch size must divide evenly)
    processes: int = 1
    #: where they run: ``process`` (local processes under torch's elastic agent) or ``ray`` (Ray Train
    #: workers on the cluster at ``ray_address``, a local Ray without one)
    executor: str = "process"
    ray_address: str | None = None

    @property
    def distributed(self) -> bool:
        """Whether the fit runs in processes of its own (:mod:`.distributed`, :mod:`.ray_train`)."""
        return self.processes != 1 or self.executor == "ray"


@dataclass(frozen=True)
class TrainOutcome:
    run: TrainingRun
    #: None when the reporter discarded the model (a pruned trial)
    model: ModelVersion | None


class _DatabaseReporter(Reporter):
    """Stores step and epoch metrics in the run's table, a short transaction per batch of reports."""

    def __init__(
        self, store: Store, run_id: str, flush_every: int = 20, forward: Reporter | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_every = flush_every
        self.pending: list[RunMetric] = []
        self.on_metrics: Callable[[int, float, dict[str, float]], None] | None = None
        self.forward = forward

    def _add(self, step: int, epoch: float, metrics: dict[str, float], flush: bool) -> None:
        self.pending.extend(RunMetric(step, epoch, name, float(value)) for name, value in metrics.items())
        if flush or len(self.pending) >= self.flush_every:
            self.flush()

    def on_train_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self._add(step, epoch, metrics, flush=False)
        if self.forward is not None:
            self.forward.on_train_step(step, epoch, metrics)

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self._add(step, epoch, metrics, flush=True)
        if self.on_metrics is not None:
            self.on_metrics(step, epoch, metrics)
        if self.forward is not None:
            self.forward.on_validation(step, epoch, metrics)

    def should_stop(self) -> bool:
        return self.forward is not None and self.forward.should_stop()

    def flush(self) -> None:
        if not self.pending:
            return
        try:
            with self.store.uow() as uow:
                uow.runs.add_metrics(self.run_id, self.pending)
            self.pending = []
        except LoopwiseError:  # a reporter must not break the fit; the summary is stored at the end
            log.warning("could not store %d metrics of run %s", len(self.pending), self.run_id, exc_info=True)


def default_model_name(dataset: DatasetVersion, backend: str) -> str:
    return f"{dataset.name}-{backend}"


def train(
    store: Store, request: TrainRequest, *, progress: bool | None = None, reporter: Reporter | None = None
) -> TrainOutcome:
    """Run one training job and register its model version; a failure marks the run failed and re-raises.

    ``reporter`` also receives every report (after it is stored), and its ``should_stop`` can end the fit
    early; the best checkpoint so far is registered as usual, unless its ``discard_model`` says so (a pruned
    trial): then the run ends ``stopped`` with its metrics and no model is registered.

    With ``request.processes`` > 1 the fit runs over that many local processes (:mod:`.distributed`), or
    with ``request.executor`` ``ray`` over that many Ray Train workers (:mod:`.ray_train`): still one run,
    one model version, metrics from rank 0, the checkpoint written once; a failed rank fails the run.
    """
    _check_processes(request)
    name, version = parse_dataset_ref(request.dataset)
    with store.uow() as uow:
        dataset = uow.datasets.get(name, version)
        model_name = check_name(request.model_name or default_model_name(dataset, request.backend))
        if request.parent:
            registry.resolve(uow, request.parent)  # fail before training, not after
    _check_splits(request, dataset)
    # Bad input (a wrong model path, an unknown backend, a missing device) fails here, before anything
    # is recorded; the run's params record the device and precision the fit runs on, not "auto".
    # (On Ray the workers' machines decide: each worker resolves auto on the device Ray gave it.)
    if request.backend == "transformers" and request.executor == "process":
        request = replace(request, config=resolve_config(request.config))
    classifier = create_classifier(request.backend, dataset.labels, **_backend_options(request))
    run = _record_run(store, request, dataset)
    staged = store.artifacts.staging(prefix=f"run-{run.id[:12]}-")
    database_reporter = _DatabaseReporter(store, run.id, forward=reporter)
    try:
        if request.distributed:
            result = _fit_data_parallel(store, request, dataset, classifier.labels, staged, database_reporter)
        else:
            train_examples, validation = _examples(store, dataset, request)
            result = classifier.fit(
                train_examples, validation, request.config, database_reporter, progress=progress
            )
        database_reporter.flush()
        if reporter is not None and reporter.discard_model():
            shutil.rmtree(staged, ignore_errors=True)
            metrics = {k: float(v) for k, v in result.metrics.items()}
            with store.uow() as uow:
                stopped = uow.runs.finish(run.id, RunStatus.STOPPED, metrics=metrics, profile=result.profile)
            return TrainOutcome(stopped, None)
        if not request.distributed:  # data-parallel: rank 0 saved it
            classifier.save(staged)
        uri = store.artifacts.commit_dir(staged, f"models/{run.id}")
    except BaseException as exc:
        shutil.rmtree(staged, ignore_errors=True)
        database_reporter.flush()
        _fail(store, run, exc)
    return _register(store, request, run, dataset, model_name, classifier.labels, uri, result)


def _record_run(store: Store, request: TrainRequest, dataset: DatasetVersion) -> TrainingRun:
    """The run, recorded RUNNING with its parameters, lineage and code version."""
    with store.uow() as uow:
        return uow.runs.add(
            TrainingRun(
                id=uuid.uuid4().hex,
                status=RunStatus.RUNNING,
                backend=request.backend,
                base_model=request.base_model or "default",
                dataset_version_id=dataset.id,
                params={
                    **request.config.to_dict(),
                    "stream": request.stream,
                    "train_split": request.train_split,
                    "validation_split": request.validation_split,
                    **request.options,
                    **request.lineage,
                    **({"processes": request.processes} if request.distributed else {}),
                    **({"executor": request.executor} if request.executor != "process" else {}),
                },
                code_version=registry.code_version(),
                started_at=utcnow(),
            )
        )


def _examples(
    store: Store, dataset: DatasetVersion, request: TrainRequest
) -> tuple[Any, InMemoryExamples | None]:
    """The training examples (streamed from disk or read whole) and the validation ones (None without
    a validation split)."""
    parts = request.train_split.split("+")
    train_examples: Any = split_examples(store, dataset, request.train_split) if request.stream else None
    if not request.stream:
        texts: list[str] = []
        labels: list[str] = []
        for part in parts:
            part_texts, part_labels = read_split(store.artifacts.local_file(dataset.split(part).uri))
            texts += part_texts
            labels += part_labels
        train_examples = InMemoryExamples(texts, labels)
    validation = None
    if request.validation_split and request.validation_split in dataset.splits:
        validation_file = store.artifacts.local_file(dataset.split(request.validation_split).uri)
        validation = InMemoryExamples(*read_split(validation_file))
    return train_examples, validation


def _check_splits(request: TrainRequest, dataset: DatasetVersion) -> None:
    """Every training split exists; several (``a+b``) only read whole, in one process."""
    parts = request.train_split.split("+")
    for part in parts:
        dataset.split(part)
    if len(parts) > 1 and (request.stream or request.processes > 1):
        raise TrainingError(
            f"training on several splits ({request.train_split}) reads them whole in one process: "
            "drop --stream and --processes, or train on one split"
        )


def _check_processes(request: TrainRequest) -> None:
    """Refuse a data-parallel request that cannot run, before anything is recorded."""
    if request.executor not in EXECUTORS:
        raise TrainingError(f"unknown executor {request.executor!r}: use one of {', '.join(EXECUTORS)}")
    if not request.distributed:
        return
    if request.backend != "transformers":
        how = "--processes 1" if request.executor == "process" else "--executor process"
        raise TrainingError(
            f"the {request.backend} backend trains in one process: use {how} or the transformers backend"
        )
    from loopwise.training.distributed import check_processes

    check_processes(request.processes, request.config.batch_size)


def _fit_data_parallel(
    store: Store,
    request: TrainRequest,
    dataset: DatasetVersion,
    labels: list[str],
    staged: Path,
    reporter: Reporter,
) -> FitResult:
    """Fit over ``request.processes`` local processes or Ray workers; rank 0 saves the classifier into
    ``staged``."""
    from loopwise.training.distributed import WorkerSpec, run_data_parallel

    validation = request.validation_split
    spec = WorkerSpec(
        labels=list(labels),
        options=_backend_options(request),
        config=request.config.to_dict(),
        # the ranks read local files: the splits as this host has them (in place, or the artifact cache)
        train_uri=store.artifacts.local_file(dataset.split(request.train_split).uri).as_uri(),
        validation_uri=(
            store.artifacts.local_file(dataset.split(validation).uri).as_uri()
            if validation and validation in dataset.splits
            else None
        ),
        stream=request.stream,
        output_dir=str(staged),
    )
    workdir = store.artifacts.staging(prefix="ddp-")
    try:
        if request.executor == "ray":
            from loopwise.training.ray_train import run_ray_train

            return run_ray_train(
                spec,
                request.processes,
                workdir,
                reporter,
                address=request.ray_address,
                device=request.config.device,
            )
        return run_data_parallel(spec, request.processes, workdir, reporter)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _fail(store: Store, run: TrainingRun, exc: BaseException) -> NoReturn:
    """Mark the run failed with ``exc``'s message and raise: loopwise's errors and interruptions as they
    are, anything else as a :class:`TrainingError`."""
    message = str(exc) if isinstance(exc, LoopwiseError) else f"{type(exc).__name__}: {exc}"
    with store.uow() as uow:
        uow.runs.finish(run.id, RunStatus.FAILED, error=message)
    if isinstance(exc, LoopwiseError) or not isinstance(exc, Exception):
        raise exc
    raise TrainingError(f"training run {run.id[:12]} failed: {message}") from exc


def _register(
    store: Store,
    request: TrainRequest,
    run: TrainingRun,
    dataset: DatasetVersion,
    model_name: str,
    labels: list[str],
    uri: str,
    result: FitResult,
) -> TrainOutcome:
    """Mark the run completed and register its model version, in one transaction."""
    metrics = {k: float(v) for k, v in result.metrics.items()}
    with store.uow() as uow:
        finished = uow.runs.finish(
            run.id, RunStatus.COMPLETED, metrics=metrics, profile=result.profile, artifact_uri=uri
        )
        model = registry.register(
            uow,
            model_name,
            backend=request.backend,
            uri=uri,
            labels=labels,
            run_id=run.id,
            dataset_version_id=dataset.id,
            parent=request.parent,
            params=finished.params | {"base_model": finished.base_model},
            metrics=metrics,
            description=request.description,
        )
    return TrainOutcome(finished, model)


def _backend_options(request: TrainRequest) -> dict[str, Any]:
    options = dict(request.options)
    if request.backend == "transformers":
        options.setdefault("base_model", request.base_model)
        options.setdefault("max_seq_length", request.config.max_seq_length)
    elif request.base_model:
        raise TrainingError(f"the {request.backend} backend takes no base model (got {request.base_model!r})")
    return options


def list_runs(store: Store, limit: int = 50) -> list[TrainingRun]:
    """The newest ``limit`` training runs, newest first."""
    with store.uow() as uow:
        return uow.runs.list(limit)


def run_history(store: Store, run_id: str) -> tuple[TrainingRun, list[RunMetric]]:
    """The run ``run_id`` names (its id or a unique prefix of it) and every metric it recorded."""
    with store.uow() as uow:
        run = uow.runs.get(run_id)
        return run, uow.runs.metrics(run.id)
