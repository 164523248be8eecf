"""labeling reviews: likely wrong labels flagged by cleanlab and the reviewers' decisions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labeling_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("suggested", sa.String(length=100), nullable=False),
        sa.Column("self_confidence", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_label", sa.String(length=100), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["labeling_jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["labeling_items.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["decided_by"], ["workers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_labeling_reviews_item_id", "labeling_reviews", ["item_id"])
    op.create_index("ix_labeling_reviews_queue", "labeling_reviews", ["job_id", "status"])


def downgrade() -> None:
    op.drop_table("labeling_reviews")
