"""auth hardening: sign-in failures per (email, client address) instead of per account; a signing secret
for every webhook (monitoring's webhooks, review flows' webhooks and their queued events)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 11:30:00.000000
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_failures",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email", "address"),
    )
    op.create_index("ix_sign_in_failures_updated_at", "sign_in_failures", ["updated_at"])
    with op.batch_alter_table("workers") as batch:  # the per-account lock, which let anyone lock anyone out
        batch.drop_column("failed_sign_ins")
        batch.drop_column("locked_until")
    op.add_column("webhooks", sa.Column("secret", sa.String(length=64), nullable=True))
    op.add_column("review_flows", sa.Column("webhook_secret", sa.String(length=64), nullable=True))
    op.add_column("human_loop_events", sa.Column("secret", sa.String(length=64), nullable=True))
    # webhooks made before signing get a secret now; an admin shows a new one to give the receiver with
    # `loopwise monitor webhook rotate-secret ID` or `loopwise review flow rotate-secret NAME`
    connection = op.get_bind()
    for table, column in (("webhooks", "secret"), ("review_flows", "webhook_secret")):
        rows = connection.execute(sa.text(f"SELECT id FROM {table}")).scalars().all()
        for row_id in rows:
            connection.execute(
                sa.text(f"UPDATE {table} SET {column} = :secret WHERE id = :id"),
                {"secret": "whsec_" + secrets.token_urlsafe(32), "id": row_id},
            )
    connection.execute(
        sa.text(
            "UPDATE human_loop_events SET secret = (SELECT f.webhook_secret FROM review_flows f "
            "JOIN human_loops l ON l.flow_id = f.id WHERE l.name = human_loop_events.loop_name)"
        )
    )


def downgrade() -> None:
    op.drop_column("human_loop_events", "secret")
    op.drop_column("review_flows", "webhook_secret")
    op.drop_column("webhooks", "secret")
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("failed_sign_ins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.drop_index("ix_sign_in_failures_updated_at", table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
