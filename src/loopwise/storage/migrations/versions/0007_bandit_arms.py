"""bandit_arms: the evidence of multi-armed bandit endpoints, kept across restarts

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bandit_arms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=63), nullable=False),
        sa.Column("variant", sa.String(length=63), nullable=False),
        sa.Column("rewards", sa.Float(), nullable=False),
        sa.Column("pulls", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint", "variant"),
    )
    with op.batch_alter_table("bandit_arms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bandit_arms_endpoint"), ["endpoint"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bandit_arms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bandit_arms_endpoint"))
    op.drop_table("bandit_arms")
