"""Incident and vendor-status writes used by the monitor (re-exported by `monitor.store.queries`).

Like every store function: keyword-only, aware timestamps, and no commit (the caller commits,
so an incident and the alert it causes are written in one transaction). They flush, so a new
row's ``id`` is set on return.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from monitor.quorum import Verdict
from monitor.store.models import IncidentRow, SightingRow, StatusSnapshot, SuspectRow
from monitor.store.results import _aware

_SEVERITY = {"degraded": 1, "down": 2}
# pg_advisory_xact_lock key for quorum decisions: any fixed 64-bit number other than the migrations' would do.
QUORUM_LOCK_KEY = 0x2F1C_6A5E_93B0_4D17


def open_incident_for(*, session: Session, target: str, region: str) -> IncidentRow | None:
    """The open regional incident of ``target`` seen from ``region`` (the latest, should there be several)."""
    return session.exec(
        sa.select(IncidentRow)
        .where(IncidentRow.target == target, IncidentRow.region == region, IncidentRow.scope == "regional",
               IncidentRow.closed_at.is_(None))
        .order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def open_incident(
    *, session: Session, target: str, provider: str, region: str, state: str, cause: dict[str, Any], at: datetime
) -> IncidentRow:
    """Opens a regional incident for (target, region) at ``at``; ``state`` is ``down`` or ``degraded``.

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


def lock_quorum(session: Session) -> None:
    """Serialises quorum decisions across monitors until the caller's transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so two monitors judging the same outage at
    once take turns, and the second reads the first's sighting and incident once committed (READ
    COMMITTED: each statement sees what was committed before it began). SQLite: the database's
    write lock, taken now by a write that changes nothing, before the transaction reads anything;
    otherwise its reads would be a snapshot another process could commit past, and its first
    write would fail (SQLITE_BUSY_SNAPSHOT). Call it first in the transaction. The unique index
    ``uq_incident_open_global`` backs both.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": QUORUM_LOCK_KEY})
    else:
        session.execute(sa.text("UPDATE sighting SET state = state WHERE 1 = 0"))


def record_sighting(*, session: Session, target: str, region: str, state: str, since: datetime,
                    now: datetime | None = None) -> SightingRow:
    """Stores ``region``'s current state of ``target`` (replacing the one before), written at ``now``
    (default: the current time). The same state again keeps the ``since`` it had."""
    if state not in ("up", *_SEVERITY):
        raise ValueError(f"sighting state must be up, degraded or down, got {state!r}")
    since = _aware(since, "since")
    now = _aware(now, "now") if now is not None else datetime.now(UTC)
    row = session.get(SightingRow, (target, region))
    if row is None:
        row = SightingRow(target=target, region=region, state=state, since=since, updated_at=now)
    else:
        if row.state != state:
            row.state, row.since = state, since
        row.updated_at = now
    session.add(row)
    session.flush()
    return row


def sightings(*, session: Session, targets: list[str] | None = None) -> list[SightingRow]:
    """Every region's current state of ``targets`` (all targets without it)."""
    q = sa.select(SightingRow)
    if targets is not None:
        q = q.where(SightingRow.target.in_(targets))
    return list(session.exec(q.order_by(SightingRow.target, SightingRow.region)).scalars())


def down_elsewhere(*, session: Session, targets: list[str], region: str,
                   alive: Collection[str]) -> dict[str, list[str]]:
    """For each of ``targets`` some other alive region than ``region`` sees DOWN, those regions,
    sorted (corroboration: `monitor.detect.Detector.corroborate`). One query on the primary key."""
    rows = session.execute(sa.select(SightingRow.target, SightingRow.region).where(
        SightingRow.target.in_(targets), SightingRow.state == "down", SightingRow.region != region))
    out: dict[str, list[str]] = {}
    for target, other in rows:
        if other in alive:
            out.setdefault(target, []).append(other)
    return {target: sorted(regions) for target, regions in out.items()}


def record_suspect(*, session: Session, target: str, region: str, at: datetime) -> SuspectRow:
    """Stores ``region``'s word that ``target`` may be failing, at ``at`` (cross-region confirmation:
    the other regions probe it at once). One row per target and region; a later ``at`` replaces an
    earlier one, an earlier one (a result handled late) leaves it as it is."""
    at = _aware(at, "at")
    row = session.get(SuspectRow, (target, region))
    if row is None:
        row = SuspectRow(target=target, region=region, at=at)
    elif at > row.at:
        row.at = at
    session.add(row)
    session.flush()
    return row


