"""A spec's search space as Optuna distributions, one trial's sample, and the TrainConfig and backend options
it trains with.

How each parameter is sampled:

* continuous ``linear`` / ``log``: ``FloatDistribution(min, max, log=...)``;
* integer ``linear`` / ``log``: ``IntDistribution(min, max, log=...)``;
* categorical: ``CategoricalDistribution(values)``;
* continuous ``reverse_log`` (values in ``[0, 1)`` that matter most near 1, such as a momentum of 0.99):
  Optuna samples ``u = 1 - x`` from ``FloatDistribution(1 - max, 1 - min, log=True)`` under the name
  ``one_minus_<name>`` (:func:`optuna_name`), and the value used is ``x = 1 - u``, clipped to
  ``[min, max]``. Equal ratios of ``1 - x`` are equally likely, so ``0.9 -> 0.99`` is as likely as
  ``0.99 -> 0.999``. :func:`decode_params` turns a trial's stored Optuna parameters back into the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import BaseTrial

from loopwise.classifiers import TrainConfig
from loopwise.errors import TuningSpecError
from loopwise.tuning.spec import Parameter, TuningSpec

REVERSE_LOG_PREFIX = "one_minus_"


def optuna_name(parameter: Parameter) -> str:
    """The name a parameter is stored under in Optuna (differs from ``name`` only for ``reverse_log``)."""
    return REVERSE_LOG_PREFIX + parameter.name if parameter.scaling == "reverse_log" else parameter.name


def distribution(parameter: Parameter) -> BaseDistribution:
    """The Optuna distribution that samples ``parameter`` (for ``reverse_log``: the distribution of 1 - x)."""
    if parameter.type == "categorical":
        return CategoricalDistribution(parameter.values)
    assert parameter.min is not None and parameter.max is not None
    if parameter.type == "integer":
        return IntDistribution(int(parameter.min), int(parameter.max), log=parameter.scaling == "log")
    if parameter.scaling == "reverse_log":
        return FloatDistribution(1.0 - parameter.max, 1.0 - parameter.min, log=True)
    return FloatDistribution(parameter.min, parameter.max, log=parameter.scaling == "log")


def distributions(spec: TuningSpec) -> dict[str, BaseDistribution]:
    """Every searched parameter's distribution, by :func:`optuna_name`."""
    return {optuna_name(p): distribution(p) for p in spec.parameters}


def suggest(trial: BaseTrial, spec: TuningSpec) -> dict[str, Any]:
    """Sample one trial's searched hyperparameters through ``trial.suggest_*``; returns ``{name: value}``
    (static values are merged by :func:`build_config`)."""
    params: dict[str, Any] = {}
    for p in spec.parameters:
        if p.type == "categorical":
            params[p.name] = trial.suggest_categorical(p.name, p.values)
            continue
        assert p.min is not None and p.max is not None
        if p.type == "integer":
            params[p.name] = trial.suggest_int(p.name, int(p.min), int(p.max), log=p.scaling == "log")
        elif p.scaling == "reverse_log":
            u = trial.suggest_float(optuna_name(p), 1.0 - p.max, 1.0 - p.min, log=True)
            params[p.name] = _from_one_minus(p, u)
        else:
            params[p.name] = trial.suggest_float(p.name, p.min, p.max, log=p.scaling == "log")
    return params


