"""Cross-region confirmation: ``suspect``, each region's latest word that a target may be failing.

One row per target and region, its ``at`` moved on by each new suspicion (a scheduled probe that
failed, or the target gone DOWN there); the other regions read the rows newer than their last look
(``ix_suspect_at``) and probe those targets at once (``detection.cross_region_confirm``).

Revision ID: 0007_suspect
Revises: 0006_lifecycle
Create Date: 2026-12-07 00:00:04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_suspect"
down_revision: str | Sequence[str] | None = "0006_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suspect",
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", "region"),
    )
    op.create_index("ix_suspect_at", "suspect", ["at"])


def downgrade() -> None:
    op.drop_index("ix_suspect_at", table_name="suspect")
    op.drop_table("suspect")
