"""The monitors themselves, for the overview: which vantage points are alive."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from monitor.store.models import VantageRow
from monitor.store.results import _aware


def vantage_points(*, session: Session, now: datetime, timeout: float) -> list[dict[str, Any]]:
    """Every monitor that ever wrote a heartbeat, by region: ``region, host, pid, version, started_at,
    last_seen, alive`` (its heartbeat at most ``timeout`` s old), ``lost_at`` (when its loss was
    announced, if it still is)."""
    cutoff = _aware(now, "now") - timedelta(seconds=timeout)
    return [{"region": r.region, "host": r.host, "pid": r.pid, "version": r.version, "started_at": r.started_at,
             "last_seen": r.last_seen, "alive": r.last_seen >= cutoff, "lost_at": r.lost_at}
            for r in session.exec(sa.select(VantageRow).order_by(VantageRow.region)).scalars()]
