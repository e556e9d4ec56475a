"""Incident and vendor-status writes used by the monitor (re-exported by `monitor.store.queries`).

Like every store function: keyword-only, aware timestamps, and no commit (the caller commits,
so an incident and the alert it causes are written in one transaction). They flush, so a new
row's ``id`` is set on return.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from monitor.store.models import IncidentRow, StatusSnapshot
from monitor.store.results import _aware

_SEVERITY = {"degraded": 1, "down": 2}


def open_incident_for(*, session: Session, target: str, region: str) -> IncidentRow | None:
    """The open incident of ``target`` seen from ``region`` (the latest, should there be several)."""
    return session.exec(
        sa.select(IncidentRow)
        .where(IncidentRow.target == target, IncidentRow.region == region, IncidentRow.closed_at.is_(None))
        .order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def open_incident(
    *, session: Session, target: str, provider: str, region: str, state: str, cause: dict[str, Any], at: datetime
) -> IncidentRow:
    """Opens an incident for (target, region) at ``at``; ``state`` is ``down`` or ``degraded``.

    At most one incident is open per (target, region): when one already is, it is returned
    instead, its state raised to the worse of the two (``down`` beats ``degraded``: an incident
    records the worst reached) and ``cause`` merged into its cause.
    """
    if state not in _SEVERITY:
        raise ValueError(f"incident state must be 'down' or 'degraded', got {state!r}")
    at = _aware(at, "at")
    row = open_incident_for(session=session, target=target, region=region)
    if row is not None:
        if _SEVERITY[state] > _SEVERITY.get(row.state, 0):
            row.state = state
        row.cause = {**(row.cause or {}), **cause}  # a new dict: JSON columns miss in-place edits
        session.add(row)
        session.flush()
        return row
    row = IncidentRow(target=target, provider=provider, region=region, state=state, cause=dict(cause), opened_at=at)
    session.add(row)
    session.flush()
    return row


def close_incident(*, session: Session, incident_id: int, at: datetime) -> IncidentRow | None:
    """Closes the incident at ``at`` (no-op if already closed); ``None`` if there is no such id."""
    row = session.get(IncidentRow, incident_id)
    if row is None:
        return None
    at = _aware(at, "at")
    if at < row.opened_at:
        raise ValueError(f"incident {incident_id} cannot close at {at} before it opened at {row.opened_at}")
    if row.closed_at is None:
        row.closed_at = at
        session.add(row)
        session.flush()
    return row


def set_vendor_post(*, session: Session, incident_id: int, first_post_at: datetime) -> IncidentRow | None:
    """Records when the vendor first posted about this incident, and our lead time.

    ``lead_time_s = first_post_at - opened_at`` in seconds: positive when we detected first.
    Only the earliest post is kept (a later "update" post does not move it).
    ``None`` if there is no such incident.
    """
    row = session.get(IncidentRow, incident_id)
    if row is None:
        return None
    first_post_at = _aware(first_post_at, "first_post_at")
    if row.vendor_first_post_at is None or first_post_at < row.vendor_first_post_at:
        row.vendor_first_post_at = first_post_at
        row.lead_time_s = (first_post_at - row.opened_at).total_seconds()
        session.add(row)
        session.flush()
    return row


def record_status(
    *,
    session: Session,
    provider: str,
    fetched_at: datetime,
    indicator: str,
    description: str = "",
    incidents: list[dict[str, Any]] | None = None,
) -> StatusSnapshot:
    """Stores what ``provider``'s status page said at ``fetched_at``."""
    row = StatusSnapshot(
        provider=provider,
        fetched_at=_aware(fetched_at, "fetched_at"),
        indicator=indicator,
        description=description or "",
        incidents=list(incidents or []),
    )
    session.add(row)
    session.flush()
    return row
