"""Search spaces: distributions, one trial's sample, the TrainConfig it trains with, and grids."""

from __future__ import annotations

import itertools
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from loopwise.classifiers import TrainConfig
from loopwise.errors import TuningSpecError
from loopwise.tuning import (
    TuningSpec,
    build_config,
    builtin_spec_path,
    decode_params,
    distributions,
    grid_points,
    grid_size,
    load_spec,
    max_trial_steps,
    optuna_name,
    parse_spec,
    suggest,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "learning_rate": {"type": "continuous", "min": 1e-5, "max": 2e-4, "scaling": "log"},
    "weight_decay": {"type": "continuous", "min": 0.0, "max": 0.1},
    "warmup_ratio": {"type": "continuous", "min": 0.0, "max": 0.99, "scaling": "reverse_log"},
    "freeze_layers": {"type": "integer", "min": 0, "max": 3},
    "epochs": {"type": "integer", "min": 1, "max": 16, "scaling": "log"},
    "batch_size": {"type": "categorical", "values": [16, 32]},
}


def spec_with(**overrides: Any) -> TuningSpec:
    data: dict[str, Any] = {"name": "space", "parameters": SPACE, "static": {"max_seq_length": 64, "seed": 3}}
    data.update(overrides)
    return parse_spec(data)


def test_distributions_match_the_spec() -> None:
    dists = distributions(spec_with())
    assert dists["learning_rate"] == FloatDistribution(1e-5, 2e-4, log=True)
    assert dists["weight_decay"] == FloatDistribution(0.0, 0.1, log=False)
    assert dists["one_minus_warmup_ratio"] == FloatDistribution(1 - 0.99, 1.0, log=True)
    assert dists["freeze_layers"] == IntDistribution(0, 3, log=False)
    assert dists["epochs"] == IntDistribution(1, 16, log=True)
    assert dists["batch_size"] == CategoricalDistribution((16, 32))
    assert "warmup_ratio" not in dists


def test_suggest_samples_inside_the_ranges_and_builds_a_valid_config() -> None:
    spec = spec_with()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        params = suggest(trial, spec)
        assert set(params) == {p.name for p in spec.parameters}
        assert 1e-5 <= params["learning_rate"] <= 2e-4
        assert 0.0 <= params["weight_decay"] <= 0.1
        assert 0.0 <= params["warmup_ratio"] <= 0.99
        assert params["freeze_layers"] in range(4) and params["epochs"] in range(1, 17)
        assert params["batch_size"] in (16, 32)
        assert decode_params(spec, trial.params) == pytest.approx(params)
        config = build_config(spec, params)
        assert isinstance(config, TrainConfig)
        assert config.max_seq_length == 64 and config.seed == 3  # static merged
        assert config.learning_rate == params["learning_rate"] and config.batch_size == params["batch_size"]
        assert config.selection_metric == "val_acc"
        study.tell(trial, 0.5)


def test_course_lab1_trial_config() -> None:
    spec = load_spec(builtin_spec_path("course_lab1"))
    config = build_config(
        spec, suggest(optuna.trial.FixedTrial({"learning_rate": 3e-5, "batch_size": 256}), spec)
    )
    assert config == TrainConfig(
        learning_rate=3e-5,
        batch_size=256,
        epochs=3,
        steps_per_epoch=50,
        validation_batch_size=64,
        seed=42,
        freeze_layers=0,
        max_seq_length=128,
    )


@pytest.mark.parametrize(
    ("static", "cap", "expected"),
    [
        ({"epochs": 3, "steps_per_epoch": 50}, 60, (3, 20)),
        ({"epochs": 3, "steps_per_epoch": 50}, 1000, (3, 50)),
        ({"epochs": 2}, 100, (2, 50)),
        ({"epochs": 5}, 3, (3, 1)),
    ],
)
def test_max_steps_per_trial_caps_the_optimizer_steps(
    static: dict[str, int], cap: int, expected: tuple[int, int]
) -> None:
    spec = parse_spec(
        {
            "name": "cap",
            "static": static,
            "max_steps_per_trial": cap,
            "parameters": {"learning_rate": {"type": "continuous", "min": 1e-5, "max": 5e-5}},
        }
    )
    config = build_config(spec, {"learning_rate": 2e-5})
    assert (config.epochs, config.steps_per_epoch) == expected
    assert config.epochs * config.steps_per_epoch <= cap
    assert max_trial_steps(spec) == min(cap, expected[0] * expected[1])


