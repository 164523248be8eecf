"""human review budgets: a flow's bounds on open loops, loops an hour and loops per invocation; each
loop's prediction confidence (the budget keeps the most uncertain)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 11:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_flows") as batch:
        batch.add_column(sa.Column("max_open_loops", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_loops_per_hour", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("max_loops_per_invocation", sa.Integer(), nullable=False, server_default="100")
        )
    with op.batch_alter_table("human_loops") as batch:
        batch.add_column(sa.Column("confidence", sa.Float(), nullable=True))
    op.create_index("ix_human_loops_open", "human_loops", ["flow_id", "status", "confidence"])
    op.create_index("ix_human_loops_started", "human_loops", ["flow_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_human_loops_started", table_name="human_loops")
    op.drop_index("ix_human_loops_open", table_name="human_loops")
    with op.batch_alter_table("human_loops") as batch:
        batch.drop_column("confidence")
    with op.batch_alter_table("review_flows") as batch:
        batch.drop_column("max_loops_per_invocation")
        batch.drop_column("max_loops_per_hour")
        batch.drop_column("max_open_loops")
