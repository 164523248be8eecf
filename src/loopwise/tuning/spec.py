"""Tuning specs: what a tuning job searches, how, and when it stops; read from YAML and checked whole.

A spec is checked before anything runs. Every problem found is reported at once in one
:class:`~loopwise.errors.TuningSpecError` whose ``problems`` name each field as a dotted path
(``parameters.learning_rate.min``) with the fix. The course's SageMaker names are accepted as aliases
(``hyperparameters``, ``hyperparameter_ranges``, ``max_jobs``, ``train_batch_size``, ``freeze_bert_layer``,
``validation:accuracy``, ``Random``, ``min_value``, ``scaling_type: Logarithmic``...), so the course's Lab 1
tuning spec parses as written (``specs/course_lab1.yaml``). Choices are case-insensitive.

Scaling ``auto`` resolves when parsed: ``log`` for a continuous or integer range with ``min > 0`` spanning
at least two orders of magnitude (``max / min >= 100``), ``linear`` otherwise. A parsed spec never holds
``auto``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from loopwise.errors import TuningSpecError
from loopwise.tuning.records import TuningJob

Strategy = Literal["random", "grid", "bayesian", "hyperband"]
Metric = Literal["val_acc", "val_macro_f1", "val_loss"]
Direction = Literal["maximize", "minimize"]
ParameterType = Literal["continuous", "integer", "categorical"]
Scaling = Literal["linear", "log", "reverse_log", "auto"]
EarlyStopping = Literal["off", "auto"]
WarmStartType = Literal["identical_data_and_algorithm", "transfer_learning"]
FinalFitData = Literal["train", "train+validation"]
#: a registered classifier backend that trains (see ``loopwise.classifiers.available_backends``)
Backend = str

STRATEGIES: tuple[str, ...] = typing.get_args(Strategy)
METRIC_DIRECTIONS: dict[str, str] = {
    "val_acc": "maximize",
    "val_macro_f1": "maximize",
    "val_loss": "minimize",
}
BUILTIN_SPECS = ("course_lab1", "default_bayesian")


@dataclass(frozen=True)
class Parameter:
    """One searched hyperparameter: a numeric range (``min``/``max``/``scaling``) or categorical ``values``.

    ``reverse_log`` is for continuous values in ``[0, 1)`` that matter most near 1 (see
    :mod:`loopwise.tuning.space` for how it is sampled).
    """

    name: str
    type: ParameterType
    min: float | None = None
    max: float | None = None
    scaling: Scaling = "linear"
    values: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.scaling == "auto":
            object.__setattr__(self, "scaling", _auto_scaling(self.min, self.max))

    def to_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": self.type, "values": list(self.values)}
        return {"type": self.type, "min": self.min, "max": self.max, "scaling": self.scaling}


@dataclass(frozen=True)
class Objective:
    metric: Metric = "val_acc"
    direction: Direction = "maximize"


@dataclass(frozen=True)
class Completion:
    """When a job stops before ``max_trials``; every criterion is optional."""

    target_objective: float | None = None
    no_improvement_trials: int | None = None
    max_runtime_s: float | None = None
    #: the job's compute budget in training examples processed, over all its trials (a trial gets what is
    #: left when it starts and stops there)
    max_examples: int | None = None


@dataclass(frozen=True)
class WarmStart:
    """Parent jobs: ``identical_data_and_algorithm`` reuses their trials, ``transfer_learning`` uses them
    as prior knowledge only."""

    parents: tuple[str, ...]
    type: WarmStartType = "identical_data_and_algorithm"


@dataclass(frozen=True)
class FinalFit:
    """What the job trains once its search ends: the best trial's configuration on the whole training
    split (``train``) or on training and validation together (``train+validation``: nothing is held out
    for validation), for ``epochs`` epochs (None: the best trial's). No per-trial cap applies."""

    enabled: bool = True
    data: FinalFitData = "train"
    epochs: int | None = None

    @property
    def held_out(self) -> bool:
        """Whether the validation split stays out of the fit (``data: train``) to validate it."""
        return self.data == "train"


@dataclass(frozen=True)
class TuningSpec:
    """A checked tuning job description. Build it with :func:`load_spec` or :func:`parse_spec`."""

    name: str
    parameters: tuple[Parameter, ...]
    dataset: str = "reviews"
    backend: Backend = "transformers"
    base_model: str | None = None
    #: fixed hyperparameters, by TrainConfig field name or backend option (the backend's ``tunable``);
    #: ``device`` and ``precision`` (where the trials run) are static only
    static: dict[str, Any] = field(default_factory=dict)
    objective: Objective = Objective()
    strategy: Strategy = "bayesian"
    max_trials: int = 20
    #: the most trials running at once over all workers; None (not set): each worker runs one trial per
    #: share of its device pool (one at a time without accelerators), with no cap across workers
    max_parallel_trials: int | None = None
    #: the CUDA devices each trial gets from its worker's pool (``num_gpus`` on Ray)
    devices_per_trial: int = 1
    early_stopping: EarlyStopping = "off"
    completion: Completion = Completion()
    warm_start: WarmStart | None = None
    #: the tuner's seed (sampling order); defaults to the static training seed, else 42
    seed: int = 42
    #: how often a failed trial is retried with the same parameters
    retries: int = 0
    #: cap on one trial's optimizer steps (epochs x steps_per_epoch), to fit a small machine
    max_steps_per_trial: int | None = None
    #: how many of the best completed trials keep their checkpoints (the others' files are removed)
    keep_checkpoints: int = 3
    #: cap on one trial's training examples (its steps: this // batch_size), to compare at equal compute
    max_examples_per_trial: int | None = None
    #: the registered name of the trials' model versions (default: the job's name)
    model_name: str | None = None
    #: the final fit after the search (see :class:`FinalFit`)
    final_fit: FinalFit = FinalFit()
    source: str = field(default="<spec>", compare=False)

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The canonical mapping: ``parse_spec(spec.to_dict()) == spec``."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "backend": self.backend,
            "base_model": self.base_model,
            "static": dict(self.static),
            "parameters": {p.name: p.to_dict() for p in self.parameters},
            "objective": {"metric": self.objective.metric, "direction": self.objective.direction},
            "strategy": self.strategy,
            "max_trials": self.max_trials,
            "max_parallel_trials": self.max_parallel_trials,
            "devices_per_trial": self.devices_per_trial,
            "early_stopping": self.early_stopping,
            "completion": vars(self.completion).copy(),
            "warm_start": None
            if self.warm_start is None
            else {"parents": list(self.warm_start.parents), "type": self.warm_start.type},
            "seed": self.seed,
            "retries": self.retries,
            "max_steps_per_trial": self.max_steps_per_trial,
            "keep_checkpoints": self.keep_checkpoints,
            "max_examples_per_trial": self.max_examples_per_trial,
            "model_name": self.model_name,
            "final_fit": vars(self.final_fit).copy(),
        }


