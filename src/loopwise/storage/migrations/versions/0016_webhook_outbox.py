"""one webhook outbox: monitoring's alert deliveries and review's human loop events move into
webhook_deliveries (pipeline run events go there too); the two old tables are dropped

Every row moves, delivered or not (so an alert's delivery history stays), with the body, URL, secret and
headers it was or would be sent with, and its delivery id (``X-Loopwise-Delivery``) unchanged, so a
receiver still drops a repeat of a delivery it took before the upgrade.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 14:30:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

#: the two tables' rows move to webhook_deliveries
changes_data: dict[str, list[str]] = {"alert_deliveries": [], "human_loop_events": []}

ALERT_EVENT = "loopwise.alert"
LOOP_EVENT = "loopwise.human-loop-status-change"
ALERT_FIELDS = (
    "id",
    "endpoint",
    "variant",
    "check",
    "constraint",
    "observed",
    "threshold",
    "message",
    "p_value",
    "schedule_id",
    "report",
    "action",
    "status",
    "created_at",
)

DELIVERIES = sa.table(
    "webhook_deliveries",
    sa.column("delivery_id", sa.String),
    sa.column("event", sa.String),
    sa.column("subject", sa.String),
    sa.column("webhook_id", sa.Integer),
    sa.column("url", sa.Text),
    sa.column("secret", sa.String),
    sa.column("body", sa.JSON),
    sa.column("headers", sa.JSON),
    sa.column("attempts", sa.Integer),
    sa.column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.column("delivered_at", sa.DateTime(timezone=True)),
    sa.column("last_error", sa.Text),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
ALERTS = sa.table(
    "alerts",
    *(
        sa.column(name)
        for name in ALERT_FIELDS
        if name not in ("observed", "threshold", "p_value", "created_at")
    ),
    sa.column("observed", sa.Float),
    sa.column("threshold", sa.Float),
    sa.column("p_value", sa.Float),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
ALERT_DELIVERIES = sa.table(
    "alert_deliveries",
    sa.column("id", sa.Integer),
    sa.column("alert_id", sa.Integer),
    sa.column("webhook_id", sa.Integer),
    sa.column("attempts", sa.Integer),
    sa.column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.column("delivered_at", sa.DateTime(timezone=True)),
    sa.column("last_error", sa.Text),
)
WEBHOOKS = sa.table("webhooks", sa.column("id", sa.Integer), sa.column("url"), sa.column("secret"))
LOOP_EVENTS = sa.table(
    "human_loop_events",
    sa.column("id", sa.Integer),
    sa.column("loop_name", sa.String),
    sa.column("url", sa.Text),
    sa.column("secret", sa.String),
    sa.column("body", sa.JSON),
    sa.column("attempts", sa.Integer),
    sa.column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.column("delivered_at", sa.DateTime(timezone=True)),
    sa.column("last_error", sa.Text),
)


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=100), nullable=False),
        sa.Column("event", sa.String(length=63), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=True),
        sa.Column("webhook_id", sa.Integer(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhooks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id"),
    )
    op.create_index("ix_webhook_deliveries_subject", "webhook_deliveries", ["subject"])
    op.create_index("ix_webhook_deliveries_webhook_id", "webhook_deliveries", ["webhook_id"])
    op.create_index("ix_webhook_deliveries_next_attempt_at", "webhook_deliveries", ["next_attempt_at"])
    connection = op.get_bind()
    now = datetime.now(UTC)
    moved = _alert_deliveries(connection, now) + _loop_events(connection, now)
    if moved:
        op.bulk_insert(DELIVERIES, moved)
    op.drop_index("ix_alert_deliveries_next_attempt_at", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_human_loop_events_next_attempt_at", table_name="human_loop_events")
    op.drop_index("ix_human_loop_events_loop_name", table_name="human_loop_events")
    op.drop_table("human_loop_events")


def _alert_deliveries(connection: sa.Connection, now: datetime) -> list[dict[str, Any]]:
    """Each alert delivery as the outbox row it becomes: the alert's body as it was sent
    (``{"type": "loopwise.alert", "alert": {...}}``), the webhook's URL and secret."""
    query = (
        sa.select(ALERT_DELIVERIES, WEBHOOKS.c.url, WEBHOOKS.c.secret, *(ALERTS.c[f] for f in ALERT_FIELDS))
        .select_from(
            ALERT_DELIVERIES.join(ALERTS, ALERTS.c.id == ALERT_DELIVERIES.c.alert_id).join(
                WEBHOOKS, WEBHOOKS.c.id == ALERT_DELIVERIES.c.webhook_id
            )
        )
        .order_by(ALERT_DELIVERIES.c.id)
    )
    moved = []
    for row in connection.execute(query).mappings():
        alert = {name: row[ALERTS.c[name]] for name in ALERT_FIELDS}
        alert["created_at"] = _utc(alert["created_at"])
        alert = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in alert.items()}
        moved.append(
            {
                "delivery_id": f"alert-delivery-{row[ALERT_DELIVERIES.c.id]}",
                "event": ALERT_EVENT,
                "subject": f"alert:{row[ALERT_DELIVERIES.c.alert_id]}",
                "webhook_id": row[ALERT_DELIVERIES.c.webhook_id],
                "url": row[WEBHOOKS.c.url],
                "secret": row[WEBHOOKS.c.secret],
                "body": {"type": ALERT_EVENT, "alert": alert},
                "headers": {"X-Loopwise-Alert-Id": str(row[ALERT_DELIVERIES.c.alert_id])},
                **_progress(row, ALERT_DELIVERIES),
                "created_at": now,
            }
        )
    return moved


