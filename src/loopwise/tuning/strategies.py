"""Search strategies and early stopping as Optuna samplers and pruners, and the ready default search space.

==========  =====================================================  =======================================
strategy    sampler                                                pruner
==========  =====================================================  =======================================
random      ``RandomSampler(seed)``                                the median rule if early_stopping: auto
grid        ``GridSampler(grid_points(spec), seed)``               the median rule if early_stopping: auto
bayesian    ``TPESampler`` (multivariate, grouped, constant liar)  the median rule if early_stopping: auto
hyperband   the same ``TPESampler``                                ``HyperbandPruner``, reduction factor 3
==========  =====================================================  =======================================

Pruners work in training examples seen (a trial reports each validation at ``optimizer step x batch
size``), so trials of different batch sizes are compared after the same amount of data. Epochs are the
fidelity: Hyperband's smallest budget is one epoch and its largest the whole trial; the median rule never
stops a trial before its first epoch ends.
"""

from __future__ import annotations

import warnings

from optuna.exceptions import ExperimentalWarning
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler

from loopwise.tuning.space import grid_points, highest_value, max_trial_examples
from loopwise.tuning.spec import Parameter, TuningSpec

REDUCTION_FACTOR = 3


def make_sampler(spec: TuningSpec) -> BaseSampler:
    """A new sampler for ``spec.strategy``, seeded with ``spec.seed``."""
    if spec.strategy == "random":
        return RandomSampler(seed=spec.seed)
    if spec.strategy == "grid":
        return GridSampler(grid_points(spec), seed=spec.seed)
    with warnings.catch_warnings():  # ``group`` is marked experimental in Optuna
        warnings.simplefilter("ignore", ExperimentalWarning)
        return TPESampler(
            seed=spec.seed,
            n_startup_trials=startup_trials(spec),
            multivariate=True,
            group=True,
            # parallel trials: running ones count as bad results, so workers do not sample the same point
            # (unset: the tuning worker asks with the trials its devices run at once)
            constant_liar=(spec.max_parallel_trials or 1) > 1,
        )


def make_pruner(spec: TuningSpec, train_size: int | None = None) -> BasePruner:
    """A new pruner: Hyperband for ``hyperband``, else the median rule for ``early_stopping: auto``, else
    none; resources are training examples seen. ``train_size``: the training split's rows, when the spec
    leaves ``steps_per_epoch`` unset (without it Hyperband measures the first finished trial, and the
    median rule may act from the first report)."""
    total = max_trial_examples(spec, train_size)
    epochs = int(highest_value(spec, "epochs"))
    one_epoch = None if total is None else max(1, total // epochs)
    if spec.strategy == "hyperband":
        if total is None:
            return HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=REDUCTION_FACTOR)
        smallest = max(1, total // epochs) if epochs > 1 else max(1, total // REDUCTION_FACTOR**2)
        return HyperbandPruner(min_resource=smallest, max_resource=total, reduction_factor=REDUCTION_FACTOR)
    if spec.early_stopping == "auto":
        return MedianPruner(
            n_startup_trials=max(1, min(5, spec.max_trials // 5)),
            n_warmup_steps=one_epoch or 0,
            interval_steps=1,
        )
    return NopPruner()


def startup_trials(spec: TuningSpec) -> int:
    """Random trials TPE runs before it models the results: a fifth of the budget, from 2 (or the
    parallelism) up to 10."""
    return min(10, max(2, spec.max_parallel_trials or 1, spec.max_trials // 5))


def default_space() -> tuple[Parameter, ...]:
    """The ready search space for fine-tuning a BERT-family classifier (``specs/default_bayesian.yaml``).

    Epochs are not searched: they are the fidelity, the budget Hyperband or the median rule cuts short.
    """
    return (
        Parameter("learning_rate", "continuous", 1e-5, 2e-4, "log"),
        Parameter("warmup_ratio", "continuous", 0.0, 0.2, "linear"),
        Parameter("weight_decay", "continuous", 0.0, 0.1, "linear"),
        Parameter("batch_size", "categorical", values=(16, 32)),
        Parameter("freeze_layers", "integer", 0, 3, "linear"),
    )
