"""Several vantage points, one voice: incident scope and regions, sightings, heartbeats.

``incident`` gains ``scope`` (regional | global) and ``regions`` (who saw a global incident, and
when), and a unique partial index so that one global incident at most is open per target, however
the monitors race. Rows written before this were each one monitor's view: they become regional.
``sighting`` holds each region's current state of each target (the quorum's input), ``vantage``
each monitor's heartbeat.

Revision ID: 0005_vantage
Revises: 0004_quality
Create Date: 2026-12-07 00:00:02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_vantage"
down_revision: str | Sequence[str] | None = "0004_quality"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN_GLOBAL = "scope = 'global' AND closed_at IS NULL"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("scope", sa.String(), nullable=False, server_default="regional"))
        batch.add_column(sa.Column("regions", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    op.create_index("uq_incident_open_global", "incident", ["target"], unique=True,
                    postgresql_where=sa.text(_OPEN_GLOBAL), sqlite_where=sa.text(_OPEN_GLOBAL))
    op.create_table(
        "sighting",
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        _ts("since"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("target", "region"),
    )
    op.create_table(
        "vantage",
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        _ts("started_at"),
        _ts("last_seen"),
        _ts("lost_at", nullable=True),
        sa.PrimaryKeyConstraint("region"),
    )
    op.create_index("ix_vantage_last_seen", "vantage", ["last_seen"])


def downgrade() -> None:
    op.drop_table("vantage")
    op.drop_table("sighting")
    op.drop_index("uq_incident_open_global", table_name="incident")
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("regions")
        batch.drop_column("scope")