def _loop_events(connection: sa.Connection, now: datetime) -> list[dict[str, Any]]:
    """Each human loop event as the outbox row it becomes."""
    moved = []
    for row in connection.execute(sa.select(LOOP_EVENTS).order_by(LOOP_EVENTS.c.id)).mappings():
        body = dict(row[LOOP_EVENTS.c.body])
        moved.append(
            {
                "delivery_id": f"loop-event-{row[LOOP_EVENTS.c.id]}",
                "event": str(body.get("type", LOOP_EVENT)),
                "subject": f"human-loop:{row[LOOP_EVENTS.c.loop_name]}",
                "webhook_id": None,
                "url": row[LOOP_EVENTS.c.url],
                "secret": row[LOOP_EVENTS.c.secret],
                "body": body,
                "headers": {"X-Loopwise-Event-Id": str(row[LOOP_EVENTS.c.id])},
                **_progress(row, LOOP_EVENTS),
                "created_at": now,
            }
        )
    return moved


def _progress(row: Any, table: Any) -> dict[str, Any]:
    return {
        "attempts": row[table.c.attempts],
        "next_attempt_at": _utc(row[table.c.next_attempt_at]),
        "delivered_at": _utc(row[table.c.delivered_at]),
        "last_error": row[table.c.last_error],
    }


def _utc(value: datetime | None) -> datetime | None:
    """A stored time, timezone-aware in UTC (SQLite reads it back naive)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def downgrade() -> None:
    op.create_table(
        "human_loop_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("loop_name", sa.String(length=63), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("secret", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_human_loop_events_loop_name", "human_loop_events", ["loop_name"])
    op.create_index("ix_human_loop_events_next_attempt_at", "human_loop_events", ["next_attempt_at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhooks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "webhook_id"),
    )
    op.create_index("ix_alert_deliveries_next_attempt_at", "alert_deliveries", ["next_attempt_at"])
    # what waits goes back to the two outboxes (pipeline run events had none before: they are dropped)
    op.execute(
        "INSERT INTO human_loop_events (loop_name, url, body, attempts, next_attempt_at, delivered_at, "
        "last_error, secret) SELECT substr(subject, 12), url, body, attempts, next_attempt_at, "
        "delivered_at, last_error, secret FROM webhook_deliveries "
        "WHERE subject LIKE 'human-loop:%'"
    )
    op.execute(
        "INSERT INTO alert_deliveries (alert_id, webhook_id, attempts, next_attempt_at, delivered_at, "
        "last_error) SELECT CAST(substr(subject, 7) AS INTEGER), webhook_id, attempts, next_attempt_at, "
        "delivered_at, last_error FROM webhook_deliveries "
        f"WHERE event = '{ALERT_EVENT}' AND webhook_id IS NOT NULL "
        "AND subject LIKE 'alert:%' AND CAST(substr(subject, 7) AS INTEGER) IN (SELECT id FROM alerts)"
    )
    op.drop_table("webhook_deliveries")
