"""Answer quality: eval runs and answers, capacity searches, captured cases.

Revision ID: 0004_quality
Revises: 0003_drills
Create Date: 2026-12-07 00:00:01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_quality"
down_revision: str | Sequence[str] | None = "0003_drills"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "eval_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(), nullable=False),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
        sa.Column("cases_file", sa.String(), nullable=False),
        sa.Column("cases_hash", sa.String(), nullable=False),
        sa.Column("backends", sa.JSON(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_eval_run_feature", "eval_run", ["feature"])
    op.create_index("ix_eval_run_started_at", "eval_run", ["started_at"])
    op.create_table(
        "eval_answer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(), nullable=False),
        sa.Column("backend", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        _ts("at"),
        sa.Column("error_kind", sa.String(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("answer", sa.String(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("local", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["eval_run.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "backend", "case_id", name="uq_eval_answer_case"),
    )
    op.create_index("ix_eval_answer_run_id", "eval_answer", ["run_id"])
    op.create_index("ix_eval_answer_feature", "eval_answer", ["feature"])
    op.create_index("ix_eval_answer_backend", "eval_answer", ["backend"])
    op.create_table(
        "eval_capacity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(), nullable=False),
        sa.Column("backend", sa.String(), nullable=False),
        _ts("at"),
        sa.Column("rate_rps", sa.Float(), nullable=False),
        sa.Column("p95_ms", sa.Float(), nullable=True),
        sa.Column("pass_rate", sa.Float(), nullable=True),
        sa.Column("budget_ms", sa.Float(), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_eval_capacity_feature", "eval_capacity", ["feature"])
    op.create_index("ix_eval_capacity_backend", "eval_capacity", ["backend"])
    op.create_index("ix_eval_capacity_at", "eval_capacity", ["at"])
    op.create_table(
        "captured_case",
        sa.Column("id", sa.Integer(), nullable=False),
        _ts("at"),
        sa.Column("feature", sa.String(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("answer", sa.String(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_captured_case_at", "captured_case", ["at"])
    op.create_index("ix_captured_case_feature", "captured_case", ["feature"])


def downgrade() -> None:
    op.drop_table("captured_case")
    op.drop_table("eval_capacity")
    op.drop_table("eval_answer")
    op.drop_table("eval_run")
