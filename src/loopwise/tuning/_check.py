"""The spec checker: walks a raw spec mapping once and collects every problem as (dotted field, message).

Private to :mod:`loopwise.tuning.spec`; :func:`~loopwise.tuning.spec.parse_spec` is the way in.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

from loopwise.classifiers import Tunable, available_backends, classifier_class
from loopwise.errors import ClassifierError, LoopwiseError
from loopwise.registry.versions import check_name
from loopwise.tuning._check_final import check_final_fit
from loopwise.tuning._problems import Problems
from loopwise.tuning._vocabulary import (
    HP_ALIASES,
    LIMITS,
    METRIC_ALIASES,
    PARAMETER_ALIASES,
    PLACEMENT,
    PREDICT_ONLY,
    SCALING_ALIASES,
    TOP_ALIASES,
    TOP_KEYS,
    TRAIN_FIELDS,
    suggest,
)
from loopwise.tuning.spec import (
    METRIC_DIRECTIONS,
    STRATEGIES,
    Completion,
    Direction,
    EarlyStopping,
    Objective,
    Parameter,
    ParameterType,
    Scaling,
    TuningSpec,
    WarmStart,
    WarmStartType,
)


class _Checker(Problems):
    """Walks the raw mapping once, collecting every problem as ``(dotted field, message)``."""

    def __init__(self) -> None:
        super().__init__()
        self.backend: str | None = None
        self._tunable: dict[str, Tunable] | None = None

    def hp_value(self, name: str, raw: Any, path: str) -> Any:
        """A value for TrainConfig field or backend option ``name``: type-checked, within its limits; None
        when reported."""
        base, nullable, limit = self.kind(name)
        if raw is None:
            if not nullable:
                self.add(path, f"{name} cannot be null: give a value or leave it out")
            return None
        if base is bool or base is str:
            if not isinstance(raw, base):
                self.add(path, f"{name} takes a {base.__name__}, got {raw!r}")
                return None
            value: Any = raw
            if name in PLACEMENT:
                try:
                    value = PLACEMENT[name](str(raw))
                except LoopwiseError as exc:
                    self.add(path, str(exc))
                    return None
        else:
            value = self.number(raw, path, integer=base is int)
            if value is None:
                return None
        if limit is not None and not limit[0](value):
            self.add(path, f"{name} must be {limit[1]}, got {value!r}")
            return None
        return value

    def hp_name(self, key: Any, path: str) -> tuple[str, Callable[[Any], Any]] | None:
        """The TrainConfig field or backend option that ``key`` names, with its value conversion."""
        if isinstance(key, str) and key in HP_ALIASES:
            return HP_ALIASES[key]
        if isinstance(key, str) and key in TRAIN_FIELDS:
            return key, lambda v: v
        tunable = self.tunable()
        if isinstance(key, str) and key in tunable:
            return key, lambda v: v
        names = sorted([*TRAIN_FIELDS, *tunable])
        self.add(path, f"unknown hyperparameter {key!r}{suggest(str(key), names)}; use one of {names}")
        return None

    def tunable(self) -> dict[str, Tunable]:
        """The backend's own tunable options (its class's ``tunable``), loaded the first time a name is not
        the trainer's: a spec of trainer parameters alone never imports the backend."""
        if self._tunable is None:
            self._tunable = {}
            if self.backend is not None:
                try:
                    declared = classifier_class(self.backend).tunable
                except ClassifierError as exc:
                    self.add("backend", str(exc))
                else:
                    self._tunable = {k: v for k, v in declared.items() if k not in TRAIN_FIELDS}
        return self._tunable

    def kind(self, name: str) -> tuple[type, bool, tuple[Callable[[Any], bool], str] | None]:
        """Of a known name: its value type, whether null is allowed, and its limit (test, in words)."""
        if name in TRAIN_FIELDS:
            base, nullable = TRAIN_FIELDS[name]
            return base, nullable, LIMITS.get(name)
        option = self.tunable()[name]
        bounded = option.low is not None or option.high is not None
        return option.type, option.nullable, (option.accepts, option.bounds()) if bounded else None

    # -- sections -----------------------------------------------------------------------------------------

    def spec(self, data: Any, source: str) -> TuningSpec | None:
        if not isinstance(data, dict):
            self.add("", f"a tuning spec is a mapping of settings, got {type(data).__name__}")
            return None
        top = self.keys(data, "", TOP_KEYS, TOP_ALIASES)
        raw = {key: value for key, (_, value) in top.items()}
        path = {key: written for key, (written, _) in top.items()}
        # sections in the order of the file's documentation: problems are reported in this order
        fields = self.identity(raw)
        static = fields["static"] = self.static(raw.get("static", {}), path.get("static", "static"))
        strategy = self.choice(raw.get("strategy", "bayesian"), path.get("strategy", "strategy"), STRATEGIES)
        fields["strategy"] = strategy
        fields["parameters"] = self.searched(raw, path, static, strategy)
        fields["objective"] = self.objective(raw)
        fields |= self.trial_counts(raw, path)
        fields["early_stopping"] = self.early_stopping(raw, path, strategy)
        fields |= self.job_settings(raw, fields["name"], static)
        if self.problems or not isinstance(fields["name"], str):
            return None
        return TuningSpec(**fields, source=source)

    def identity(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The job's name, its data set, backend and base model."""
        name = raw.get("name")
        if not isinstance(name, str):
            self.add("name", "give the tuning job a name (letters, digits, '.', '_' or '-')")
        else:
            try:
                check_name(name, "tuning job name")
            except LoopwiseError as exc:
                self.add("name", str(exc))
        dataset = raw.get("dataset", "reviews")
        if not isinstance(dataset, str) or not dataset or dataset.count(":") > 1:
            self.add("dataset", f"expected a data set reference NAME or NAME:VERSION, got {dataset!r}")
        backends = tuple(b for b in available_backends() if b not in PREDICT_ONLY)
        backend = self.choice(raw.get("backend", "transformers"), "backend", backends)
        self.backend = backend
        base_model = raw.get("base_model")
        if base_model is not None and not isinstance(base_model, str):
            self.add("base_model", f"expected a model name or path, got {base_model!r}")
        return {"name": name, "dataset": dataset, "backend": backend, "base_model": base_model}

    def searched(
        self, raw: dict[str, Any], path: dict[str, str], static: Mapping[str, Any], strategy: Any
    ) -> tuple[Parameter, ...]:
        """The parameters to search; grid search refuses a continuous one."""
        parameters = self.parameters(raw.get("parameters"), path.get("parameters", "parameters"), static)
        if strategy == "grid":
            for p in parameters:
                if p.type == "continuous":
                    self.add(
                        f"{path.get('parameters', 'parameters')}.{p.name}.type",
                        "grid search needs a finite set of values: make it categorical with values "
                        "(or integer), or use strategy random, bayesian or hyperband",
                    )
        return parameters

    def trial_counts(self, raw: dict[str, Any], path: dict[str, str]) -> dict[str, Any]:
        """``max_trials``, ``max_parallel_trials`` (at most ``max_trials``; unset or null: one trial per
        device share) and ``devices_per_trial``."""
        max_trials = self.number(raw.get("max_trials", 20), path.get("max_trials", "max_trials"), True, 1)
        where = path.get("max_parallel_trials", "max_parallel_trials")
        parallel = raw.get("max_parallel_trials")
        parallel = None if parallel is None else self.number(parallel, where, True)
        if parallel is not None and (parallel < 1 or (max_trials is not None and parallel > max_trials)):
            self.add(where, f"must be between 1 and max_trials ({max_trials}), got {parallel}")
            parallel = None
        per_trial = self.number(raw.get("devices_per_trial", 1), "devices_per_trial", True, 1)
        return {"max_trials": max_trials, "max_parallel_trials": parallel, "devices_per_trial": per_trial}

    def early_stopping(self, raw: dict[str, Any], path: dict[str, str], strategy: Any) -> Any:
        """``early_stopping`` (default: ``auto`` for hyperband, which cannot do without it, else ``off``)."""
        where = path.get("early_stopping", "early_stopping")
        default_stop = "auto" if strategy == "hyperband" else "off"
        early = raw.get("early_stopping", default_stop)
        if isinstance(early, bool):  # YAML 1.1 reads off/on as booleans
            early = "auto" if early else "off"
        early = self.choice(early, where, typing.get_args(EarlyStopping))
        if strategy == "hyperband" and early == "off":
            self.add(
                where,
                "hyperband stops trials early by design: remove early_stopping or choose another strategy",
            )
        return early

    def job_settings(self, raw: dict[str, Any], name: Any, static: Mapping[str, Any]) -> dict[str, Any]:
        """Completion, warm start, seed, retries, the per-trial caps, checkpoints kept, the model's name, the
        final fit."""
        completion = self.completion(raw.get("completion", {}), "completion")
        warm_start = self.warm_start(raw.get("warm_start"), "warm_start", name)
        seed = self.number(raw.get("seed", static.get("seed", 42)), "seed", True)
        retries = self.number(raw.get("retries", 0), "retries", True, 0)
        cap = raw.get("max_steps_per_trial")
        cap = None if cap is None else self.number(cap, "max_steps_per_trial", True, 1)
        keep = self.number(raw.get("keep_checkpoints", 3), "keep_checkpoints", True, 1)
        model_name = raw.get("model_name")
        if model_name is not None:
            try:
                check_name(model_name, "model name")
            except LoopwiseError as exc:
                self.add("model_name", str(exc))
        per_trial = raw.get("max_examples_per_trial")
        per_trial = None if per_trial is None else self.number(per_trial, "max_examples_per_trial", True, 1)
        return {
            "completion": completion,
            "warm_start": warm_start,
            "seed": seed,
            "retries": retries,
            "max_steps_per_trial": cap,
            "keep_checkpoints": keep,
            "max_examples_per_trial": per_trial,
            "model_name": model_name,
            "final_fit": check_final_fit(self, raw.get("final_fit")),
        }

    def static(self, raw: Any, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if raw is None:
            return out
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping of hyperparameter: value, got {type(raw).__name__}")
            return out
        for key, value in raw.items():
            where = f"{path}.{key}"
            if key == "run_validation":  # the course's switch; tuning always validates
                if value is not True:
                    self.add(where, "tuning needs validation to score trials: set it true or remove it")
                continue
            resolved = self.hp_name(key, where)
            if resolved is None:
                continue
            name, convert = resolved
            if name in out:
                self.add(where, f"{name} is given twice (under two names): keep one")
                continue
            out[name] = self.hp_value(name, convert(value), where)
        return out

    def parameters(self, raw: Any, path: str, static: Mapping[str, Any]) -> tuple[Parameter, ...]:
        if not isinstance(raw, dict) or not raw:
            self.add(path, "give at least one hyperparameter to search: NAME: {type: ..., min/max or values}")
            return ()
        out: list[Parameter] = []
        for key, body in raw.items():
            where = f"{path}.{key}"
            resolved = self.hp_name(key, where)
            if resolved is None:
                continue
            name, convert = resolved
            if name in PLACEMENT:
                self.add(where, f"{name} is where trials run, not a hyperparameter: set it under static")
                continue
            if name in static:
                self.add(where, f"{name} is both static and searched: remove it from one of them")
                continue
            if any(p.name == name for p in out):
                self.add(where, f"{name} is searched twice (under two names): keep one")
                continue
            parameter = self.parameter(name, body, where, convert)
            if parameter is not None:
                out.append(parameter)
        return tuple(out)

    def parameter(self, name: str, raw: Any, path: str, convert: Callable[[Any], Any]) -> Parameter | None:
        keys = self.keys(raw, path, ["type", "min", "max", "scaling", "values"], PARAMETER_ALIASES)
        body = {key: value for key, (_, value) in keys.items()}
        at = {key: f"{path}.{written}" for key, (written, _) in keys.items()}
        if not isinstance(raw, dict):
            return None
        if "type" not in body:
            self.add(f"{path}.type", "missing: give continuous, integer or categorical")
            return None
        kind = self.choice(body["type"], at["type"], typing.get_args(ParameterType))
        if kind is None:
            return None
        base = self.kind(name)[0]
        if kind == "categorical":
            return self.categorical(name, body, at, path, convert)
        for key in ("values",):
            if key in body:
                self.add(at[key], "values are for categorical parameters: use type categorical or drop them")
        if base not in (int, float) or (kind == "continuous" and base is int):
            need = "integer or categorical" if base is int else "categorical"
            self.add(at["type"], f"{name} takes {base.__name__} values: use type {need}")
            return None
        bounds: list[Any] = []
        for key in ("min", "max"):
            if key not in body:
                self.add(f"{path}.{key}", f"missing: give the range's {key}imum")
                bounds.append(None)
                continue
            value = self.number(convert(body[key]), at[key], integer=kind == "integer")
            bounds.append(None if value is None else self.hp_value(name, value, at[key]))
        low, high = bounds
        scaling = self.choice(
            body.get("scaling", "auto"),
            at.get("scaling", f"{path}.scaling"),
            typing.get_args(Scaling),
            SCALING_ALIASES,
        )
        if low is None or high is None or scaling is None:
            return None
        if low > high:
            self.add(at["min"], f"min ({low!r}) is above max ({high!r}): swap them")
            return None
        if low == high:
            self.add(at["min"], f"empty range: min equals max ({low!r}); make {name} static or widen it")
            return None
        if scaling == "log" and low <= 0:
            self.add(at["min"], f"a log range needs min > 0, got {low!r}: raise min or use scaling linear")
            return None
        if scaling == "reverse_log":
            if kind == "integer":
                self.add(at["scaling"], "reverse_log is for continuous parameters: use linear or log")
                return None
            if low < 0:
                self.add(at["min"], f"reverse_log needs values in [0, 1), min is {low!r}: raise it to 0")
                return None
            if high >= 1:
                self.add(at["max"], f"reverse_log needs values in [0, 1), max is {high!r}: lower it below 1")
                return None
        return Parameter(name, kind, low, high, scaling)

    def categorical(
        self, name: str, body: dict[str, Any], at: dict[str, str], path: str, convert: Callable[[Any], Any]
    ) -> Parameter | None:
        for key in ("min", "max", "scaling"):
            if key in body:
                self.add(at[key], f"{key} is for numeric ranges: drop it or use type continuous/integer")
        values = body.get("values")
        if not isinstance(values, list) or not values:
            self.add(at.get("values", f"{path}.values"), "give a non-empty list of values")
            return None
        before = len(self.problems)
        checked = [self.hp_value(name, convert(v), f"{at['values']}[{i}]") for i, v in enumerate(values)]
        if len(self.problems) > before:
            return None
        if len(set(checked)) != len(checked):
            self.add(at["values"], f"values repeat ({values!r}): list each value once")
            return None
        return Parameter(name, "categorical", values=tuple(checked))

    def objective(self, raw: dict[str, Any]) -> Objective:
        body: dict[str, Any] = {}
        if "objective" in raw:
            objective = raw["objective"]
            if isinstance(objective, str):
                body = {"metric": objective}
            else:
                keys = self.keys(objective, "objective", ["metric", "direction"], {"type": "direction"})
                body = {key: value for key, (_, value) in keys.items()}
            if "objective_metric_name" in raw or "objective_type" in raw:
                self.add("objective", "give the objective once: either objective or objective_metric_name")
        if "objective_metric_name" in raw:
            body["metric"] = raw["objective_metric_name"]
        if "objective_type" in raw:
            body["direction"] = raw["objective_type"]
        where = "objective_metric_name" if "objective_metric_name" in raw else "objective.metric"
        metric = self.choice(body.get("metric", "val_acc"), where, tuple(METRIC_DIRECTIONS), METRIC_ALIASES)
        natural = METRIC_DIRECTIONS.get(metric or "", "maximize")
        direction = natural
        if "direction" in body:
            where = "objective_type" if "objective_type" in raw else "objective.direction"
            direction = self.choice(body["direction"], where, typing.get_args(Direction)) or natural
            if metric is not None and direction != natural:
                self.add(where, f"{metric} is to {natural}, not {direction}: drop direction or set {natural}")
        return Objective(metric or "val_acc", direction)  # type: ignore[arg-type]

    def completion(self, raw: Any, path: str) -> Completion:
        if raw is None:
            return Completion()
        allowed = ["target_objective", "no_improvement_trials", "max_runtime_s", "max_examples"]
        body = {key: value for key, (_, value) in self.keys(raw, path, allowed, {}).items()}
        target = body.get("target_objective")
        patience = body.get("no_improvement_trials")
        runtime = body.get("max_runtime_s")
        examples = body.get("max_examples")
        return Completion(
            target_objective=None if target is None else self.number(target, f"{path}.target_objective"),
            no_improvement_trials=None
            if patience is None
            else self.number(patience, f"{path}.no_improvement_trials", True, 1),
            max_runtime_s=None
            if runtime is None
            else self.number(runtime, f"{path}.max_runtime_s", minimum=1),
            max_examples=None if examples is None else self.number(examples, f"{path}.max_examples", True, 1),
        )

    def warm_start(self, raw: Any, path: str, own_name: Any) -> WarmStart | None:
        if raw is None:
            return None
        body = {key: value for key, (_, value) in self.keys(raw, path, ["parents", "type"], {}).items()}
        parents = body.get("parents")
        if isinstance(parents, str):
            parents = [parents]
        if not isinstance(parents, list) or not parents or not all(isinstance(p, str) for p in parents):
            self.add(f"{path}.parents", "give a non-empty list of parent tuning job names")
            parents = []
        if own_name in parents:
            self.add(f"{path}.parents", f"a job cannot warm start from itself ({own_name!r}): remove it")
        kind = self.choice(
            body.get("type", "identical_data_and_algorithm"), f"{path}.type", typing.get_args(WarmStartType)
        )
        return WarmStart(tuple(parents), kind or "identical_data_and_algorithm")
