"""A tuning spec searches a backend's own options (what its class declares in ``tunable``: TF-IDF's ``C``,
``min_df``, ``max_features``) beside the trainer's, checked with the same messages, and each trial
builds its classifier with the values it drew."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from loopwise.classifiers import TrainConfig, Tunable, available_backends, classifier_class
from loopwise.errors import TuningSpecError
from loopwise.evaluation.service import load_model
from loopwise.storage import Store
from loopwise.tuning import backend_options, build_config, parse_spec
from loopwise.tuning.records import JobStatus
from loopwise.tuning.service import job_trials, run_job, start_job

pytestmark = pytest.mark.sqlite_only


def _spec(parameters: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"name": "opts", "dataset": "d:1", "backend": "tfidf", "parameters": parameters, **overrides}


def _problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(TuningSpecError) as caught:
        parse_spec(data)
    return caught.value.problems


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "onnx"])
def test_every_backend_declares_constructor_keywords_that_the_trainer_does_not_own(backend: str) -> None:
    cls = classifier_class(backend)
    keywords = inspect.signature(cls.__init__).parameters
    for name, option in cls.tunable.items():
        assert isinstance(option, Tunable) and option.type in (int, float, bool, str)
        assert name in keywords, f"{backend} declares {name!r}, which its constructor does not take"
        assert name not in TrainConfig.__dataclass_fields__


def test_tfidf_options_are_set_and_searched_beside_the_trainers_parameters() -> None:
    spec = parse_spec(
        _spec(
            {
                "C": {"type": "continuous", "min": 0.01, "max": 100},
                "min_df": {"type": "integer", "min": 1, "max": 3},
                "max_features": {"type": "categorical", "values": [None, 5000]},
            },
            static={"seed": 7},
        )
    )
    assert [(p.name, p.type, p.scaling) for p in spec.parameters] == [
        ("C", "continuous", "log"),
        ("min_df", "integer", "linear"),
        ("max_features", "categorical", "linear"),
    ]
    assert parse_spec(spec.to_dict()) == spec
    drawn = {"C": 0.5, "min_df": 2, "max_features": None}
    assert backend_options(spec, drawn) == drawn
    assert build_config(spec, drawn).seed == 7  # the trainer's values alone reach TrainConfig


def test_a_bad_backend_option_is_reported_like_a_bad_trainer_parameter() -> None:
    problems = _problems(
        _spec(
            {
                "c": {"type": "continuous", "min": 0.01, "max": 1},
                "min_dff": {"type": "integer", "min": 1, "max": 3},
                "max_features": {"type": "categorical", "values": [None, 0]},
            },
            static={"C": -1.0, "min_df": 1.5},
        )
    )
    paths = dict(problems)
    assert paths["static.C"] == "C must be above 0, got -1.0"
    assert paths["static.min_df"] == "expected a whole number, got 1.5"
    assert paths["parameters.c"].startswith("unknown hyperparameter 'c' (did you mean 'C'?); use one of [")
    assert "'min_df'" in paths["parameters.c"] and "'learning_rate'" in paths["parameters.c"]
    assert paths["parameters.min_dff"].startswith("unknown hyperparameter 'min_dff' (did you mean 'min_df'?)")
    assert paths["parameters.max_features.values[1]"] == "max_features must be at least 1, got 0"

    bounds = dict(_problems(_spec({"C": {"type": "continuous", "min": 0, "max": 1, "scaling": "linear"}})))
    assert bounds == {"parameters.C.min": "C must be above 0, got 0.0"}
    kind = dict(_problems(_spec({"min_df": {"type": "continuous", "min": 1, "max": 3}})))
    assert kind == {"parameters.min_df.type": "min_df takes int values: use type integer or categorical"}
    swapped = dict(_problems(_spec({"C": {"type": "continuous", "min": 10, "max": 1}})))
    assert swapped == {"parameters.C.min": "min (10.0) is above max (1.0): swap them"}


def test_a_backend_without_the_option_refuses_it_with_the_names_it_knows() -> None:
    problems = dict(
        _problems(_spec({"C": {"type": "continuous", "min": 0.1, "max": 1}}, backend="transformers"))
    )
    message = problems["parameters.C"]
    assert message.startswith("unknown hyperparameter 'C'") and "'learning_rate'" in message
    assert "'min_df'" not in message
    assert "backend" in dict(
        _problems(_spec({"C": {"type": "continuous", "min": 0.1, "max": 1}}, backend="onnx"))
    )


def test_trials_fit_tfidf_with_the_values_they_drew(
    store: Store, import_small: Callable[[Store], str]
) -> None:
    dataset = import_small(store)
    spec = _spec(
        {
            "C": {"type": "categorical", "values": [0.01, 100.0]},
            "min_df": {"type": "categorical", "values": [1, 3]},
        },
        dataset=dataset,
        strategy="grid",
        max_trials=4,
        keep_checkpoints=4,
    )
    start_job(store, parse_spec(spec))
    job = run_job(store, "opts")

    assert job.status is JobStatus.COMPLETED, job.error
    _, trials = job_trials(store, "opts")
    fitted = {}
    for trial in trials:
        classifier: Any = load_model(store, trial.user_attrs["model_ref"]).classifier
        # the fitted estimators themselves, not only the recorded params
        drawn = (trial.params["C"], trial.params["min_df"])
        assert (classifier.model.C, classifier.vectorizer.min_df) == drawn
        fitted[(trial.params["C"], trial.params["min_df"])] = classifier
        with store.uow() as uow:
            version = uow.models.get_by_id(trial.user_attrs["model_version_id"])
        assert (version.params["C"], version.params["min_df"]) == (trial.params["C"], trial.params["min_df"])
    assert set(fitted) == {(0.01, 1), (0.01, 3), (100.0, 1), (100.0, 3)}
    # min_df 3 drops the n-grams of fewer than three texts; C 100 regularises less than C 0.01
    assert len(fitted[(0.01, 3)].vectorizer.vocabulary_) < len(fitted[(0.01, 1)].vectorizer.vocabulary_)
    weights = {c: abs(fitted[(c, 1)].model.coef_).sum() for c in (0.01, 100.0)}
    assert weights[100.0] > 10 * weights[0.01]