def decode_params(spec: TuningSpec, stored: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameter values from a trial's Optuna parameters (``FrozenTrial.params``); parameters the
    trial lacks are left out."""
    params: dict[str, Any] = {}
    for p in spec.parameters:
        key = optuna_name(p)
        if key in stored:
            params[p.name] = _from_one_minus(p, stored[key]) if p.scaling == "reverse_log" else stored[key]
    return params


def build_config(
    spec: TuningSpec, params: Mapping[str, Any], *, max_examples: int | None = None, capped: bool = True
) -> TrainConfig:
    """The TrainConfig of one trial: TrainConfig defaults, then ``spec.static``, then ``params`` (their
    backend options left out: :func:`backend_options` has them). ``capped=False`` (the final fit) leaves
    the search's caps below out.

    ``selection_metric`` follows the objective unless set static. The optimizer steps are capped at ``C``,
    the least of ``max_steps_per_trial``, ``max_examples_per_trial // batch_size`` and ``max_examples //
    batch_size`` (``max_examples``: what is left of the job's compute budget): with ``E`` epochs each epoch
    stops after ``C // E`` steps (or fewer if ``steps_per_epoch`` says so); when ``C < E`` the trial runs
    ``C`` epochs of one step.
    """
    unknown = sorted(set(params) - {p.name for p in spec.parameters})
    if unknown:
        raise TuningSpecError(
            f"parameters {unknown} are not searched by tuning spec {spec.name!r}: sample with suggest()",
            [(f"parameters.{name}", "not in the spec's search space") for name in unknown],
        )
    values = {"selection_metric": spec.objective.metric, **spec.static, **params}
    config = TrainConfig(**{k: v for k, v in values.items() if k in TrainConfig.__dataclass_fields__})
    if not capped:
        return config
    caps = [spec.max_steps_per_trial]
    caps += [max(1, n // config.batch_size) for n in (spec.max_examples_per_trial, max_examples) if n]
    cap = min((c for c in caps if c is not None), default=None)
    if cap is not None:
        if config.epochs > cap:
            config.epochs, per_epoch = cap, 1
        else:
            per_epoch = cap // config.epochs
        if config.steps_per_epoch is None or config.steps_per_epoch > per_epoch:
            config.steps_per_epoch = per_epoch
    return config


def backend_options(spec: TuningSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """The backend's own options of one trial (the names of ``spec.static`` and ``params`` that are not
    TrainConfig fields: the spec checker let them through as the backend's ``tunable``), for its
    constructor."""
    values = {**spec.static, **params}
    return {k: v for k, v in values.items() if k not in TrainConfig.__dataclass_fields__}


def grid_points(spec: TuningSpec) -> dict[str, list[Any]]:
    """The grid for ``GridSampler``: categorical values as listed, integer ranges expanded (every integer
    from min to max). Raises :class:`TuningSpecError` for a continuous parameter."""
    grid: dict[str, list[Any]] = {}
    problems = []
    for p in spec.parameters:
        if p.type == "categorical":
            grid[p.name] = list(p.values)
        elif p.type == "integer":
            assert p.min is not None and p.max is not None
            grid[p.name] = list(range(int(p.min), int(p.max) + 1))
        else:
            problems.append((f"parameters.{p.name}.type", "continuous: make it categorical or give values"))
    if problems:
        raise TuningSpecError(
            f"tuning spec {spec.name!r} cannot be searched on a grid: "
            f"{', '.join(field for field, _ in problems)} are continuous; make them categorical with values",
            problems,
        )
    return grid


def grid_size(spec: TuningSpec) -> int:
    """How many points :func:`grid_points` enumerates (the product of the value counts)."""
    size = 1
    for values in grid_points(spec).values():
        size *= len(values)
    return size


def max_trial_steps(spec: TuningSpec, epoch_steps: int | None = None) -> int | None:
    """The most optimizer steps one trial can run, or None when unknown (whole epochs of a data set whose
    size the spec does not say). ``epoch_steps``: the steps of a whole epoch, when the caller knows them."""
    epochs = highest_value(spec, "epochs")
    per_epoch = highest_value(spec, "steps_per_epoch")
    if per_epoch is None or (epoch_steps is not None and epoch_steps < per_epoch):
        per_epoch = epoch_steps
    total = None if per_epoch is None else int(epochs) * int(per_epoch)
    caps = [spec.max_steps_per_trial]
    if spec.max_examples_per_trial is not None:  # the smallest batches take the most steps
        caps.append(max(1, spec.max_examples_per_trial // int(_lowest_value(spec, "batch_size"))))
    for cap in caps:
        if cap is not None:
            total = cap if total is None else min(total, cap)
    return total


def _lowest_value(spec: TuningSpec, name: str) -> Any:
    for p in spec.parameters:
        if p.name == name:
            return p.min if p.type != "categorical" else min(p.values)
    return spec.static.get(name, getattr(TrainConfig(), name))


def max_trial_examples(spec: TuningSpec, train_size: int | None = None) -> int | None:
    """The most training examples one trial can process, the resource pruners count in; None when unknown
    (whole epochs of a training split whose size is not given). ``train_size``: the training split's rows.
    Epochs of ``steps_per_epoch`` steps count at the largest batch size."""
    epochs = int(highest_value(spec, "epochs"))
    batch = int(highest_value(spec, "batch_size"))
    steps = highest_value(spec, "steps_per_epoch")
    per_epoch = None if steps is None else int(steps) * batch
    if train_size is not None:
        per_epoch = train_size if per_epoch is None else min(per_epoch, train_size)
    total = None if per_epoch is None else epochs * per_epoch
    step_cap = None if spec.max_steps_per_trial is None else spec.max_steps_per_trial * batch
    for cap in (spec.max_examples_per_trial, step_cap):
        if cap is not None:
            total = cap if total is None else min(total, cap)
    return total


def highest_value(spec: TuningSpec, name: str) -> Any:
    """The largest value hyperparameter ``name`` takes in any trial (None: unbounded, as a whole epoch)."""
    for p in spec.parameters:
        if p.name == name:
            if p.type != "categorical":
                return p.max
            return None if None in p.values else max(p.values)
    return spec.static.get(name, getattr(TrainConfig(), name))


def _from_one_minus(parameter: Parameter, u: float) -> float:
    assert parameter.min is not None and parameter.max is not None
    return min(max(1.0 - u, parameter.min), parameter.max)
