"""The generic PyTorch training loop behind :meth:`TransformerClassifier.fit`.

AdamW (no weight decay on biases and LayerNorm weights), linear warmup then linear decay, gradient-norm
clipping, optional freezing of the lowest encoder layers, length-bucketed dynamically padded batches
(:mod:`loopwise.classifiers.batching`), validation at each epoch's end and every ``eval_every_steps``, and the
best state by ``selection_metric`` restored at the end. The model and batches go to the device of a
:class:`~loopwise.classifiers.devices.Placement` (from ``device``/``precision``), forward passes run
under autocast in its precision, and fp16 scales the loss with a ``GradScaler``. Metrics go to a
:class:`~loopwise.classifiers.Reporter`; time goes to a :class:`~loopwise.classifiers.profiler.StepProfiler`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from loopwise.classifiers._base import Examples, FitResult, Reporter, TrainConfig
from loopwise.classifiers.batching import EXAMPLE_WEIGHTS, BatchStream
from loopwise.classifiers.devices import Placement, resolve_placement
from loopwise.classifiers.optimization import build_optimizer, freeze_layers, linear_schedule, seed_everything
from loopwise.classifiers.prefetch import Prefetcher, prefetch_depth
from loopwise.classifiers.profiler import StepProfiler
from loopwise.errors import TrainingError

VALIDATION_METRICS = ("val_loss", "val_acc", "val_macro_f1")


class DataParallel(Protocol):
    """The seam through which one rank of a data-parallel fit (:mod:`loopwise.training.ddp_worker`) runs
    :func:`train`: every rank calls :func:`train` with the same arguments and its own ``rank``.

    :func:`train` then trains on this rank's share of each global batch
    (:meth:`~loopwise.classifiers.batching.BatchStream.epoch` with ``shard=(rank, world_size)``), runs the
    forward and backward passes through ``wrap(model)`` (which synchronizes gradients), and reports the loss
    averaged over ranks by ``mean``. ``wrap`` is called once, after the layers are frozen and before the
    optimizer is built; it may not change the model's parameters' identity. ``mean`` is a collective: it is
    called once per step, on every rank, in the same order. Validation runs on every rank over the whole
    validation set (same parameters, same answers), so the best state is chosen alike everywhere.
    """

    rank: int
    world_size: int

    def wrap(self, model: nn.Module) -> nn.Module: ...

    def mean(self, value: float) -> float: ...


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: BatchStream,
    batch_size: int,
    num_labels: int,
    placement: Placement | None = None,
) -> dict[str, float]:
    """``val_loss``, ``val_acc`` and ``val_macro_f1`` of ``model`` over every example of ``batches``, on
    ``placement``'s device and precision (default: where the model is, in fp32)."""
    from sklearn.metrics import f1_score

    was_training = model.training
    model.eval()
    placement = placement or Placement(str(_device(model)), "fp32")
    loss_sum, truth, predicted = 0.0, [], []
    for batch in batches.evaluation_batches(batch_size):
        batch = placement.to_device(batch)
        labels = batch.pop("labels")
        with placement.autocast():
            logits = model(**batch).logits
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").item()
        truth.append(labels.cpu().numpy())
        predicted.append(logits.argmax(dim=-1).cpu().numpy())
    model.train(was_training)
    if not truth:
        return {}
    y_true, y_pred = np.concatenate(truth), np.concatenate(predicted)
    return {
        "val_loss": loss_sum / len(y_true),
        "val_acc": float((y_true == y_pred).mean()),
        "val_macro_f1": float(
            f1_score(y_true, y_pred, labels=list(range(num_labels)), average="macro", zero_division=0)
        ),
    }


