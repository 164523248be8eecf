"""human review: flow definitions, human loops and their webhook outbox; an item's preselected value

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("labeling_items") as batch:
        batch.add_column(sa.Column("initial", sa.String(length=100), nullable=True))
    op.create_table(
        "review_flows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("answer_key", sa.String(length=63), nullable=False),
        sa.Column("task_count", sa.Integer(), nullable=False),
        sa.Column("lifetime_s", sa.Integer(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=True),
        sa.Column("webhook", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["labeling_jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("job_id"),
    )
    op.create_table(
        "human_loops",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("flow_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("inference_id", sa.String(length=64), nullable=True),
        sa.Column("endpoint", sa.String(length=63), nullable=True),
        sa.Column("variant", sa.String(length=63), nullable=True),
        sa.Column("activation", sa.JSON(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("output_uri", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["flow_id"], ["review_flows.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["labeling_items.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_human_loops_flow", "human_loops", ["flow_id", "id"])
    op.create_index("ix_human_loops_due", "human_loops", ["status", "expires_at"])
    op.create_index("ix_human_loops_item_id", "human_loops", ["item_id"])
    op.create_index("ix_human_loops_inference_id", "human_loops", ["inference_id"])
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
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_human_loop_events_loop_name", "human_loop_events", ["loop_name"])
    op.create_index("ix_human_loop_events_next_attempt_at", "human_loop_events", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_table("human_loop_events")
    op.drop_table("human_loops")
    op.drop_table("review_flows")
    with op.batch_alter_table("labeling_items") as batch:
        batch.drop_column("initial")
