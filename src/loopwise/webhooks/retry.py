"""The one retry policy of every webhook delivery: exponential backoff, a bounded number of attempts.

The outbox's service applies it (:func:`loopwise.webhooks.outbox.deliver_due`) and hands the storage
layer the time of the next attempt; repositories hold no policy."""

from __future__ import annotations

from datetime import datetime, timedelta

#: a delivery stops being retried after this many attempts (about 1.5 days of backoff)
MAX_ATTEMPTS = 12


def backoff_s(attempts: int) -> float:
    """Wait before the next delivery attempt after ``attempts`` failed ones: 2, 4, 8 ... s, at most 1 h."""
    return float(min(3600, 2**attempts))


def next_attempt_at(failed_attempts: int, now: datetime) -> datetime:
    """When a delivery that has failed ``failed_attempts`` times (this one included) is tried again."""
    return now + timedelta(seconds=backoff_s(failed_attempts))


__all__ = ["MAX_ATTEMPTS", "backoff_s", "next_attempt_at"]
