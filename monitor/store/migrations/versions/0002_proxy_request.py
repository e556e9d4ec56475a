"""The fault proxy's request log: which feature reached which provider route, and how it ended.

Revision ID: 0002_proxy_request
Revises: 0001_initial
Create Date: 2026-11-26 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_proxy_request"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "proxy_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("feature", sa.String(), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("faults", sa.JSON(), nullable=False),
        sa.Column("broken", sa.String(), nullable=True),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_proxy_request_at", "proxy_request", ["at"])
    op.create_index("ix_proxy_request_route", "proxy_request", ["route"])
    op.create_index("ix_proxy_request_feature", "proxy_request", ["feature"])


def downgrade() -> None:
    op.drop_table("proxy_request")