@pytest.mark.parametrize(
    ("batch_size", "per_trial", "left", "expected"),
    [
        (128, 11_000, None, (3, 28)),  # 85 steps: 3 epochs of 28
        (256, 11_000, None, (3, 14)),  # 42 steps
        (128, 11_000, 2_000, (3, 5)),  # what is left of the job's budget: 15 steps
        (128, None, 200, (1, 1)),  # one step when the budget is nearly spent
    ],
)
def test_compute_caps_in_examples_become_steps_for_each_batch_size(
    batch_size: int, per_trial: int | None, left: int | None, expected: tuple[int, int]
) -> None:
    spec = parse_spec(
        {
            "name": "cap",
            "static": {"epochs": 3, "steps_per_epoch": 50},
            "max_examples_per_trial": per_trial,
            "parameters": {"batch_size": {"type": "categorical", "values": [128, 256]}},
        }
    )
    config = build_config(spec, {"batch_size": batch_size}, max_examples=left)
    assert (config.epochs, config.steps_per_epoch) == expected
    if per_trial is not None:
        assert max_trial_steps(spec) == per_trial // 128  # the smallest batches take the most steps


def test_max_trial_steps_knows_whole_epochs_only_when_told() -> None:
    spec = spec_with()  # epochs searched up to 16, steps_per_epoch unset
    assert max_trial_steps(spec) is None
    assert max_trial_steps(spec, epoch_steps=100) == 1600


def test_build_config_refuses_parameters_outside_the_space() -> None:
    with pytest.raises(TuningSpecError, match="dropout"):
        build_config(spec_with(), {"dropout": 0.1})


def test_grid_enumerates_exactly_the_product() -> None:
    spec = parse_spec(
        {
            "name": "grid",
            "strategy": "grid",
            "parameters": {
                "batch_size": {"type": "categorical", "values": [16, 32]},
                "freeze_layers": {"type": "integer", "min": 0, "max": 2},
                "learning_rate": {"type": "categorical", "values": [1e-5, 3e-5]},
            },
        }
    )
    assert grid_points(spec) == {
        "batch_size": [16, 32],
        "freeze_layers": [0, 1, 2],
        "learning_rate": [1e-5, 3e-5],
    }
    assert grid_size(spec) == 12
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid_points(spec), seed=1))
    seen = []

    def objective(trial: optuna.Trial) -> float:
        seen.append(tuple(suggest(trial, spec).values()))
        return 0.0

    study.optimize(objective, n_trials=20)  # the sampler stops the study once the grid is exhausted
    assert sorted(seen) == sorted(itertools.product([16, 32], [0, 1, 2], [1e-5, 3e-5]))


def test_grid_points_refuse_a_continuous_parameter() -> None:
    with pytest.raises(TuningSpecError) as caught:
        grid_points(spec_with())
    assert [field for field, _ in caught.value.problems] == [
        "parameters.learning_rate.type",
        "parameters.weight_decay.type",
        "parameters.warmup_ratio.type",
    ]


def test_reverse_log_samples_concentrate_near_the_top() -> None:
    spec = parse_spec(
        {
            "name": "momentum",
            "parameters": {
                "warmup_ratio": {"type": "continuous", "min": 0.0, "max": 0.999, "scaling": "reverse_log"}
            },
        }
    )
    assert optuna_name(spec.parameters[0]) == "one_minus_warmup_ratio"
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    values = []
    for _ in range(400):
        trial = study.ask()
        values.append(suggest(trial, spec)["warmup_ratio"])
        study.tell(trial, 0.0)
    assert all(0.0 <= v <= 0.999 for v in values)
    # 1 - x is log-uniform on [0.001, 1]: a third of the samples above 0.99, two thirds above 0.9
    above_099 = sum(v > 0.99 for v in values) / len(values)
    above_09 = sum(v > 0.9 for v in values) / len(values)
    assert 0.25 < above_099 < 0.42 and 0.58 < above_09 < 0.75
    assert sum(v < 0.5 for v in values) / len(values) < 0.15  # linear would give one half
