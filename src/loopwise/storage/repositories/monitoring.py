"""Monitoring: schedules, alerts and webhooks (their deliveries wait in the webhook outbox)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loopwise.errors import NotFoundError
from loopwise.monitoring.records import Alert, Schedule, Webhook
from loopwise.storage.repositories.webhooks import resign_pending, subject_deliveries
from loopwise.storage.tables import AlertRow, MonitoringScheduleRow, WebhookDeliveryRow, WebhookRow
from loopwise.webhooks.records import ALERT_SUBJECT


class MonitoringRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- schedules --------------------------------------------------------------------------------------

    def add_schedule(
        self,
        endpoint: str,
        baseline: str,
        kinds: Sequence[str],
        every_s: float,
        window_s: float,
        action: str | None,
        first_run_at: datetime,
    ) -> Schedule:
        row = MonitoringScheduleRow(
            endpoint=endpoint,
            baseline=baseline,
            kinds=list(kinds),
            every_s=every_s,
            window_s=window_s,
            action=action,
            next_run_at=first_run_at,
        )
        self.session.add(row)
        self.session.flush()
        return _schedule(row)

    def schedules(self, endpoint: str | None = None) -> builtins.list[Schedule]:
        query = select(MonitoringScheduleRow).order_by(MonitoringScheduleRow.id)
        if endpoint is not None:
            query = query.where(MonitoringScheduleRow.endpoint == endpoint)
        return [_schedule(row) for row in self.session.scalars(query)]

    def delete_schedule(self, schedule_id: int) -> None:
        row = self.session.get(MonitoringScheduleRow, schedule_id)
        if row is None:
            raise NotFoundError(f"no monitoring schedule {schedule_id}; see `loopwise monitor schedule list`")
        self.session.delete(row)
        self.session.flush()

    def claim_due(self, now: datetime) -> builtins.list[Schedule]:
        """The schedules due at ``now``, each moved to its next run in the same statement that claims it,
        so that of several servers sharing the database only one runs it."""
        due = self.session.scalars(
            select(MonitoringScheduleRow).where(MonitoringScheduleRow.next_run_at <= now)
        ).all()
        claimed = []
        for row in due:
            previous = row.next_run_at
            moved = self.session.execute(
                update(MonitoringScheduleRow)
                .where(MonitoringScheduleRow.id == row.id, MonitoringScheduleRow.next_run_at == previous)
                .values(next_run_at=now + timedelta(seconds=row.every_s))
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(_schedule(row))
        return claimed

    def finish_schedule(self, schedule_id: int, at: datetime, status: str) -> None:
        row = self.session.get(MonitoringScheduleRow, schedule_id)
        if row is not None:
            row.last_run_at = at
            row.last_status = status[:2000]
            self.session.flush()

    # --- alerts -----------------------------------------------------------------------------------------

    def add_alerts(self, alerts: Sequence[dict[str, Any]]) -> builtins.list[Alert]:
        """Record alerts (fields of :class:`Alert` but id, status and time); the service queues their
        deliveries in the same unit of work."""
        rows = [AlertRow(**fields, status="open") for fields in alerts]
        self.session.add_all(rows)
        self.session.flush()
        return [_alert(row) for row in rows]

    def alerts(
        self,
        endpoint: str | None = None,
        status: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Alert]:
        """The newest alerts first."""
        query = select(AlertRow).order_by(AlertRow.id.desc()).limit(limit)
        if endpoint is not None:
            query = query.where(AlertRow.endpoint == endpoint)
        if status is not None:
            query = query.where(AlertRow.status == status)
        if action is not None:
            query = query.where(AlertRow.action == action)
        return [_alert(row) for row in self.session.scalars(query)]

    def deliveries(self, alert_id: int) -> builtins.list[dict[str, Any]]:
        """The alert's deliveries in the webhook outbox (one a webhook), delivered or not."""
        return subject_deliveries(self.session, f"{ALERT_SUBJECT}{alert_id}")

    # --- webhooks ---------------------------------------------------------------------------------------

    def add_webhook(self, url: str, secret: str) -> tuple[Webhook, bool]:
        """The webhook of ``url``, made with ``secret`` when there was none (True) or as it was."""
        existing = self.session.scalar(select(WebhookRow).where(WebhookRow.url == url))
        if existing is not None:
            return _webhook(existing), False
        row = WebhookRow(url=url, secret=secret)
        self.session.add(row)
        self.session.flush()
        return _webhook(row), True

    def set_webhook_secret(self, webhook_id: int, secret: str) -> Webhook:
        row = self.session.get(WebhookRow, webhook_id)
        if row is None:
            raise NotFoundError(f"no webhook {webhook_id}; see `loopwise monitor webhook list`")
        row.secret = secret
        resign_pending(self.session, secret, WebhookDeliveryRow.webhook_id == webhook_id)
        self.session.flush()
        return _webhook(row)

    def webhooks(self) -> builtins.list[Webhook]:
        return [_webhook(row) for row in self.session.scalars(select(WebhookRow).order_by(WebhookRow.id))]

    def delete_webhook(self, webhook_id: int) -> None:
        row = self.session.get(WebhookRow, webhook_id)
        if row is None:
            raise NotFoundError(f"no webhook {webhook_id}; see `loopwise monitor webhook list`")
        self.session.delete(row)
        self.session.flush()


def _schedule(row: MonitoringScheduleRow) -> Schedule:
    return Schedule(
        row.id,
        row.endpoint,
        row.baseline,
        tuple(row.kinds),
        row.every_s,
        row.window_s,
        row.action,
        row.next_run_at,
        row.last_run_at,
        row.last_status,
        row.created_at,
    )


def _alert(row: AlertRow) -> Alert:
    return Alert(
        row.id,
        row.endpoint,
        row.variant,
        row.check,
        row.constraint,
        row.observed,
        row.threshold,
        row.message,
        row.p_value,
        row.schedule_id,
        row.report,
        row.action,
        row.status,
        row.created_at,
    )


def _webhook(row: WebhookRow) -> Webhook:
    return Webhook(row.id, row.url, row.created_at, row.secret)
