"""tuning results: checkpoints a tuning job removed, the best model's test evaluation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkpoint_removed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("tuning_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("test_evaluation_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_tuning_jobs_test_evaluation_id", "evaluations", ["test_evaluation_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("tuning_jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_tuning_jobs_test_evaluation_id", type_="foreignkey")
        batch_op.drop_column("test_evaluation_id")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("checkpoint_removed_at")
