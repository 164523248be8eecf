"""labeling: jobs, their items, and workers' assignments and answers

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labeling_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("short_instructions", sa.Text(), nullable=False),
        sa.Column("full_instructions", sa.Text(), nullable=False),
        sa.Column("workers_per_item", sa.Integer(), nullable=False),
        sa.Column("task_time_limit_s", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blind", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("items_count", sa.Integer(), nullable=False),
        sa.Column("auto_label", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["workers.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_labeling_jobs_team_id", "labeling_jobs", ["team_id"])
    op.create_index("ix_labeling_jobs_status", "labeling_jobs", ["status"])
    op.create_table(
        "labeling_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("answers_count", sa.Integer(), nullable=False),
        sa.Column("holds", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("labeled_by", sa.String(length=20), nullable=True),
        sa.Column("pool", sa.String(length=16), nullable=True),
        sa.Column("machine_model", sa.String(length=200), nullable=True),
        sa.Column("machine_threshold", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["labeling_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "position"),
    )
    op.create_index("ix_labeling_items_queue", "labeling_items", ["job_id", "status", "position"])
    op.create_table(
        "labeling_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["labeling_jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["labeling_items.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["worker_id"], ["workers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "worker_id"),
    )
    op.create_index("ix_labeling_assignments_item_id", "labeling_assignments", ["item_id"])
    op.create_index(
        "ix_labeling_assignments_state", "labeling_assignments", ["job_id", "state", "expires_at"]
    )
    op.create_index(
        "ix_labeling_assignments_worker", "labeling_assignments", ["worker_id", "job_id", "state"]
    )


def downgrade() -> None:
    op.drop_table("labeling_assignments")
    op.drop_table("labeling_items")
    op.drop_table("labeling_jobs")