def builtin_spec_path(name: str) -> Path:
    """The path of a spec shipped with loopwise (``course_lab1``, ``default_bayesian``)."""
    if name not in BUILTIN_SPECS:
        raise TuningSpecError(f"no built-in tuning spec {name!r}; use one of {', '.join(BUILTIN_SPECS)}")
    return Path(str(resources.files("loopwise.tuning") / "specs" / f"{name}.yaml"))


def load_spec(path: str | Path) -> TuningSpec:
    """Read and check a YAML spec; ``name`` defaults to the file's stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TuningSpecError(f"cannot read tuning spec {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TuningSpecError(
            f"tuning spec {path} is not valid YAML{where}: {problem}; fix the syntax there",
            [(f"line {mark.line + 1}" if mark is not None else "", str(problem))],
        ) from None
    if isinstance(data, dict) and "name" not in data:
        data = {"name": path.stem, **data}
    return parse_spec(data, source=str(path))


def parse_spec(data: Any, source: str = "<spec>") -> TuningSpec:
    """Check a spec given as a mapping (parsed YAML or JSON); raise :class:`TuningSpecError` listing every
    problem found."""
    from loopwise.tuning._check import _Checker

    checker = _Checker()
    spec = checker.spec(data, source)
    if checker.problems or spec is None:
        lines = "\n".join(f"  {path or '(spec)'}: {message}" for path, message in checker.problems)
        count = len(checker.problems)
        raise TuningSpecError(
            f"tuning spec {source} is invalid ({count} problem{'s' * (count != 1)}):\n{lines}",
            checker.problems,
        )
    return spec


def _auto_scaling(low: float | None, high: float | None) -> Scaling:
    if low is not None and high is not None and low > 0 and high / low >= 100:
        return "log"
    return "linear"


def job_spec(job: TuningJob) -> TuningSpec:
    """The checked spec of a tuning job, read back from its stored mapping."""
    return parse_spec(job.spec, source=f"tuning job {job.name}")
