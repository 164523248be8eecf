"""Schedules, alerts and webhooks as the domain sees them.

A schedule checks an endpoint's last window of captures against a baseline every ``every_s`` seconds.
Every violation of a run (scheduled or on demand) becomes an :class:`Alert`; each alert is delivered to
every webhook at least once: deliveries wait in the database (an outbox) until a POST answers 2xx, retried
with exponential backoff, so a receiver that is down, or a server that restarts, loses none. An alert may
name an ``action`` (for example ``retrain``): the retraining pipeline picks up open alerts by it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from loopwise._durations import parse_duration
from loopwise.errors import DataFormatError

#: webhook deliveries stop being retried after this many attempts (about 1.5 days of backoff)
MAX_ATTEMPTS = 12


def parse_every(every: str) -> float:
    """Seconds of ``30s``, ``15m``, ``1h`` or ``1d`` (at least 10 s)."""
    seconds = parse_duration(every, "--every")
    if seconds < 10:
        raise DataFormatError(f"--every {every!r} is too often: at least 10s")
    return seconds


def backoff_s(attempts: int) -> float:
    """Wait before the next delivery attempt after ``attempts`` failed ones: 2, 4, 8 ... s, at most 1 h."""
    return float(min(3600, 2**attempts))


@dataclass(frozen=True)
class Schedule:
    id: int
    endpoint: str
    baseline: str
    kinds: tuple[str, ...]
    every_s: float
    window_s: float
    action: str | None
    next_run_at: datetime
    last_run_at: datetime | None
    last_status: str | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Alert:
    id: int
    endpoint: str
    variant: str | None
    check: str
    constraint: str
    observed: float
    threshold: float
    message: str
    p_value: float | None
    schedule_id: int | None
    report: str | None
    action: str | None
    status: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Webhook:
    """Where alerts are POSTed. The URL is a secret (admins see it whole; others ``redact``-ed), and
    ``secret`` signs the deliveries (``loopwise.webhooks``): shown once, when the webhook is made."""

    id: int
    url: str
    created_at: datetime
    secret: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Delivery:
    id: int
    alert: Alert
    webhook: Webhook
    attempts: int
