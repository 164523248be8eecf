"""Schedules, alerts and webhooks as the domain sees them.

A schedule checks an endpoint's last window of captures against a baseline every ``every_s`` seconds.
Every violation of a run (scheduled or on demand) becomes an :class:`Alert`; each alert is delivered to
every webhook at least once through the webhook outbox (``loopwise.webhooks``): deliveries wait in the
database until a POST answers 2xx, retried with exponential backoff, so a receiver that is down, or a
server that restarts, loses none. An alert may
name an ``action`` (for example ``retrain``): the retraining pipeline picks up open alerts by it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from loopwise._durations import parse_duration
from loopwise.errors import DataFormatError


def parse_every(every: str) -> float:
    """Seconds of ``30s``, ``15m``, ``1h`` or ``1d`` (at least 10 s)."""
    seconds = parse_duration(every, "--every")
    if seconds < 10:
        raise DataFormatError(f"--every {every!r} is too often: at least 10s")
    return seconds


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
    """Where alerts and pipeline run events are POSTed. The URL is a secret (admins see it whole;
    others ``redact``-ed), and ``secret`` signs the deliveries (``loopwise.webhooks``): shown once, when
    the webhook is made."""

    id: int
    url: str
    created_at: datetime
    secret: str | None = field(default=None, repr=False, compare=False)
