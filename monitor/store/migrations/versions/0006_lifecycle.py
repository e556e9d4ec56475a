"""Model lifecycle: notices (retiring, retired, vanished incidents, ...) and the models each listing named.

Revision ID: 0006_lifecycle
Revises: 0005_vantage
Create Date: 2026-12-07 00:00:03

Written beside 0005_vantage (the vantage points' change) and first chained on 0004_quality; 0005_vantage
is in the tree now, so this follows it and the chain keeps one head.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_lifecycle"
down_revision: str | Sequence[str] | None = "0005_vantage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "model_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("endpoint", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("retires", sa.Date(), nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("step_days", sa.Integer(), nullable=True),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        _ts("at"),
        _ts("opened_at", nullable=True),
        _ts("closed_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_model_notice_provider", "model_notice", ["provider"])
    op.create_index("ix_model_notice_model", "model_notice", ["model"])
    op.create_index("ix_model_notice_at", "model_notice", ["at"])
    op.create_table(
        "model_seen",
        sa.Column("endpoint", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        _ts("first_seen"),
        _ts("last_seen"),
        sa.PrimaryKeyConstraint("endpoint", "model"),
    )


def downgrade() -> None:
    op.drop_table("model_seen")
    op.drop_index("ix_model_notice_at", table_name="model_notice")
    op.drop_index("ix_model_notice_model", table_name="model_notice")
    op.drop_index("ix_model_notice_provider", table_name="model_notice")
    op.drop_table("model_notice")
