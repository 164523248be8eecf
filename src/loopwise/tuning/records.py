"""Tuning jobs as storage returns them: a checked spec (as its canonical mapping), an Optuna study of the
same name, a status. :func:`loopwise.tuning.spec.job_spec` reads the spec back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class TuningJob:
    """One tuning job. ``spec`` is the canonical mapping (:meth:`TuningSpec.to_dict`); ``study_name`` names
    its Optuna study in the same database."""

    id: int
    name: str
    spec: dict[str, Any]
    status: JobStatus
    study_name: str
    created_at: datetime
    best_trial: int | None = None
    best_model_version_id: int | None = None
    error: str | None = None
    finished_at: datetime | None = None
    #: the best model's evaluation on the test split (done once, when the job completes)
    test_evaluation_id: int | None = None
