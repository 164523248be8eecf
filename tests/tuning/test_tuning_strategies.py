"""Strategies: the sampler and pruner each spec asks for, reproducible seeds, the default search space."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import optuna
import pytest
from optuna.pruners import HyperbandPruner, MedianPruner, NopPruner
from optuna.samplers import GridSampler, RandomSampler, TPESampler

import loopwise.tuning
from loopwise.tuning import (
    TuningSpec,
    builtin_spec_path,
    default_space,
    load_spec,
    make_pruner,
    make_sampler,
    parse_spec,
    suggest,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

PARAMETERS = {
    "learning_rate": {"type": "continuous", "min": 1e-5, "max": 1e-4, "scaling": "log"},
    "batch_size": {"type": "categorical", "values": [16, 32]},
}


def spec_with(**overrides: Any) -> TuningSpec:
    data: dict[str, Any] = {
        "name": "s",
        "parameters": PARAMETERS,
        "static": {"epochs": 3, "steps_per_epoch": 50},
    }
    data.update(overrides)
    return parse_spec(data)


@pytest.mark.parametrize(
    ("strategy", "sampler_type"),
    [("random", RandomSampler), ("bayesian", TPESampler), ("hyperband", TPESampler)],
)
def test_each_strategy_gets_its_sampler(strategy: str, sampler_type: type) -> None:
    assert type(make_sampler(spec_with(strategy=strategy))) is sampler_type


def test_grid_strategy_gets_a_grid_sampler() -> None:
    spec = spec_with(strategy="grid", parameters={"batch_size": PARAMETERS["batch_size"]})
    assert isinstance(make_sampler(spec), GridSampler)


def test_tpe_is_multivariate_grouped_and_lies_only_when_parallel() -> None:
    serial = make_sampler(spec_with(strategy="bayesian", max_trials=20))
    parallel = make_sampler(spec_with(strategy="bayesian", max_trials=20, max_parallel_trials=4))
    assert isinstance(serial, TPESampler) and isinstance(parallel, TPESampler)
    assert serial._multivariate and serial._group
    assert not serial._constant_liar and parallel._constant_liar
    assert serial._n_startup_trials == 4 and parallel._n_startup_trials == 4


def test_the_same_seed_reproduces_the_same_parameters() -> None:
    def sample(seed: int) -> list[dict[str, Any]]:
        spec = spec_with(strategy="random", seed=seed)
        study = optuna.create_study(sampler=make_sampler(spec))
        out = []
        for _ in range(5):
            trial = study.ask()
            out.append(suggest(trial, spec))
            study.tell(trial, 0.0)
        return out

    assert sample(11) == sample(11)
    assert sample(11) != sample(12)


def test_hyperband_uses_epochs_as_the_fidelity_in_examples_seen() -> None:
    pruner = make_pruner(spec_with(strategy="hyperband"))  # 3 epochs of 50 steps of up to 32 examples
    assert isinstance(pruner, HyperbandPruner)
    assert (pruner._min_resource, pruner._max_resource, pruner._reduction_factor) == (1600, 4800, 3)
    capped = make_pruner(spec_with(strategy="hyperband"), train_size=1000)  # an epoch is the whole split
    assert isinstance(capped, HyperbandPruner)
    assert (capped._min_resource, capped._max_resource) == (1000, 3000)


def test_hyperband_without_known_epoch_length_measures_the_first_trial() -> None:
    spec = spec_with(strategy="hyperband", static={"epochs": 3})
    pruner = make_pruner(spec)
    assert isinstance(pruner, HyperbandPruner) and pruner._max_resource == "auto"
    told = make_pruner(spec, train_size=40)
    assert isinstance(told, HyperbandPruner)
    assert (told._min_resource, told._max_resource) == (40, 120)


def test_early_stopping_auto_is_the_median_rule_after_the_first_epoch() -> None:
    pruner = make_pruner(spec_with(strategy="random", early_stopping="auto", max_trials=10))
    assert isinstance(pruner, MedianPruner)
    assert pruner._n_warmup_steps == 1600 and pruner._n_startup_trials == 2


def test_early_stopping_off_prunes_nothing() -> None:
    assert isinstance(make_pruner(spec_with(strategy="bayesian")), NopPruner)


def test_course_lab1_gets_random_search_with_the_median_rule() -> None:
    spec = load_spec(builtin_spec_path("course_lab1"))
    assert isinstance(make_sampler(spec), RandomSampler)
    pruner = make_pruner(spec)
    assert isinstance(pruner, MedianPruner) and pruner._n_startup_trials == 1


def test_default_space_is_the_default_spec_and_runs_with_tpe_and_the_median_rule() -> None:
    spec = load_spec(builtin_spec_path("default_bayesian"))
    assert default_space() == spec.parameters
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(spec), pruner=make_pruner(spec, train_size=10)
    )
    for _ in range(6):
        trial = study.ask()
        params = suggest(trial, spec)
        for step in (10, 20, 30):
            trial.report(params["learning_rate"] * 1000, step)
        study.tell(trial, params["learning_rate"] * 1000)
    assert len(study.trials) == 6


def test_every_exported_name_resolves_and_import_stays_cheap() -> None:
    assert len(set(loopwise.tuning.__all__)) == len(loopwise.tuning.__all__)
    for name in loopwise.tuning.__all__:
        assert getattr(loopwise.tuning, name) is not None, name
    assert sorted(loopwise.tuning.__all__) == dir(loopwise.tuning)
    code = "import sys, loopwise.tuning; print(sorted({'optuna', 'torch', 'pandas'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
