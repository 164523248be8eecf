"""Monitoring schedules, alerts and webhooks, as storage returns them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


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
