"""Schedules, alerts and webhooks as the domain sees them.

A schedule checks an endpoint's last window of captures against a baseline every ``every_s`` seconds.
Every violation of a run (scheduled or on demand) becomes an :class:`Alert`; each alert is delivered to
every webhook at least once through the webhook outbox (``loopwise.webhooks``): deliveries wait in the
database until a POST answers 2xx, retried with exponential backoff, so a receiver that is down, or a
server that restarts, loses none. An alert may
name an ``action`` (for example ``retrain``): the retraining pipeline picks up open alerts by it.
"""

from __future__ import annotations

from loopwise._durations import parse_duration
from loopwise.errors import DataFormatError


def parse_every(every: str) -> float:
    """Seconds of ``30s``, ``15m``, ``1h`` or ``1d`` (at least 10 s)."""
    seconds = parse_duration(every, "--every")
    if seconds < 10:
        raise DataFormatError(f"--every {every!r} is too often: at least 10s")
    return seconds
