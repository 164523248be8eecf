"""Retraining pipelines: declared steps, each an existing loopwise operation, run in order with their
state, logs and outputs kept, resumable from a failed step."""

from loopwise.pipelines.records import PipelineRun, StepState
from loopwise.pipelines.spec import PipelineSpec, Step, parse_pipeline

__all__ = ["PipelineRun", "PipelineSpec", "Step", "StepState", "parse_pipeline"]
