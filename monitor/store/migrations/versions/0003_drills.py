"""Chaos drills: one row per run, one per feature and run.

Revision ID: 0003_drills
Revises: 0002_proxy_request
Create Date: 2026-11-26 00:00:01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_drills"
down_revision: str | Sequence[str] | None = "0002_proxy_request"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "drill_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        _ts("started_at"),
        _ts("ended_at"),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("aborted", sa.String(), nullable=True),
        sa.Column("phases", sa.JSON(), nullable=False),
        sa.Column("timeline", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drill_run_name", "drill_run", ["name"])
    op.create_index("ix_drill_run_started_at", "drill_run", ["started_at"])
    op.create_table(
        "drill_feature",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(), nullable=False),
        sa.Column("expected", sa.String(), nullable=False),
        sa.Column("verdict", sa.String(), nullable=True),
        sa.Column("meets", sa.Boolean(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("ok_rate", sa.Float(), nullable=True),
        sa.Column("answered_rate", sa.Float(), nullable=True),
        sa.Column("p50_ms", sa.Float(), nullable=True),
        sa.Column("p95_ms", sa.Float(), nullable=True),
        sa.Column("recovery_s", sa.Float(), nullable=True),
        sa.Column("faulted_routes", sa.JSON(), nullable=False),
        sa.Column("answered_by", sa.JSON(), nullable=False),
        sa.Column("backends", sa.JSON(), nullable=False),
        sa.Column("phases", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["drill_run.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drill_feature_run_id", "drill_feature", ["run_id"])
    op.create_index("ix_drill_feature_feature", "drill_feature", ["feature"])


def downgrade() -> None:
    op.drop_table("drill_feature")
    op.drop_table("drill_run")
