"""Retraining pipelines: declared steps, each an existing loopwise operation, run in order with their
state, logs and outputs kept, resumable from a failed step.

Importing this package is cheap: the spec's names load on first use (its operations import most of loopwise),
so the storage layer can import :mod:`loopwise.pipelines.records` alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopwise._lazy import lazy_exports
from loopwise.pipelines.records import PipelineRun, StepState

if TYPE_CHECKING:
    from loopwise.pipelines.spec import PipelineSpec, Step, parse_pipeline

_LAZY = {"PipelineSpec": "spec", "Step": "spec", "parse_pipeline": "spec"}

__all__ = ["PipelineRun", "PipelineSpec", "Step", "StepState", "parse_pipeline"]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
