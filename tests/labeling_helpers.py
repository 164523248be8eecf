"""Automated labeling's round reports for tests of what the admin sees, written straight into a job's
settings through the storage layer (no model is trained): one round as loopwise recorded them before the
model choice and the certificate were reported, and one with both."""

from __future__ import annotations

from typing import Any

from loopwise.storage import Store

OLD_ROUND: dict[str, Any] = {
    "round": 1,
    "model": "reviews-auto:1",
    "thresholds": {"1": 0.971, "0": None, "-1": None},
    "machine_labeled": 40,
    "sent_to_people": 10,
    "waiting": 150,
    "holdout": 50,
    "trained_on": 50,
    "at": "2025-01-01T00:00:00+00:00",
}
WHY_NOT_MORE = (
    "the next threshold down (0.91: 205 answers, 8 wrong) has a lower bound of 0.943, under the target 0.95"
)
NEW_ROUND: dict[str, Any] = {
    "round": 2,
    "model": "reviews-auto:2",
    "thresholds": {"1": 0.93, "0": 0.93, "-1": 0.93},
    "machine_labeled": 1150,
    "sent_to_people": 60,
    "waiting": 90,
    "holdout": 50,
    "trained_on": 250,
    "at": "2025-01-01T01:00:00+00:00",
    "model_choice": {
        "chosen": "embeddings",
        "metric": "accuracy",
        "candidates": {
            "tfidf": {"accuracy": 0.82, "log_loss": 0.41, "validated_on": 300, "folds": 5},
            "embeddings": {"accuracy": 0.91, "log_loss": 0.25, "validated_on": 300, "folds": 5},
            "finetune": {"skipped": "needs 2,000 labels from people; the job has 612"},
        },
    },
    "certificate": {
        "method": "cross-fit, fixed-sequence Clopper-Pearson",
        "target": 0.95,
        "confidence": 0.95,
        "validated_on": 300,
        "threshold": 0.93,
        "above": 180,
        "errors_above": 3,
        "lower_bound": 0.953,
        "could_label": 1200,
        "why_not_more": WHY_NOT_MORE,
    },
}


def write_rounds(store: Store, job_id: int, rounds: list[dict[str, Any]]) -> None:
    """Record ``rounds`` as the job's round reports, keeping its automated labeling settings."""
    with store.uow() as uow:
        settings = uow.labels.auto_label(job_id)
        assert settings is not None, "the job was made without automated labeling"
        uow.labels.set_auto_label(job_id, {**settings, "rounds": rounds})
