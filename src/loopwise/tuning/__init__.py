"""Automatic model tuning: tuning specs, their search spaces as Optuna distributions, and strategies.

Importing this package is cheap: every name is imported from its module on first use (the names that need
Optuna only then), so the storage layer can import :mod:`loopwise.tuning.records` alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopwise._lazy import lazy_exports

if TYPE_CHECKING:
    from loopwise.tuning.space import (
        backend_options,
        build_config,
        decode_params,
        distribution,
        distributions,
        grid_points,
        grid_size,
        max_trial_steps,
        optuna_name,
        suggest,
    )
    from loopwise.tuning.spec import (
        BUILTIN_SPECS,
        METRIC_DIRECTIONS,
        STRATEGIES,
        Completion,
        Objective,
        Parameter,
        TuningSpec,
        WarmStart,
        builtin_spec_path,
        load_spec,
        parse_spec,
    )
    from loopwise.tuning.strategies import default_space, make_pruner, make_sampler

_LAZY = {
    "BUILTIN_SPECS": "spec",
    "METRIC_DIRECTIONS": "spec",
    "STRATEGIES": "spec",
    "Completion": "spec",
    "Objective": "spec",
    "Parameter": "spec",
    "TuningSpec": "spec",
    "WarmStart": "spec",
    "builtin_spec_path": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "backend_options": "space",
    "build_config": "space",
    "decode_params": "space",
    "distribution": "space",
    "distributions": "space",
    "grid_points": "space",
    "grid_size": "space",
    "max_trial_steps": "space",
    "optuna_name": "space",
    "suggest": "space",
    "default_space": "strategies",
    "make_pruner": "strategies",
    "make_sampler": "strategies",
}

__all__ = [
    "BUILTIN_SPECS",
    "METRIC_DIRECTIONS",
    "STRATEGIES",
    "Completion",
    "Objective",
    "Parameter",
    "TuningSpec",
    "WarmStart",
    "backend_options",
    "build_config",
    "builtin_spec_path",
    "decode_params",
    "default_space",
    "distribution",
    "distributions",
    "grid_points",
    "grid_size",
    "load_spec",
    "make_pruner",
    "make_sampler",
    "max_trial_steps",
    "optuna_name",
    "parse_spec",
    "suggest",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
