"""The outbox's rows as storage takes and returns them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: an outbox delivery's ``subject`` is one of these prefixes and a key: what the event is about
ALERT_SUBJECT = "alert:"  # and the alert's id
LOOP_SUBJECT = "human-loop:"  # and the loop's name
PIPELINE_RUN_SUBJECT = "pipeline-run:"  # and the run's id


@dataclass(frozen=True)
class Outgoing:
    """One event for one URL, to be queued. ``delivery_id`` is the ``X-Loopwise-Delivery`` value (the
    same on every retry, unique across the outbox); ``subject`` says what the event is about
    (``alert:7``, ``human-loop:NAME``, ``pipeline-run:3``) for those who look deliveries up;
    ``webhook_id`` ties it to a registered webhook (deleting it drops what is queued for it)."""

    event: str
    url: str
    secret: str | None = field(repr=False)
    payload: dict[str, Any]
    delivery_id: str
    subject: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    webhook_id: int | None = None


@dataclass(frozen=True)
class PendingDelivery:
    """A queued delivery that is due: what to POST, where, signed with what, and how often it failed."""

    id: int
    delivery_id: str
    event: str
    url: str
    secret: str | None = field(repr=False)
    payload: dict[str, Any]
    headers: dict[str, str]
    attempts: int


__all__ = ["ALERT_SUBJECT", "LOOP_SUBJECT", "PIPELINE_RUN_SUBJECT", "Outgoing", "PendingDelivery"]
