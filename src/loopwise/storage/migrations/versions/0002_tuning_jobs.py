"""tuning jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tuning_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("study_name", sa.String(length=200), nullable=False),
        sa.Column("best_trial", sa.Integer(), nullable=True),
        sa.Column("best_model_version_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["best_model_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("tuning_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tuning_jobs_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tuning_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tuning_jobs_status"))
    op.drop_table("tuning_jobs")