def train(
    model: nn.Module,
    tokenizer: Any,
    train_examples: Examples,
    encode_labels: Callable[[Sequence[str]], list[int]],
    num_labels: int,
    *,
    validation: Examples | None = None,
    config: TrainConfig | None = None,
    reporter: Reporter | None = None,
    progress: bool | None = None,
    report_every_steps: int = 10,
    placement: Placement | None = None,
    parallel: DataParallel | None = None,
    prefetch: int | None = None,
) -> FitResult:
    """Fine-tune ``model`` (a sequence classifier whose output has ``.logits``) in place.

    ``encode_labels`` maps label names to ids and raises (its error passes through) for an unknown label.
    Every parameter is unfrozen first, then ``config.freeze_layers`` decides what stays fixed. The best
    state is picked by ``config.selection_metric``: higher is better, except for ``val_loss``. Reporter
    calls happen on this thread; ``reporter.should_stop()`` is polled after each. ``progress`` shows a
    progress bar on stderr (default: only when stderr is a terminal). The thread count is torch's own.
    The model moves to ``placement`` (default: ``config.device`` and ``config.precision`` resolved on this
    machine, which raises :class:`~loopwise.errors.ConfigurationError` for a device it lacks) and stays
    there; the profile names the device and precision.
    ``parallel`` makes this call one rank of a data-parallel fit (see :class:`DataParallel`).
    ``prefetch``: how many training batches a background thread prepares ahead of the step (tokenized
    when streaming, collated, pinned for CUDA; :class:`~loopwise.classifiers.prefetch.Prefetcher`), 0 to
    prepare each on this thread; default :func:`prefetch_depth`. The batches and their order are the same
    either way.

    On return the model holds the best validated state (or the last state without validation data) and
    is in eval mode. Raises :class:`TrainingError` for an unusable configuration or empty training data.
    """
    config = config or TrainConfig()
    reporter = reporter or Reporter()
    if len(train_examples) == 0:
        raise TrainingError("no training examples: give at least one labelled text")
    if config.selection_metric not in VALIDATION_METRICS:
        raise TrainingError(
            f"selection_metric {config.selection_metric!r} is not one of {', '.join(VALIDATION_METRICS)}"
        )
    if progress is None:
        progress = sys.stderr.isatty()

    placement = placement or resolve_placement(config.device, config.precision, training=True)
    seed_everything(config.seed)
    model.to(placement.torch_device)
    for parameter in model.parameters():  # freeze_layers alone decides what trains
        parameter.requires_grad_(True)
    freeze_layers(model, config.freeze_layers)
    pin = placement.pin_memory
    batches = BatchStream(train_examples, tokenizer, encode_labels, config, pin_memory=pin)
    val_batches = (
        BatchStream(validation, tokenizer, encode_labels, config, pin_memory=pin) if validation else None
    )
    steps_per_epoch = len(batches)
    if config.steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    total_steps = max(1, steps_per_epoch * config.epochs)
    fit = _Fit(model, config, reporter, num_labels, val_batches, total_steps, report_every_steps, placement)
    fit.parallel = parallel
    fit.prefetch = prefetch_depth(placement, config) if prefetch is None else prefetch
    if parallel is not None:
        fit.forward_model = parallel.wrap(model)
    model.train()
    fit.profiler.start()
    with _ProgressBar(progress, total_steps) as bar:
        for epoch_index in range(config.epochs):
            fit.epoch(batches, epoch_index, steps_per_epoch, bar)
            if fit.state.stopped_early:
                break
            if (
                val_batches
                and fit.state.validated_at != fit.state.step
                and fit.validate(float(epoch_index + 1))
            ):
                fit.state.stopped_early = True
                break
    return fit.result()


