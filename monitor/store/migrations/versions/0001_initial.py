"""Initial schema: targets, raw results, minute/hour rollups, incidents, status snapshots, outbox.

Hand-written to match `monitor.store.models` (tests compare them with Alembic's
``compare_metadata``). Plain SQLAlchemy types on purpose: a revision must not change meaning
when the model code later does (``UTCDateTime`` is ``DateTime(timezone=True)`` in the database,
sqlmodel's ``AutoString`` is ``VARCHAR``).

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str) -> sa.Column:
    return sa.Column(name, sa.String(), nullable=False)


def _rollup(name: str) -> None:
    op.create_table(
        name,
        _str("target"),
        _str("region"),
        _ts("bucket"),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("up", sa.Integer(), nullable=False),
        sa.Column("degraded", sa.Integer(), nullable=False),
        sa.Column("down", sa.Integer(), nullable=False),
        sa.Column("ttft_hist", sa.JSON(), nullable=False),
        sa.Column("total_hist", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("tokens_per_s_sum", sa.Float(), nullable=False),
        sa.Column("tokens_per_s_n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("target", "region", "bucket"),
    )
    op.create_index(f"ix_{name}_bucket", name, ["bucket"])


def upgrade() -> None:
    op.create_table(
        "target",
        _str("name"),
        _str("provider"),
        _str("model"),
        _str("dialect"),
        _str("base_url"),
        sa.Column("local", sa.Boolean(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("name"),
    )

    op.create_table(
        "probe_result",
        sa.Column("id", sa.Integer(), nullable=False),
        _str("target"),
        _str("region"),
        _ts("at"),
        _str("status"),
        _str("error_kind"),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("connect_ms", sa.Float(), nullable=True),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("tokens_per_s", sa.Float(), nullable=True),
        sa.Column("stream_complete", sa.Boolean(), nullable=False),
        sa.Column("canary_pass", sa.Boolean(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("retry_after_s", sa.Float(), nullable=True),
        sa.Column("local", sa.Boolean(), nullable=False),
        sa.Column("confirm", sa.Boolean(), nullable=False),
        _str("message"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_probe_result_at", "probe_result", ["at"])
    op.create_index("ix_probe_result_target_at", "probe_result", ["target", "at"])

    _rollup("rollup_minute")
    _rollup("rollup_hour")

    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), nullable=False),
        _str("target"),
        _str("provider"),
        _str("region"),
        _str("state"),
        _ts("opened_at"),
        _ts("closed_at", nullable=True),
        sa.Column("cause", sa.JSON(), nullable=False),
        _ts("vendor_first_post_at", nullable=True),
        sa.Column("lead_time_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incident_target", "incident", ["target"])
    op.create_index("ix_incident_opened_at", "incident", ["opened_at"])

    op.create_table(
        "status_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        _str("provider"),
        _ts("fetched_at"),
        _str("indicator"),
        _str("description"),
        sa.Column("incidents", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_status_snapshot_provider", "status_snapshot", ["provider"])
    op.create_index("ix_status_snapshot_fetched_at", "status_snapshot", ["fetched_at"])

    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        _ts("created_at"),
        _str("channel"),
        _str("rule"),
        _str("event_key"),
        _str("dedup_key"),
        _str("target"),
        _str("provider"),
        sa.Column("payload", sa.JSON(), nullable=False),
        _str("state"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        _ts("sent_at", nullable=True),
        _str("last_error"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "event_key", name="uq_alert_outbox_channel_event"),
    )
    op.create_index("ix_alert_outbox_created_at", "alert_outbox", ["created_at"])
    op.create_index("ix_alert_outbox_state", "alert_outbox", ["state"])
    op.create_index("ix_alert_outbox_next_attempt_at", "alert_outbox", ["next_attempt_at"])


def downgrade() -> None:
    for table in ("alert_outbox", "status_snapshot", "incident", "rollup_hour", "rollup_minute",
                  "probe_result", "target"):
        op.drop_table(table)
