"""Tuning specs: the shipped specs parse to what they say, and every bad input is refused naming its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loopwise.errors import LoopwiseError, TuningSpecError
from loopwise.tuning import (
    Completion,
    Objective,
    Parameter,
    TuningSpec,
    WarmStart,
    builtin_spec_path,
    load_spec,
    parse_spec,
)


def minimal(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "job",
        "parameters": {"learning_rate": {"type": "continuous", "min": 1e-5, "max": 5e-5}},
    }
    spec.update(overrides)
    return spec


def fields_of(data: Any) -> list[str]:
    with pytest.raises(TuningSpecError) as caught:
        parse_spec(data, source="test.yaml")
    assert isinstance(caught.value, LoopwiseError)
    assert "test.yaml" in str(caught.value)
    return [field for field, _ in caught.value.problems]


def test_course_lab1_parses_as_written_in_the_course_terms() -> None:
    spec = load_spec(builtin_spec_path("course_lab1"))
    assert spec.name == "course_lab1"
    assert spec.dataset == "reviews"
    assert spec.backend == "transformers"
    assert spec.base_model is None
    assert spec.static == {
        "epochs": 3,
        "steps_per_epoch": 50,
        "validation_batch_size": 64,
        "seed": 42,
        "freeze_layers": 0,
        "max_seq_length": 128,
    }
    assert spec.parameters == (
        Parameter("learning_rate", "continuous", 0.00001, 0.00005, "linear"),
        Parameter("batch_size", "categorical", values=(128, 256)),
    )
    assert spec.objective == Objective("val_acc", "maximize")
    assert spec.strategy == "random"
    assert (spec.max_trials, spec.max_parallel_trials) == (2, 2)
    assert spec.early_stopping == "auto"
    assert spec.seed == 42
    assert spec.retries == 0
    assert spec.max_steps_per_trial is None
    assert spec.warm_start is None
    assert spec.completion == Completion()


def test_default_bayesian_spec_is_the_ready_bert_search_space() -> None:
    spec = load_spec(builtin_spec_path("default_bayesian"))
    by_name = {p.name: p for p in spec.parameters}
    assert by_name["learning_rate"] == Parameter("learning_rate", "continuous", 1e-5, 2e-4, "log")
    assert by_name["warmup_ratio"] == Parameter("warmup_ratio", "continuous", 0.0, 0.2, "linear")
    assert by_name["weight_decay"] == Parameter("weight_decay", "continuous", 0.0, 0.1, "linear")
    assert by_name["batch_size"].values == (16, 32)
    assert by_name["freeze_layers"] == Parameter("freeze_layers", "integer", 0, 3, "linear")
    assert "epochs" not in by_name and spec.static["epochs"] == 3
    assert spec.strategy == "bayesian" and spec.early_stopping == "auto"


def test_a_minimal_spec_gets_the_documented_defaults() -> None:
    spec = parse_spec(minimal())
    assert spec.dataset == "reviews" and spec.backend == "transformers"
    assert spec.strategy == "bayesian" and spec.early_stopping == "off"
    assert spec.objective == Objective("val_acc", "maximize")
    assert (spec.max_trials, spec.max_parallel_trials, spec.retries, spec.seed) == (20, None, 0, 42)
    assert spec.devices_per_trial == 1  # max_parallel_trials unset: one trial per device share, else one


def test_every_setting_round_trips_through_to_dict() -> None:
    spec = parse_spec(
        minimal(
            backend="tfidf",
            base_model="some/model",
            dataset="reviews:3",
            static={"epochs": 2, "steps_per_epoch": None},
            objective={"metric": "val_loss"},
            strategy="hyperband",
            max_trials=9,
            max_parallel_trials=3,
            devices_per_trial=2,
            completion={"target_objective": 0.8, "no_improvement_trials": 4, "max_runtime_s": 600},
            warm_start={"parents": ["old-job"], "type": "TransferLearning"},
            seed=7,
            retries=2,
            max_steps_per_trial=120,
        )
    )
    assert spec.objective == Objective("val_loss", "minimize")
    assert spec.warm_start == WarmStart(("old-job",), "transfer_learning")
    assert spec.completion == Completion(0.8, 4, 600.0)
    assert parse_spec(spec.to_dict()) == spec


def test_course_aliases_and_case_insensitive_choices() -> None:
    spec = parse_spec(
        {
            "name": "aliases",
            "hyperparameters": {"train_batch_size": 128, "freeze_bert_layer": True, "run_validation": True},
            "hyperparameter_ranges": {
                "train_steps_per_epoch": {"type": "Integer", "min_value": 10, "max_value": 50},
                "weight_decay": {
                    "type": "Continuous",
                    "min": 0.001,
                    "max": 0.1,
                    "scaling_type": "Logarithmic",
                },
                "warmup_ratio": {"type": "continuous", "min": 0, "max": 0.5, "scaling": "ReverseLogarithmic"},
            },
            "objective": {"metric": "validation:accuracy", "direction": "Maximize"},
            "strategy": "Bayesian",
            "max_jobs": 4,
            "max_parallel_jobs": 2,
            "early_stopping_type": "Auto",
        }
    )
    assert spec.static == {"batch_size": 128, "freeze_layers": -1}
    assert [p.name for p in spec.parameters] == ["steps_per_epoch", "weight_decay", "warmup_ratio"]
    assert [p.scaling for p in spec.parameters] == ["linear", "log", "reverse_log"]
    assert (spec.strategy, spec.max_trials, spec.max_parallel_trials) == ("bayesian", 4, 2)
    assert spec.early_stopping == "auto"


def test_auto_scaling_is_log_over_two_orders_of_magnitude() -> None:
    spec = parse_spec(
        minimal(
            parameters={
                "learning_rate": {"type": "continuous", "min": 1e-6, "max": 1e-3, "scaling": "auto"},
                "weight_decay": {"type": "continuous", "min": 0.0, "max": 0.1},
            }
        )
    )
    assert [p.scaling for p in spec.parameters] == ["log", "linear"]


def test_yaml_scientific_notation_without_a_dot_and_off_are_understood(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "parameters:\n  learning_rate: {type: continuous, min: 1e-5, max: 5e-5}\nearly_stopping: off\n",
        encoding="utf-8",
    )
    spec = load_spec(path)
    assert spec.name == "job"  # from the file name
    assert spec.parameter("learning_rate").min == pytest.approx(1e-5)
    assert spec.early_stopping == "off"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"strategy": "rnadom"}, "strategy"),
        (
            {"parameters": {"learning_rate": {"type": "continuous", "min": 5e-5, "max": 1e-5}}},
            "parameters.learning_rate.min",
        ),
        ({"parameters": {"epochs": {"type": "integer", "min": 3, "max": 3}}}, "parameters.epochs.min"),
        (
            {
                "parameters": {
                    "weight_decay": {"type": "continuous", "min": -0.1, "max": 0.1, "scaling": "log"}
                }
            },
            "parameters.weight_decay.min",
        ),
        (
            {"parameters": {"weight_decay": {"type": "continuous", "min": 0, "max": 0.1, "scaling": "log"}}},
            "parameters.weight_decay.min",
        ),
        (
            {
                "parameters": {
                    "warmup_ratio": {"type": "continuous", "min": 0.5, "max": 1.0, "scaling": "reverse_log"}
                }
            },
            "parameters.warmup_ratio.max",
        ),
        (
            {"parameters": {"epochs": {"type": "integer", "min": 1, "max": 3, "scaling": "reverse_log"}}},
            "parameters.epochs.scaling",
        ),
        ({"strategy": "grid"}, "parameters.learning_rate.type"),
        ({"objective": {"metric": "validation:recall"}}, "objective.metric"),
        ({"objective": {"metric": "val_loss", "direction": "maximize"}}, "objective.direction"),
        (
            {"parameters": {"learnig_rate": {"type": "continuous", "min": 1e-5, "max": 5e-5}}},
            "parameters.learnig_rate",
        ),
        ({"static": {"dropout": 0.1}}, "static.dropout"),
        ({"static": {"learning_rate": 1e-5}}, "parameters.learning_rate"),
        ({"static": {"batch_size": "big"}}, "static.batch_size"),
        ({"static": {"batch_size": 0}}, "static.batch_size"),
        ({"max_trials": 2, "max_parallel_trials": 3}, "max_parallel_trials"),
        ({"max_parallel_trials": 0}, "max_parallel_trials"),
        ({"devices_per_trial": 0}, "devices_per_trial"),
        ({"devices_per_trial": "two"}, "devices_per_trial"),
        ({"max_trials": 0}, "max_trials"),
        (
            {"parameters": {"batch_size": {"type": "continuous", "min": 8, "max": 64}}},
            "parameters.batch_size.type",
        ),
        (
            {"parameters": {"batch_size": {"type": "categorical", "values": []}}},
            "parameters.batch_size.values",
        ),
        (
            {"parameters": {"batch_size": {"type": "categorical", "values": [16, 16]}}},
            "parameters.batch_size.values",
        ),
        (
            {"parameters": {"batch_size": {"type": "categorical", "values": [16, 0.5]}}},
            "parameters.batch_size.values[1]",
        ),
        (
            {"parameters": {"learning_rate": {"type": "continuous", "min": 1e-5}}},
            "parameters.learning_rate.max",
        ),
        ({"parameters": {"learning_rate": {"min": 1e-5, "max": 1e-4}}}, "parameters.learning_rate.type"),
        ({"parameters": {}}, "parameters"),
        ({"early_stopping": "sometimes"}, "early_stopping"),
        ({"strategy": "hyperband", "early_stopping": "off"}, "early_stopping"),
        ({"backend": "xgboost"}, "backend"),
        ({"name": "no spaces allowed"}, "name"),
        ({"retries": -1}, "retries"),
        ({"max_steps_per_trial": 0}, "max_steps_per_trial"),
        ({"completion": {"no_improvement_trials": 0}}, "completion.no_improvement_trials"),
        ({"completion": {"patience": 3}}, "completion.patience"),
        ({"warm_start": {"parents": []}}, "warm_start.parents"),
        ({"warm_start": {"parents": ["a"], "type": "copy"}}, "warm_start.type"),
        ({"max_trails": 3}, "max_trails"),
        ({"max_jobs": 3, "max_trials": 3}, "max_trials"),
    ],
)
def test_bad_input_is_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    assert field in fields_of(minimal(**overrides))


def test_messages_say_what_to_do() -> None:
    with pytest.raises(TuningSpecError) as caught:
        parse_spec(minimal(strategy="grid", max_trials=2, max_parallel_trials=5, objective="val_accuracy"))
    problems = dict(caught.value.problems)
    assert "make it categorical" in problems["parameters.learning_rate.type"]
    assert "between 1 and max_trials" in problems["max_parallel_trials"]
    assert "did you mean 'val_acc'" in problems["objective.metric"]
    assert "3 problems" in str(caught.value)


def test_all_problems_are_reported_at_once() -> None:
    fields = fields_of(
        {
            "name": "job",
            "strategy": "annealing",
            "parameters": {
                "learning_rate": {"type": "continuous", "min": 0, "max": 1e-3, "scaling": "log"},
                "batch_size": {"type": "categorical", "values": [32, 16, 32]},
                "momentum": {"type": "continuous", "min": 0.9, "max": 0.99},
            },
            "objective": {"metric": "auc"},
        }
    )
    assert fields == [
        "strategy",
        "parameters.learning_rate.min",
        "parameters.batch_size.values",
        "parameters.momentum",
        "objective.metric",
    ]


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: job\nparameters:\n  learning_rate: {type: continuous, min: 1\n", encoding="utf-8")
    with pytest.raises(TuningSpecError, match=r"broken\.yaml is not valid YAML at line \d"):
        load_spec(path)


def test_a_spec_that_is_not_a_mapping_or_missing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(TuningSpecError, match="mapping"):
        load_spec(path)
    with pytest.raises(TuningSpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(TuningSpecError, match="course_lab1"):
        builtin_spec_path("nope")


def test_spec_is_immutable() -> None:
    spec = parse_spec(minimal())
    with pytest.raises(AttributeError):
        spec.max_trials = 3  # type: ignore[misc]
    assert isinstance(spec, TuningSpec)
