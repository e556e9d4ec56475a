"""Drill results in the store: written by `airisk drill run`, read by the risk model (which
fallbacks a drill saw answering, and when) and the dashboard."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from monitor.store.models import DrillFeatureRow, DrillRunRow


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def write_drill(*, session: Session, run: Mapping[str, Any], features: Sequence[Mapping[str, Any]]) -> int:
    """Stores one drill (``run``: name, started_at, ended_at (epoch s), passed, aborted, phases,
    timeline; ``features``: the DrillFeatureRow fields) and returns its id."""
    row = DrillRunRow(name=run["name"], started_at=_at(run["started_at"]), ended_at=_at(run["ended_at"]),
                      passed=run["passed"], aborted=run.get("aborted"), phases=list(run["phases"]),
                      timeline=list(run.get("timeline") or []))
    session.add(row)
    session.flush()
    assert row.id is not None
    for feature in features:
        session.add(DrillFeatureRow(run_id=row.id, **feature))
    return row.id


def drill_runs(*, session: Session, since: datetime | None = None, name: str | None = None,
               limit: int | None = None) -> list[DrillRunRow]:
    """Newest first."""
    query = select(DrillRunRow).order_by(DrillRunRow.started_at.desc(), DrillRunRow.id.desc())
    if since is not None:
        query = query.where(DrillRunRow.started_at >= since)
    if name is not None:
        query = query.where(DrillRunRow.name == name)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def drill_features(*, session: Session, run_id: int) -> list[DrillFeatureRow]:
    return list(session.exec(select(DrillFeatureRow).where(DrillFeatureRow.run_id == run_id)
                             .order_by(DrillFeatureRow.feature)))


@dataclass(frozen=True, slots=True)
class VerifiedFallback:
    """A route a drill saw answering a feature while the drill had broken other routes."""

    feature: str
    route: str
    verified_at: datetime  # the latest drill that showed it
    faulted_routes: tuple[str, ...]
    ok_rate: float | None  # the feature's full-answer rate during that drill's faults
    answered_rate: float | None


def verified_fallbacks(*, session: Session, since: datetime | None = None) -> list[VerifiedFallback]:
    """For each (feature, route), the latest drill in which the route answered the feature during faults
    that did not break that route itself, and whose answers, where the drill checked them, were good
    enough (`quality_short`: a fallback that answers with garbage is not verified by answering)."""
    query = (select(DrillFeatureRow, DrillRunRow.started_at).join(DrillRunRow, DrillRunRow.id == DrillFeatureRow.run_id)
             .where(DrillRunRow.aborted.is_(None)).order_by(DrillRunRow.started_at))
    if since is not None:
        query = query.where(DrillRunRow.started_at >= since)
    latest: dict[tuple[str, str], VerifiedFallback] = {}
    for feature, started in session.exec(query):
        for route in feature.answered_by:
            if route not in feature.faulted_routes and not quality_short(feature.phases, route):
                latest[(feature.feature, route)] = VerifiedFallback(
                    feature.feature, route, started if started.tzinfo else started.replace(tzinfo=UTC),
                    tuple(feature.faulted_routes), feature.ok_rate, feature.answered_rate)
    return sorted(latest.values(), key=lambda v: (v.feature, v.route))


def quality_short(phases: Mapping[str, Any] | None, route: str) -> bool:
    """True when a drill checked the feature's answers during its faults (``phases[NAME]["quality"]`` with
    ``faulted``, as `chaos.drill.output.store` writes it) and they passed below ``min_pass``: those the
    product said ``route`` gave, where any of them were judged, else all of them. False where nothing
    was judged (no eval set, or every check unjudged): quality then neither verifies nor refutes."""
    judged = passed = 0
    by_route = [0, 0]
    min_pass = 0.0
    for stats in (phases or {}).values():
        q = stats.get("quality") if isinstance(stats, Mapping) else None
        if not isinstance(q, Mapping) or not q.get("faulted"):
            continue
        judged += int(q.get("passed") or 0) + int(q.get("failed") or 0)
        passed += int(q.get("passed") or 0)
        min_pass = max(min_pass, float(q.get("min_pass") or 0.0))
        mine = (q.get("by_backend") or {}).get(route)
        if isinstance(mine, Sequence) and len(mine) == 2:
            by_route[0] += int(mine[0])
            by_route[1] += int(mine[1])
    if by_route[0]:
        judged, passed = by_route
    return judged > 0 and passed / judged < min_pass
