"""Monitoring on a schedule, alerts from violations, and the webhooks they go to.

The server's monitoring duty (``loopwise.app``) calls :func:`run_due` every few seconds; alerts are
queued in the webhook outbox (:mod:`loopwise.webhooks`) with the alert, and the server's one delivery
duty sends them. Both are plain functions over the store, so the CLI and tests call them too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from loopwise import webhooks
from loopwise.errors import DataFormatError
from loopwise.monitoring.alerts import parse_every
from loopwise.monitoring.records import Alert, Schedule, Webhook
from loopwise.monitoring.service import KINDS, load_baseline, run_monitor
from loopwise.webhooks.records import ALERT_SUBJECT

if TYPE_CHECKING:
    from loopwise.storage import Store

log = logging.getLogger(__name__)
#: the event (``X-Loopwise-Event``) and body ``type`` of an alert's delivery
ALERT_EVENT = "loopwise.alert"


def create_schedule(
    store: Store,
    endpoint: str,
    baseline: str,
    *,
    every: str,
    window: str | None = None,
    kinds: Sequence[str] = KINDS,
    action: str | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Check ``endpoint``'s captures of the last ``window`` (default: ``every``) against ``baseline``
    every ``every`` (``30s``, ``15m``, ``1h``, ``1d``), first at once. Everything is checked first."""
    every_s = parse_every(every)
    window_s = parse_every(window) if window else every_s
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise DataFormatError(
            f"unknown monitoring type {', '.join(unknown) or '(none)'}: use {', '.join(KINDS)}"
        )
    load_baseline(store, baseline)  # it must exist, and its constraints be valid
    with store.uow() as uow:
        uow.endpoints.get(endpoint)  # the endpoint must exist
        return uow.monitoring.add_schedule(
            endpoint, baseline, kinds, every_s, window_s, action, now or datetime.now(UTC)
        )


def record_alerts(
    store: Store, report: dict[str, Any], *, schedule_id: int | None = None, action: str | None = None
) -> list[Alert]:
    """One alert per violation of a :func:`~loopwise.monitoring.service.run_monitor` report, each queued
    for every webhook in the same transaction: an alert is never recorded without its deliveries."""
    fields = [
        {
            "endpoint": report["endpoint"],
            "variant": variant,
            "check": violation["check"],
            "constraint": violation["constraint"],
            "observed": float(violation["observed"]),
            "threshold": float(violation["threshold"]),
            "message": violation["message"],
            "p_value": violation["p_value"],
            "schedule_id": schedule_id,
            "report": report.get("path"),
            "action": action,
        }
        for variant, found in report["variants"].items()
        for violation in found["violations"]
    ]
    if not fields:
        return []
    with store.uow() as uow:
        alerts = uow.monitoring.add_alerts(fields)
        hooks = uow.monitoring.webhooks()
        webhooks.enqueue(uow, [_alert_delivery(alert, hook) for alert in alerts for hook in hooks])
    return alerts


def _alert_delivery(alert: Alert, hook: Webhook) -> webhooks.Outgoing:
    """The outbox's delivery of ``alert`` to ``hook``: JSON ``{"type": "loopwise.alert", "alert": ...}``,
    event ``loopwise.alert``, header ``X-Loopwise-Alert-Id`` (a receiver drops a repeat by it or by
    ``X-Loopwise-Delivery``)."""
    return webhooks.Outgoing(
        event=ALERT_EVENT,
        url=hook.url,
        secret=hook.secret,
        payload={"type": ALERT_EVENT, "alert": _jsonable(alert.to_dict())},
        delivery_id=f"alert-delivery-{alert.id}-{hook.id}",
        subject=f"{ALERT_SUBJECT}{alert.id}",
        headers={"X-Loopwise-Alert-Id": str(alert.id)},
        webhook_id=hook.id,
    )


def run_due(store: Store, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Run every schedule due at ``now``; a failing run is recorded on its schedule and does not stop
    the others. Returns what each run found."""
    now = now or datetime.now(UTC)
    with store.uow() as uow:
        due = uow.monitoring.claim_due(now)
    outcomes = []
    for schedule in due:
        try:
            report = run_monitor(
                store,
                schedule.endpoint,
                schedule.baseline,
                hours=schedule.window_s / 3600,
                kinds=schedule.kinds,
            )
            alerts = record_alerts(store, report, schedule_id=schedule.id, action=schedule.action)
            status = f"ok: {len(alerts)} alert(s), {len(report['variants'])} variant(s)"
            outcomes.append({"schedule": schedule.id, "alerts": len(alerts), "report": report["path"]})
        except Exception as exc:
            log.exception("monitoring schedule %s failed", schedule.id)
            status = f"failed: {type(exc).__name__}: {exc}"
            outcomes.append({"schedule": schedule.id, "error": status})
        with store.uow() as uow:
            uow.monitoring.finish_schedule(schedule.id, now, status)
    return outcomes


def add_webhook(store: Store, url: str) -> tuple[Webhook, bool]:
    """The webhook alerts go to at ``url``, and whether it was made now: a new one gets a signing secret
    (``Webhook.secret``: show it once, to the admin who made it); the same URL again is the same one."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise DataFormatError(f"webhook {url!r}: give an http:// or https:// URL")
    with store.uow() as uow:
        return uow.monitoring.add_webhook(url, webhooks.new_secret())


def rotate_webhook_secret(store: Store, webhook_id: int) -> Webhook:
    """A new signing secret for the webhook (the old one stops at once); show ``secret`` once."""
    with store.uow() as uow:
        return uow.monitoring.set_webhook_secret(webhook_id, webhooks.new_secret())


def deliver_due(
    store: Store, *, now: datetime | None = None, post: webhooks.Post | None = None, timeout_s: float = 5.0
) -> tuple[int, int]:
    """Send the due alert deliveries of the webhook outbox now (:func:`loopwise.webhooks.deliver_due`,
    alerts only: JSON, the alert; event ``loopwise.alert``, signed with the webhook's secret; headers
    ``X-Loopwise-Delivery`` and ``X-Loopwise-Alert-Id``); a 2xx answer marks one delivered, anything else
    schedules a retry with backoff. Returns (delivered, failed)."""
    return webhooks.deliver_due(store, now=now, post=post, timeout_s=timeout_s, events=(ALERT_EVENT,))


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


__all__ = [
    "add_webhook",
    "create_schedule",
    "deliver_due",
    "record_alerts",
    "rotate_webhook_secret",
    "run_due",
]
