"""several servers on one database: failed sign-ins per client address counted in the database, and the
autoscaler's shared view (each server's reported load, the instance count it set, its decisions)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-09 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("state_version", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "sign_in_address_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_sign_in_address_failures_address_at", "sign_in_address_failures", ["address", "failed_at"]
    )
    op.create_index(op.f("ix_sign_in_address_failures_failed_at"), "sign_in_address_failures", ["failed_at"])
    op.create_table(
        "variant_scales",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=63), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scaled_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("endpoint_id", "variant"),
    )
    op.create_table(
        "scaling_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=63), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("instances_before", sa.Integer(), nullable=False),
        sa.Column("instances_after", sa.Integer(), nullable=False),
        sa.Column("metric", sa.Float(), nullable=False),
        sa.Column("invocations", sa.Integer(), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_scaling_events_endpoint_id"), "scaling_events", ["endpoint_id"])
    op.create_table(
        "variant_loads",
        sa.Column("replica", sa.String(length=200), nullable=False),
        sa.Column("endpoint", sa.String(length=63), nullable=False),
        sa.Column("variant", sa.String(length=63), nullable=False),
        sa.Column("invocations", sa.Integer(), nullable=False),
        sa.Column("period_s", sa.Float(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("replica", "endpoint", "variant"),
    )
    op.create_index(op.f("ix_variant_loads_reported_at"), "variant_loads", ["reported_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_variant_loads_reported_at"), table_name="variant_loads")
    op.drop_table("variant_loads")
    op.drop_index(op.f("ix_scaling_events_endpoint_id"), table_name="scaling_events")
    op.drop_table("scaling_events")
    op.drop_table("variant_scales")
    op.drop_index(op.f("ix_sign_in_address_failures_failed_at"), table_name="sign_in_address_failures")
    op.drop_index("ix_sign_in_address_failures_address_at", table_name="sign_in_address_failures")
    op.drop_table("sign_in_address_failures")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("state_version")
