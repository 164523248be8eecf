"""Stored evaluations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class EvaluationRecord:
    id: int
    model_ref: str
    model_version_id: int | None
    dataset_version_id: int
    split: str
    metrics: dict[str, Any]
    report_uri: str
    created_at: datetime
