"""Incidents and the alert outbox as they are read back (the Alerts page's, and the providers' incident
tables). The writers live in `monitor.store.incidents` and `monitor.alerts.outbox`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from monitor.store.models import IncidentRow
from monitor.store.results import _aware


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    target: str
    provider: str
    region: str
    state: str
    opened_at: datetime
    closed_at: datetime | None
    duration_s: float | None  # None while open
    cause: dict[str, Any]
    vendor_first_post_at: datetime | None
    lead_time_s: float | None  # > 0: we detected it before the vendor posted
    scope: str = "regional"  # regional (one monitor's view) | global (the quorum's: the one that pages)
    regions: dict[str, Any] = field(default_factory=dict)  # global: region -> {"since", "state"}


def incidents(
    *, session: Session, since: datetime | None = None, open_only: bool = False, target: str | None = None,
    scope: str | None = None,
) -> list[Incident]:
    """Incidents open at some time at or after ``since`` (all without it), newest first; only those
    of ``scope`` (regional | global) when given."""
    q = sa.select(IncidentRow)
    if scope is not None:
        q = q.where(IncidentRow.scope == scope)
    if open_only:
        q = q.where(IncidentRow.closed_at.is_(None))
    if since is not None:
        since = _aware(since, "since")
        q = q.where(sa.or_(IncidentRow.closed_at.is_(None), IncidentRow.closed_at >= since))
    if target is not None:
        q = q.where(IncidentRow.target == target)
    rows = session.exec(q.order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc())).scalars()
    return [
        Incident(r.id, r.target, r.provider, r.region, r.state, r.opened_at, r.closed_at,
                 (r.closed_at - r.opened_at).total_seconds() if r.closed_at else None, dict(r.cause or {}),
                 r.vendor_first_post_at, r.lead_time_s, r.scope, dict(r.regions or {}))
        for r in rows
    ]


def alert_log(
    *,
    session: Session,
    since: datetime | None = None,
    until: datetime | None = None,
    channel: str | None = None,
    limit: int | None = 1000,
) -> list[dict[str, Any]]:
    """Outbox rows created in ``[since, until)``, newest first: ``id, created_at, channel, rule, action,
    title, severity, target, provider, state (pending | sent | dead), attempts, sent_at, last_error``."""
    from monitor.store.models import AlertOutbox

    t = AlertOutbox.__table__.c
    q = sa.select(t.id, t.created_at, t.channel, t.rule, t.target, t.provider, t.state, t.attempts, t.sent_at,
                  t.last_error, t.payload)
    if since is not None:
        q = q.where(t.created_at >= _aware(since, "since"))
    if until is not None:
        q = q.where(t.created_at < _aware(until, "until"))
    if channel is not None:
        q = q.where(t.channel == channel)
    q = q.order_by(t.created_at.desc(), t.id.desc())
    if limit is not None:
        q = q.limit(limit)
    out = []
    for r in session.exec(q):
        payload = r.payload or {}
        out.append({"id": r.id, "created_at": r.created_at, "channel": r.channel, "rule": r.rule,
                    "action": payload.get("action", ""), "title": payload.get("title", ""),
                    "severity": payload.get("severity", ""), "target": r.target, "provider": r.provider,
                    "state": r.state, "attempts": r.attempts, "sent_at": r.sent_at, "last_error": r.last_error})
    return out