def suspects_since(*, session: Session, since: datetime, region: str) -> list[tuple[str, str, datetime]]:
    """``(target, region, at)`` of the suspicions other regions than ``region`` wrote after ``since``,
    oldest first: one query on the ``at`` index."""
    since = _aware(since, "since")
    rows = session.execute(sa.select(SuspectRow.target, SuspectRow.region, SuspectRow.at).where(
        SuspectRow.at > since, SuspectRow.region != region).order_by(SuspectRow.at))
    return [(t, r, a) for t, r, a in rows]  # UTCDateTime gives ``at`` back aware


def open_global_for(*, session: Session, target: str) -> IncidentRow | None:
    """The open global incident of ``target`` (at most one: a unique partial index says so)."""
    return session.exec(sa.select(IncidentRow).where(
        IncidentRow.target == target, IncidentRow.scope == "global", IncidentRow.closed_at.is_(None))
    ).scalar_one_or_none()


def apply_verdict(*, session: Session, target: str, provider: str, verdict: Verdict, at: datetime,
                  cause: dict[str, Any] | None = None) -> tuple[str, str, IncidentRow] | None:
    """Brings ``target``'s global incident in line with ``verdict`` (call under `lock_quorum`).

    A global verdict with no open global incident opens one (at the verdict's ``since``, else
    ``at``); a worse one raises its state (an incident records the worst reached); one with no
    quorum closes it at ``at``. Every region of a global verdict is added to ``regions`` with
    when it first saw the incident and the worst state it saw. Returns ``(from, to, row)`` when
    the incident opened, worsened or closed, so exactly the caller whose transaction made the
    change announces it; None when nothing changed that an alert would tell.
    """
    at = _aware(at, "at")
    row = open_global_for(session=session, target=target)
    if verdict.scope != "global":
        if row is None:
            return None
        before = row.state
        row.closed_at = max(at, row.opened_at)
        session.add(row)
        session.flush()
        return before, "up", row
    change: tuple[str, str] | None = None
    if row is None:
        opened = verdict.since if verdict.since is not None else at
        row = IncidentRow(target=target, provider=provider, region="", scope="global", state=verdict.state,
                          cause=dict(cause or {}), opened_at=min(_aware(opened, "since"), at), regions={})
        change = ("up", verdict.state)
    elif _SEVERITY[verdict.state] > _SEVERITY.get(row.state, 0):
        change = (row.state, verdict.state)
        row.state = verdict.state
        row.cause = {**(row.cause or {}), **(cause or {})}
    seen = dict(row.regions or {})  # a new dict: JSON columns miss in-place edits
    states = {s.region: s for s in session.exec(sa.select(SightingRow).where(
        SightingRow.target == target, SightingRow.region.in_(verdict.regions))).scalars()}
    for region in verdict.regions:
        sighting = states.get(region)
        state = sighting.state if sighting else verdict.state
        since = (sighting.since if sighting else at).isoformat()
        held = seen.get(region)
        if held is None:
            seen[region] = {"since": since, "state": state}
        elif _SEVERITY.get(state, 0) > _SEVERITY.get(held.get("state"), 0):
            seen[region] = {**held, "state": state}
    if seen != row.regions:
        row.regions = seen
    session.add(row)
    session.flush()
    return (*change, row) if change else None


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


def _status_values(*, provider: str, fetched_at: datetime, indicator: str, description: str = "",
                   incidents: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A status snapshot's column values, as `record_status` and `record_status_bulk` store them (an
    unknown or missing field is a TypeError naming it)."""
    return {"provider": provider, "fetched_at": _aware(fetched_at, "fetched_at"), "indicator": indicator,
            "description": description or "", "incidents": list(incidents or [])}


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
    row = StatusSnapshot(**_status_values(provider=provider, fetched_at=fetched_at, indicator=indicator,
                                          description=description, incidents=incidents))
    session.add(row)
    session.flush()
    return row


def record_status_bulk(*, session: Session, snapshots: Iterable[Mapping[str, Any]]) -> int:
    """Stores many status-page snapshots at once, each given as `record_status`'s keyword arguments
    (``provider``, ``fetched_at``, ``indicator``, optional ``description`` and ``incidents``); returns
    how many. One executemany: emulated history's (`chaos.history`) hundreds of hourly polls."""
    rows = []
    for snap in snapshots:
        unknown = sorted(snap.keys() - {"provider", "fetched_at", "indicator", "description", "incidents"})
        if unknown:
            raise ValueError(f"status snapshot: unknown fields {unknown}")
        try:
            rows.append(_status_values(**snap))
        except TypeError as exc:  # a required field missing: bad input, said as such
            raise ValueError(f"status snapshot: {exc}") from None
    if rows:
        session.execute(sa.insert(StatusSnapshot.__table__), rows)
    return len(rows)