class _Fit:
    """One call of :func:`train`: the optimizer, schedule, profiler and state, and its steps."""

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        reporter: Reporter,
        num_labels: int,
        val_batches: BatchStream | None,
        total_steps: int,
        report_every_steps: int,
        placement: Placement,
    ) -> None:
        self.model, self.config, self.reporter = model, config, reporter
        self.num_labels, self.val_batches, self.report_every_steps = (
            num_labels,
            val_batches,
            report_every_steps,
        )
        self.optimizer = build_optimizer(model, config)
        self.scheduler = linear_schedule(self.optimizer, total_steps, config.warmup_ratio)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.placement = placement
        #: loss scaling for fp16 only: bf16 has fp32's range, fp32 needs none
        self.scaler = placement.grad_scaler()
        self.profiler = StepProfiler(device=placement.device)
        self.state = _State(higher_is_better=not config.selection_metric.endswith("loss"))
        #: data parallelism (see DataParallel): the module the training steps call, and the ranks' seam
        self.forward_model: nn.Module = model
        self.parallel: DataParallel | None = None
        #: batches prepared ahead on a background thread (0: none)
        self.prefetch = 0

    def validate(self, epoch: float) -> bool:
        """Validate, keep the state when it is the best yet, report; returns whether to stop."""
        state, config = self.state, self.config
        with self.profiler.phase("validation"):
            metrics = evaluate(
                self.model,
                self.val_batches,  # type: ignore[arg-type]
                config.validation_batch_size,
                self.num_labels,
                self.placement,
            )
        state.validated_at = state.step
        value = metrics[config.selection_metric]
        if state.is_better(value):
            state.keep(self.model, metrics, value)
        self.reporter.on_validation(state.step, epoch, metrics)
        return self.reporter.should_stop()

    def epoch(self, batches: BatchStream, epoch_index: int, steps_per_epoch: int, bar: _ProgressBar) -> None:
        """Train one epoch (at most ``steps_per_epoch`` steps), reporting and validating as configured;
        sets ``state.stopped_early`` when the reporter asks to stop."""
        shard = None if self.parallel is None else (self.parallel.rank, self.parallel.world_size)
        source = batches.epoch(epoch_index, shard=shard)
        if self.prefetch < 1:
            self._steps(iter(source), epoch_index, steps_per_epoch, bar)
            return
        with Prefetcher(source, self.prefetch, name="loopwise-batches") as prefetched:
            self._steps(prefetched, epoch_index, steps_per_epoch, bar)

    def _steps(
        self,
        iterator: Iterator[dict[str, torch.Tensor]],
        epoch_index: int,
        steps_per_epoch: int,
        bar: _ProgressBar,
    ) -> None:
        state, config, reporter = self.state, self.config, self.reporter
        for step_in_epoch in range(steps_per_epoch):
            with self.profiler.phase("data"):
                batch = next(iterator, None)
                if batch is None:
                    break
                batch = self.placement.to_device(batch)
                labels = batch.pop("labels")
                weights = batch.pop(EXAMPLE_WEIGHTS, None)  # only in a data-parallel rank's share
            loss_value = self.step(batch, labels, weights)
            epoch = epoch_index + (step_in_epoch + 1) / steps_per_epoch
            bar.advance(loss_value)
            if state.step % self.report_every_steps == 0:
                reporter.on_train_step(state.step, epoch, state.train_metrics(self.scheduler, self.profiler))
                if reporter.should_stop():
                    state.stopped_early = True
                    return
            due = self.val_batches and config.eval_every_steps and state.step % config.eval_every_steps == 0
            if due and self.validate(epoch):
                state.stopped_early = True
                return

    def step(
        self, batch: dict[str, torch.Tensor], labels: torch.Tensor, weights: torch.Tensor | None = None
    ) -> float:
        """One optimizer step on ``batch`` and its ``labels`` (on the device); returns its loss.
        ``weights`` (a data-parallel rank's share) weigh each example's loss; see ``batching.shard_batch``."""
        profiler, config, scaler = self.profiler, self.config, self.scaler
        with profiler.phase("forward"), self.placement.autocast():
            logits = self.forward_model(**batch).logits
            if weights is None:
                loss = F.cross_entropy(logits.float(), labels)
            else:
                loss = (F.cross_entropy(logits.float(), labels, reduction="none") * weights).sum()
        with profiler.phase("backward"):  # outside autocast, as torch's AMP recipe says
            (scaler.scale(loss) if scaler is not None else loss).backward()
        with profiler.phase("optimizer"):
            if scaler is not None:
                scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            if config.max_grad_norm and config.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.trainable, config.max_grad_norm)
            if scaler is not None:
                scaler.step(self.optimizer)  # skipped when the gradients hold inf or NaN
                scaler.update()
            else:
                self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        mask = batch["attention_mask"]
        profiler.step(len(labels), int(mask.sum()), mask.numel())
        self.state.step += 1
        loss_value = loss.item() if self.parallel is None else self.parallel.mean(loss.item())
        self.state.window_loss += loss_value
        self.state.window_steps += 1
        return loss_value

    def result(self) -> FitResult:
        """The model in eval mode holding the best validated state (or the last); what the fit measured."""
        state = self.state
        if state.window_steps:
            state.last_train = state.train_metrics(self.scheduler, self.profiler)
        if state.best_params is not None:
            state.restore(self.model)
        self.model.eval()
        profile = {**self.profiler.summary(), "precision": self.placement.precision}
        if self.scaler is not None:
            profile["loss_scale"] = float(self.scaler.get_scale())
        return FitResult(
            metrics=dict(state.best_metrics if state.best_metrics is not None else state.last_train),
            profile=profile,
            steps=state.step,
            best_step=state.best_step,
            stopped_early=state.stopped_early,
        )


class _State:
    """Counters of a running fit and the best state seen so far (trainable parameters only)."""

    def __init__(self, higher_is_better: bool) -> None:
        self.higher_is_better = higher_is_better
        self.step = 0
        self.validated_at = -1
        self.window_loss = 0.0
        self.window_steps = 0
        self.last_train: dict[str, float] = {}
        self.best_value: float | None = None
        self.best_metrics: dict[str, float] | None = None
        self.best_params: dict[str, torch.Tensor] | None = None
        self.best_step: int | None = None
        self.stopped_early = False

    def train_metrics(self, scheduler: Any, profiler: StepProfiler) -> dict[str, float]:
        metrics = {
            "loss": self.window_loss / max(1, self.window_steps),
            "learning_rate": float(scheduler.get_last_lr()[0]),
            "examples_per_s": profiler.examples_per_s(),
        }
        self.window_loss, self.window_steps = 0.0, 0
        self.last_train = metrics
        return metrics

    def is_better(self, value: float) -> bool:
        if self.best_value is None or math.isnan(self.best_value):
            return True
        return value > self.best_value if self.higher_is_better else value < self.best_value

    def keep(self, model: nn.Module, metrics: dict[str, float], value: float) -> None:
        self.best_value = value
        self.best_metrics = dict(metrics)
        self.best_step = self.step
        self.best_params = {
            name: parameter.detach().clone()
            for name, parameter in model.named_parameters()
            if parameter.requires_grad
        }

    def restore(self, model: nn.Module) -> None:
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in (self.best_params or {}).items():
                parameters[name].copy_(value)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class _ProgressBar:
    """A rich progress bar on stderr, or nothing when disabled."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._progress = None
        self._task = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._task = self._progress.add_task("training", total=total, loss="-")

    def __enter__(self) -> _ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def advance(self, loss: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, loss=f"{loss:.4f}")  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
