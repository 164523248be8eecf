"""What a tuning spec may say: its keys, the course's (SageMaker's) names for them, the training settings
and their limits. Read by the checker (:mod:`loopwise.tuning._check`)."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from loopwise.classifiers import TrainConfig
from loopwise.classifiers.devices import check_device, check_precision

METRIC_ALIASES = {
    "validation:accuracy": "val_acc",
    "validation:macro_f1": "val_macro_f1",
    "validation:f1": "val_macro_f1",
    "validation:loss": "val_loss",
}
SCALING_ALIASES = {"logarithmic": "log", "reverselogarithmic": "reverse_log", "reverselog": "reverse_log"}
TOP_ALIASES = {
    "hyperparameters": "static",
    "hyperparameter_ranges": "parameters",
    "max_jobs": "max_trials",
    "max_parallel_jobs": "max_parallel_trials",
    "early_stopping_type": "early_stopping",
}
PARAMETER_ALIASES = {"min_value": "min", "max_value": "max", "scaling_type": "scaling"}
#: course hyperparameter names -> TrainConfig fields, with a value conversion
HP_ALIASES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "train_batch_size": ("batch_size", lambda v: v),
    "train_steps_per_epoch": ("steps_per_epoch", lambda v: v),
    # the course's freeze_bert_layer: True freezes the whole encoder (-1), False freezes nothing (0)
    "freeze_bert_layer": ("freeze_layers", lambda v: (-1 if v else 0) if isinstance(v, bool) else v),
}
TOP_KEYS = [
    "name",
    "dataset",
    "backend",
    "base_model",
    "static",
    "parameters",
    "objective",
    "objective_metric_name",
    "objective_type",
    "strategy",
    "max_trials",
    "max_parallel_trials",
    "devices_per_trial",
    "early_stopping",
    "completion",
    "warm_start",
    "seed",
    "retries",
    "max_steps_per_trial",
    "keep_checkpoints",
    "max_examples_per_trial",
    "model_name",
    "final_fit",
]

TRAIN_FIELDS: dict[str, tuple[type, bool]] = {}  # field name -> (base type, None allowed)
for _f in fields(TrainConfig):
    _hint = typing.get_type_hints(TrainConfig)[_f.name]
    _args = [a for a in typing.get_args(_hint) if a is not type(None)] or [_hint]
    TRAIN_FIELDS[_f.name] = (_args[0], _hint is not _args[0])

#: value limits of the hyperparameters where TrainConfig would fail later
LIMITS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "learning_rate": (lambda v: v > 0, "above 0"),
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "epochs": (lambda v: v >= 1, "at least 1"),
    "max_seq_length": (lambda v: v >= 1, "at least 1"),
    "steps_per_epoch": (lambda v: v >= 1, "at least 1"),
    "validation_batch_size": (lambda v: v >= 1, "at least 1"),
    "eval_every_steps": (lambda v: v >= 1, "at least 1"),
    "freeze_layers": (lambda v: v >= -1, "at least -1 (-1 freezes the whole encoder)"),
    "warmup_ratio": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "weight_decay": (lambda v: v >= 0, "at least 0"),
    "max_grad_norm": (lambda v: v > 0, "above 0"),
}
#: backends that only predict (exported models): nothing to tune
PREDICT_ONLY = ("onnx",)

#: training settings that name where a trial runs: static only, each spelling checked by its function
PLACEMENT: dict[str, Callable[[str], str]] = {"device": check_device, "precision": check_precision}


def suggest(word: str, choices: list[str]) -> str:
    same = [c for c in choices if c.lower() == word.lower()]  # case differs: ``c`` for TF-IDF's ``C``
    close = same or difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
